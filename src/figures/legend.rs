//! Legends drawn in their own strip of the figure (never over a plotting area): a sample of
//! each series' style and its label, in one or more columns, wrapped to fit.

use plotters::style::RGBColor;

use super::svg::{wrap, Fill, Font, Layer, Shape, Stroke};

const FONT: f64 = 12.0;
/// Height of one line of legend text.
const LINE: f64 = 15.0;
const SWATCH: f64 = 30.0;
const GAP: f64 = 8.0;
const PAD: f64 = 6.0;

/// What an entry shows before its label.
#[derive(Clone, Copy)]
pub enum Swatch {
    /// A line of this style.
    Line(Stroke),
    /// A line with a marker on it.
    LineMarker(Stroke, Shape),
    /// A marker alone (filled with the colour, or open when the fill is None).
    Marker(Shape, Option<Fill>, Stroke),
    /// A filled band, with its edges drawn when given.
    Band(Fill, Option<Stroke>),
    /// Text only.
    Note,
}

pub struct Entry {
    pub swatch: Swatch,
    pub label: String,
    /// Colour of the label (black unless it warns).
    pub colour: RGBColor,
}

impl Entry {
    pub fn new(swatch: Swatch, label: impl Into<String>) -> Entry {
        Entry {
            swatch,
            label: label.into(),
            colour: RGBColor(0, 0, 0),
        }
    }

    pub fn note(label: impl Into<String>) -> Entry {
        Entry {
            swatch: Swatch::Note,
            label: label.into(),
            colour: RGBColor(70, 70, 70),
        }
    }
}

/// A legend: entries laid out in `columns` columns, filled one column after the other.
pub struct Legend {
    pub heading: Option<String>,
    pub entries: Vec<Entry>,
    pub columns: usize,
}

impl Legend {
    pub fn new(heading: Option<String>, columns: usize) -> Legend {
        Legend {
            heading,
            entries: Vec::new(),
            columns: columns.max(1),
        }
    }

    pub fn push(&mut self, entry: Entry) {
        self.entries.push(entry);
    }

    fn label_width(&self, width: f64) -> f64 {
        (width - 2.0 * PAD) / self.columns as f64 - SWATCH - 2.0 * GAP
    }

    /// The entries row by row, each with its column: filled column by column (reading down
    /// the first column, then the next).
    fn grid(&self) -> Vec<Vec<(usize, &Entry)>> {
        let rows = self.entries.len().div_ceil(self.columns);
        (0..rows)
            .map(|r| {
                (0..self.columns)
                    .filter_map(|c| Some((c, self.entries.get(c * rows + r)?)))
                    .collect()
            })
            .collect()
    }

    /// Per row of entries, each entry's lines of text.
    fn rows(&self, width: f64) -> Vec<Vec<Vec<String>>> {
        let w = self.label_width(width).max(40.0);
        self.grid()
            .iter()
            .map(|row| row.iter().map(|(_, e)| wrap(&e.label, FONT, w)).collect())
            .collect()
    }

    fn heading_height(&self) -> f64 {
        if self.heading.is_some() {
            LINE + 2.0
        } else {
            0.0
        }
    }

    /// Height in pixels of the legend drawn `width` px wide.
    pub fn height(&self, width: f64) -> f64 {
        if self.entries.is_empty() {
            return 0.0;
        }
        let lines: usize = self
            .rows(width)
            .iter()
            .map(|row| row.iter().map(Vec::len).max().unwrap_or(1))
            .sum();
        2.0 * PAD + self.heading_height() + lines as f64 * LINE + self.rows(width).len() as f64 * 3.0
    }

    /// Draw it with its top-left corner at (x, y), `width` px wide, as `<g class="legend">`.
    pub fn draw(&self, layer: &mut Layer, x: f64, y: f64, width: f64) {
        if self.entries.is_empty() {
            return;
        }
        layer.group("legend");
        layer.rect(
            Some("legend-frame"),
            (x, y),
            (width, self.height(width)),
            Some(Fill::new(RGBColor(255, 255, 255), 1.0)),
            Some(Stroke::new(RGBColor(170, 170, 170), 1.0)),
        );
        let mut top = y + PAD;
        if let Some(h) = &self.heading {
            layer.text(x + PAD, top + LINE / 2.0, Font::new(FONT).bold(), h);
            top += self.heading_height();
        }
        let column = (width - 2.0 * PAD) / self.columns as f64;
        for (row, lines) in self.grid().into_iter().zip(self.rows(width)) {
            for ((c, entry), text) in row.into_iter().zip(&lines) {
                let left = x + PAD + c as f64 * column;
                let mid = top + LINE / 2.0;
                draw_swatch(layer, entry.swatch, left + GAP / 2.0, mid);
                for (k, line) in text.iter().enumerate() {
                    layer.text(
                        left + GAP + SWATCH + GAP / 2.0,
                        mid + k as f64 * LINE,
                        Font::new(FONT).colour(entry.colour),
                        line,
                    );
                }
            }
            let tallest = lines.iter().map(Vec::len).max().unwrap_or(1);
            top += tallest as f64 * LINE + 3.0;
        }
        layer.end();
    }
}

fn draw_swatch(layer: &mut Layer, swatch: Swatch, x: f64, y: f64) {
    let (a, b) = ((x, y), (x + SWATCH, y));
    match swatch {
        Swatch::Line(stroke) => layer.line(a, b, stroke),
        Swatch::LineMarker(stroke, shape) => {
            layer.line(a, b, stroke);
            layer.marker(
                shape,
                (x + SWATCH / 2.0, y),
                7.0,
                Some(Fill::new(stroke.colour, 1.0)),
                None,
            );
        }
        Swatch::Marker(shape, fill, stroke) => layer.marker(shape, (x + SWATCH / 2.0, y), 9.0, fill, Some(stroke)),
        Swatch::Band(fill, edge) => {
            layer.rect(None, (x, y - 5.0), (SWATCH, 10.0), Some(fill), None);
            if let Some(edge) = edge {
                layer.line((x, y - 5.0), (x + SWATCH, y - 5.0), edge);
                layer.line((x, y + 5.0), (x + SWATCH, y + 5.0), edge);
            }
        }
        Swatch::Note => {}
    }
}
