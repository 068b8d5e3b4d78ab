//! Figures as SVG (plotters, SVG backend only: text is left to the viewer, no fonts needed).
//!
//! Holds one file per figure family: `norms` (ratios per layer), `sweep` (deviation vs width),
//! `map` (width x depth), `residual` (a sweep of residual networks against the number of blocks),
//! `search` (a minimal-width search: P against width, looseness against depth), `geometry`
//! (cosines per layer), `worst_case` (worst-case deviation against sqrt(n0 / m), the bracket per
//! layer), `histogram` (one layer's kept ratios beside the exact density), each taking typed
//! results, the job's spec and a title; `legend` and
//! `svg` hold what is drawn beside plotters' charts (titles, legends, colour bars, tables),
//! placed in strips of their own so that it never covers data. Every plotting area is marked
//! by a `<rect class="plot-area">` and every legend is a `<g class="legend">`.
//! Depends on: `analysis` (the result types), `theory` (bound names), `spec` (the job's
//! settings: epsilon, delta, trials, weights, grid).

mod compare;
mod geometry;
mod histogram;
mod legend;
mod map;
mod norms;
mod residual;
mod search;
mod svg;
mod sweep;
mod worst_case;

pub use compare::{compare_svg, Compared, COMPARE_COLOURS};
pub use geometry::geometry_svg;
pub use histogram::{density_points, histogram_svg, HistogramOf};
pub use map::map_svg;
pub use norms::norms_svg;
pub use residual::blocks_svg;
pub use search::{search_svg, table_svg};
pub use sweep::sweep_svg;
pub use worst_case::worst_case_svg;

use plotters::chart::MeshStyle;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::{DrawingArea, DrawingBackend, IntoDrawingArea, SVGBackend, TRANSPARENT, WHITE};
use plotters::style::RGBColor;

use crate::spec::Spec;
use svg::{wrap, Font, Layer};

/// Colours of the bounds, in the order of `Bound::ALL`.
const BOUND_COLOURS: [RGBColor; 3] = [RGBColor(214, 39, 40), RGBColor(44, 160, 44), RGBColor(148, 103, 189)];
/// One colour per series of a figure (initial angles, widths, hidden widths), cycled by
/// [`series_colour`].
const SERIES_COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The colour of series `i` (cycled beyond ten).
fn series_colour(i: usize) -> RGBColor {
    SERIES_COLOURS[i % SERIES_COLOURS.len()]
}

/// Measured values (and the forward ratio where both ratios share a chart).
const MEASURED: RGBColor = RGBColor(31, 119, 180);
/// Predicted values (and the gradient ratio where both ratios share a chart).
const PREDICTED: RGBColor = RGBColor(217, 95, 2);
/// The spec's epsilon.
const EPSILON: RGBColor = RGBColor(110, 110, 110);
/// Warnings in a figure (a partial sweep).
const WARNING: RGBColor = RGBColor(180, 0, 0);

/// A figure as SVG text, or why it could not be drawn.
pub type PlotResult = Result<String, String>;

fn err<E: std::fmt::Display>(e: E) -> String {
    format!("drawing the figure: {e}")
}

/// The title of a job's figure: `arpit2019-fig6 (job 1a2b3c4d): <the spec>`, without the
/// preset when there is none, without the spec when it is unknown.
pub fn figure_title(job_id: &str, preset: Option<&str>, spec: Option<&Spec>) -> String {
    let short: String = job_id.chars().take(8).collect();
    let head = match preset {
        Some(p) => format!("{p} (job {short})"),
        None => format!("job {short}"),
    };
    match spec {
        Some(s) => format!("{head}: {s}"),
        None => head,
    }
}

const TITLE_FONT: f64 = 14.0;
const TITLE_LINE: f64 = 18.0;

/// The title wrapped to `width` px, and a red note under it (a partial sweep).
struct Heading {
    lines: Vec<String>,
    note: Option<String>,
}

impl Heading {
    /// A title too long for one line breaks after its head (`preset (job id):`), then wraps.
    fn new(title: &str, note: Option<String>, width: f64) -> Heading {
        let room = width - 40.0;
        let lines = match title.split_once(": ") {
            Some((head, rest)) if svg::text_width(title, TITLE_FONT) > room => std::iter::once(format!("{head}:"))
                .chain(wrap(rest, TITLE_FONT, room))
                .collect(),
            _ => wrap(title, TITLE_FONT, room),
        };
        Heading { lines, note }
    }

    fn height(&self) -> f64 {
        let lines = self.lines.len() + usize::from(self.note.is_some());
        12.0 + lines as f64 * TITLE_LINE
    }

    fn draw(&self, layer: &mut Layer, width: f64) {
        let mut y = 8.0 + TITLE_LINE / 2.0;
        layer.group("title");
        for line in &self.lines {
            layer.text(width / 2.0, y, Font::new(TITLE_FONT).anchor(svg::Anchor::Middle), line);
            y += TITLE_LINE;
        }
        layer.end();
        if let Some(note) = &self.note {
            layer.group("partial");
            layer.text(
                width / 2.0,
                y,
                Font::new(TITLE_FONT).bold().colour(WARNING).anchor(svg::Anchor::Middle),
                note,
            );
            layer.end();
        }
    }
}

/// The house style of every chart's mesh: 15 px tick labels, 16 px axis names, light grey
/// grid lines at the labelled ticks only.
fn house_mesh<'m, 'a, 'b, X, Y, DB>(mesh: &'m mut MeshStyle<'a, 'b, X, Y, DB>) -> &'m mut MeshStyle<'a, 'b, X, Y, DB>
where
    X: Ranged<ValueType: std::fmt::Debug>,
    Y: Ranged<ValueType: std::fmt::Debug>,
    DB: DrawingBackend,
{
    mesh.label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .bold_line_style(RGBColor(225, 225, 225))
        .light_line_style(TRANSPARENT)
}

/// Ticks at round values over [lo, hi]: steps of 1, 2, 2.5 or 5 times a power of ten, at most
/// about eight.
fn round_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1e-9);
    let base = 10f64.powf((span / 8.0).log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * base)
        .find(|s| span / s <= 8.0)
        .unwrap_or(10.0 * base);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// The page a figure is drawn on: white, `width` px wide and `height` tall, the heading in its
/// top `top` px. `draw` gets the rest of the page (plotters' charts above the legend strip) and
/// the layer of hand-drawn marks; the layer comes back (legends still to draw) with the SVG.
fn frame(
    heading: &Heading,
    width: u32,
    height: f64,
    top: f64,
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>, &mut Layer) -> Result<(), String>,
) -> Result<(Layer, String), String> {
    let mut layer = Layer::new();
    heading.draw(&mut layer, f64::from(width));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height.ceil() as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (_, rest) = root.split_vertically(top as u32);
        draw(&rest, &mut layer)?;
        root.present().map_err(err)?;
    }
    Ok((layer, svg))
}

/// "partial: k of n points (job running)" when a sweep's figure shows fewer points than its grid.
fn partial_note(shown: usize, grid: usize, job_status: &str) -> Option<String> {
    (shown < grid).then(|| format!("partial: {shown} of {grid} points (job {job_status})"))
}

/// The pixel rectangle of a chart's plotting area, marked in the document as
/// `<rect class="plot-area">` (also its frame).
fn mark_plot_area(layer: &mut Layer, (x, y): (std::ops::Range<i32>, std::ops::Range<i32>)) -> PixelRect {
    let rect = PixelRect {
        left: f64::from(x.start),
        top: f64::from(y.start),
        right: f64::from(x.end),
        bottom: f64::from(y.end),
    };
    layer.rect(
        Some("plot-area"),
        (rect.left, rect.top),
        (rect.right - rect.left, rect.bottom - rect.top),
        None,
        Some(svg::Stroke::new(RGBColor(60, 60, 60), 1.0)),
    );
    rect
}

/// A linear f64 axis with the ticks given (plotters' `with_key_points` leaves an f64 axis
/// without a label formatter).
struct Ticked {
    inner: RangedCoordf64,
    ticks: Vec<f64>,
}

impl Ticked {
    fn new(range: std::ops::Range<f64>, ticks: Vec<f64>) -> Ticked {
        Ticked {
            inner: range.into(),
            ticks,
        }
    }
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.inner.range()
    }
}

#[derive(Clone, Copy, Debug)]
struct PixelRect {
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
}

#[cfg(test)]
mod tests;
