//! The figure of a width x depth sweep: the observed probability of staying within
//! 1 +/- epsilon per grid cell (with a colour bar), the empirical frontier and each bound's
//! minimal width per depth, and a table of those widths per depth. A frontier outside the
//! swept range is marked by a triangle at the edge with its value, never clipped to the edge.

use plotters::prelude::*;

use super::legend::{Entry, Legend, Swatch};
use super::svg::{num, text_width, Anchor, Fill, Font, Layer, Shape, Stroke};
use super::sweep::{grid_points, grid_widths};
use super::{err, mark_plot_area, partial_note, Heading, PixelRect, PlotResult, Ticked, BOUND_COLOURS};
use crate::analysis::sweep::{Censoring, FrontierRow, PointReport};
use crate::spec::Spec;
use crate::theory::bounds::Bound;

const WIDTH: u32 = 1040;
/// Width of the map's chart (axes included); the colour bar is drawn to its right.
const MAP_WIDTH: u32 = 780;
/// Height of one depth row of the map, and the bounds on the plotting area's height.
const ROW: f64 = 100.0;
const MIN_PLOT: f64 = 400.0;
const MAX_PLOT: f64 = 900.0;
/// Space of the chart around its plotting area (margins, axis labels).
const CHART_FRAME: f64 = 90.0;
const BLACK_RGB: RGBColor = RGBColor(0, 0, 0);
const WHITE_RGB: RGBColor = RGBColor(255, 255, 255);
const MISSING: RGBColor = RGBColor(225, 225, 225);
/// Vertical place of each series in its depth row (row units, up positive): the empirical
/// frontier, then the bounds in `Bound::ALL` order; the cell's text sits above them.
const OFFSETS: [f64; 4] = [-0.02, -0.15, -0.28, -0.41];
const TEXT_OFFSET: f64 = 0.24;
const COLOUR_BAR_LABEL: &str = "observed P(all layers and samples within 1 +/- epsilon)";

/// Viridis (perceptually uniform, readable in grey), at eight stops.
const VIRIDIS: [(u8, u8, u8); 8] = [
    (68, 1, 84),
    (70, 50, 126),
    (54, 92, 141),
    (39, 127, 142),
    (31, 161, 135),
    (74, 193, 109),
    (160, 218, 57),
    (253, 231, 37),
];

fn viridis(q: f64) -> RGBColor {
    let q = if q.is_finite() { q.clamp(0.0, 1.0) } else { 0.0 };
    let t = q * (VIRIDIS.len() - 1) as f64;
    let i = (t.floor() as usize).min(VIRIDIS.len() - 2);
    let f = t - i as f64;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    let mix = |x: u8, y: u8| (f64::from(x) + f * (f64::from(y) - f64::from(x))).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Black on the light end of the colour map, white on the dark end.
fn ink(q: f64) -> RGBColor {
    if q >= 0.55 {
        BLACK_RGB
    } else {
        WHITE_RGB
    }
}

/// Where a series lies at one depth, in column units (column i is the i-th swept width).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Place {
    /// Within the swept range, at this column (fractional: log-interpolated between widths).
    At(f64),
    /// At or below the smallest width run at this depth (`empirical`), or below the range.
    Below,
    /// Above the largest width run at this depth, or above the range.
    Above,
}

/// The fractional column of width `w` among `widths` (ascending), log-interpolated; None
/// outside [first, last].
fn column(widths: &[usize], w: f64) -> Option<f64> {
    let logs: Vec<f64> = widths.iter().map(|&x| (x as f64).ln()).collect();
    let lw = w.ln();
    let (first, last) = (*logs.first()?, *logs.last()?);
    if lw < first - 1e-12 || lw > last + 1e-12 {
        return None;
    }
    if logs.len() == 1 {
        return Some(0.0);
    }
    let i = logs
        .iter()
        .rposition(|&l| l <= lw + 1e-12)
        .unwrap_or(0)
        .min(logs.len() - 2);
    Some(i as f64 + ((lw - logs[i]) / (logs[i + 1] - logs[i])).clamp(0.0, 1.0))
}

/// One series (the empirical frontier, a bound) at every depth row.
struct Series {
    colour: RGBColor,
    offset: f64,
    /// Per depth row: where it lies, and the value written beside an edge marker.
    places: Vec<Option<(Place, String)>>,
    dashed: bool,
    shape: Shape,
}

/// The per-depth table of minimal widths.
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

const TABLE_FONT: f64 = 12.0;
const TABLE_LINE: f64 = 17.0;

impl Table {
    fn column_widths(&self) -> Vec<f64> {
        (0..self.header.len())
            .map(|c| {
                std::iter::once(&self.header[c])
                    .chain(self.rows.iter().filter_map(|r| r.get(c)))
                    .map(|t| text_width(t, TABLE_FONT))
                    .fold(0.0, f64::max)
                    + 18.0
            })
            .collect()
    }

    fn height(&self) -> f64 {
        (self.rows.len() + 2) as f64 * TABLE_LINE + 12.0
    }

    fn draw(&self, layer: &mut Layer, x: f64, y: f64, width: f64, caption: &str) {
        layer.group("frontier-table");
        layer.rect(
            None,
            (x, y),
            (width, self.height()),
            Some(Fill::new(WHITE_RGB, 1.0)),
            Some(Stroke::new(RGBColor(170, 170, 170), 1.0)),
        );
        layer.text(
            x + 6.0,
            y + 6.0 + TABLE_LINE / 2.0,
            Font::new(TABLE_FONT).bold(),
            caption,
        );
        let widths = self.column_widths();
        let mut cy = y + 6.0 + TABLE_LINE * 1.5;
        for (r, row) in std::iter::once(&self.header).chain(&self.rows).enumerate() {
            let mut cx = x + 6.0;
            for (c, cell) in row.iter().enumerate() {
                let font = if r == 0 {
                    Font::new(TABLE_FONT).bold()
                } else {
                    Font::new(TABLE_FONT)
                };
                layer.text(cx, cy, font, cell);
                cx += widths.get(c).copied().unwrap_or(60.0);
            }
            if r == 0 {
                layer.line(
                    (x + 6.0, cy + TABLE_LINE / 2.0),
                    (x + width - 6.0, cy + TABLE_LINE / 2.0),
                    Stroke::new(RGBColor(170, 170, 170), 1.0),
                );
            }
            cy += TABLE_LINE;
        }
        layer.end();
    }
}

/// The grid of the sweep (all of it, run or not) and the points run so far.
struct Grid<'a> {
    widths: Vec<usize>,
    depths: Vec<usize>,
    points: &'a [PointReport],
}

impl Grid<'_> {
    fn column_of(&self, w: usize) -> Option<f64> {
        self.widths.iter().position(|&x| x == w).map(|i| i as f64)
    }

    /// The widths run at depth `d`, ascending.
    fn run_at(&self, d: usize) -> Vec<usize> {
        let mut w: Vec<usize> = self.points.iter().filter(|p| p.depth == d).map(|p| p.width).collect();
        w.sort_unstable();
        w
    }

    fn first(&self) -> usize {
        self.widths.first().copied().unwrap_or(0)
    }

    fn last(&self) -> usize {
        self.widths.last().copied().unwrap_or(0)
    }
}

/// A frontier found among the widths run at one depth, in words: `1000`, `<= 500` (the
/// smallest width run already meets the target), `> 4000` (none does).
fn describe(run: &[usize], found: Option<usize>, censoring: Option<Censoring>) -> String {
    let (Some(first), Some(last)) = (run.first(), run.last()) else {
        return "not run yet".into();
    };
    match (censoring, found) {
        (Some(Censoring::BelowRange), _) => format!("<= {first}"),
        (Some(Censoring::AboveRange), _) | (None, None) => format!("> {last}"),
        (None, Some(w)) => w.to_string(),
    }
}

/// The empirical frontier and each bound's minimal width, per depth row.
fn all_series(grid: &Grid, frontier: &[FrontierRow]) -> Vec<Series> {
    let row_of = |d: usize| frontier.iter().find(|r| r.depth == d);
    let empirical = grid
        .depths
        .iter()
        .map(|&d| {
            let run = grid.run_at(d);
            let r = row_of(d).filter(|_| !run.is_empty())?;
            let place = match (
                r.empirical_censoring,
                r.empirical_min_width.and_then(|w| grid.column_of(w)),
            ) {
                (Some(Censoring::BelowRange), _) => Place::Below,
                (Some(Censoring::AboveRange), _) | (None, None) => Place::Above,
                (None, Some(c)) => Place::At(c),
            };
            Some((place, describe(&run, r.empirical_min_width, r.empirical_censoring)))
        })
        .collect();
    let mut series = vec![Series {
        colour: BLACK_RGB,
        offset: OFFSETS[0],
        places: empirical,
        dashed: false,
        shape: Shape::Circle,
    }];
    for (k, (bound, colour)) in Bound::ALL.iter().zip(BOUND_COLOURS).enumerate() {
        let places = grid
            .depths
            .iter()
            .map(|&d| {
                let pb = row_of(d)?.bounds.iter().find(|x| x.bound == bound.name())?;
                Some(match pb.min_width {
                    None => (Place::Above, "beyond search limit".to_string()),
                    Some(m) => match column(&grid.widths, m as f64) {
                        Some(c) => (Place::At(c), m.to_string()),
                        None if (m as usize) < grid.first() => (Place::Below, m.to_string()),
                        None => (Place::Above, m.to_string()),
                    },
                })
            })
            .collect();
        series.push(Series {
            colour,
            offset: OFFSETS[k + 1],
            places,
            dashed: true,
            shape: Shape::Diamond,
        });
    }
    series
}

/// Per depth: the empirical and confident frontiers and each bound's minimal width.
fn frontier_table(grid: &Grid, frontier: &[FrontierRow]) -> Table {
    let rows = grid
        .depths
        .iter()
        .map(|&d| {
            let run = grid.run_at(d);
            let row = frontier.iter().find(|r| r.depth == d);
            let mut cells = vec![
                d.to_string(),
                row.map_or("not run yet".into(), |r| {
                    describe(&run, r.empirical_min_width, r.empirical_censoring)
                }),
                row.map_or("not run yet".into(), |r| {
                    describe(&run, r.confident_min_width, r.confident_censoring)
                }),
            ];
            for b in Bound::ALL {
                let pb = row.and_then(|r| r.bounds.iter().find(|x| x.bound == b.name()));
                cells.push(match pb.map(|pb| pb.min_width) {
                    None => "n/a".into(),
                    Some(None) => "beyond search limit".into(),
                    Some(Some(m)) if (m as usize) < grid.first() => format!("{m} (below range)"),
                    Some(Some(m)) if (m as usize) > grid.last() => format!("{m} (above range)"),
                    Some(Some(m)) => m.to_string(),
                });
            }
            cells
        })
        .collect();
    Table {
        header: ["depth L", "empirical", "confident (95% CP lower)"]
            .into_iter()
            .map(String::from)
            .chain(Bound::ALL.iter().map(|b| b.name().to_string()))
            .collect(),
        rows,
    }
}

fn networks(trials: usize) -> String {
    match trials {
        1 => "1 network".to_string(),
        t => format!("{t} networks"),
    }
}

fn map_legend(spec: &Spec) -> Legend {
    let mut legend = Legend::new(None, 2);
    legend.push(Entry::new(
        Swatch::LineMarker(Stroke::new(BLACK_RGB, 2.5), Shape::Circle),
        format!(
            "empirical frontier: smallest swept width with observed P >= 1 - delta = {}",
            num(1.0 - spec.delta, 4)
        ),
    ));
    for (bound, colour) in Bound::ALL.iter().zip(BOUND_COLOURS) {
        legend.push(Entry::new(
            Swatch::LineMarker(Stroke::new(colour, 2.0).dashed("7 4"), Shape::Diamond),
            format!(
                "{}: minimal width for epsilon = {}, delta = {} (placed between swept widths on a log scale)",
                bound.name(),
                num(spec.epsilon, 4),
                num(spec.delta, 4)
            ),
        ));
    }
    legend.push(Entry::new(
        Swatch::Marker(
            Shape::Right,
            Some(Fill::new(BLACK_RGB, 1.0)),
            Stroke::new(WHITE_RGB, 1.0),
        ),
        "triangle at an edge: the width lies beyond the swept range (its value beside it and in the table)",
    ));
    legend.push(Entry::note(
        "in each cell: the observed P (colour bar at the right), and networks within / networks run",
    ));
    legend
}

/// A series at one depth row, in pixels.
struct Mark {
    place: Place,
    at: (f64, f64),
    text: String,
}

/// A cell of the map, in pixels, and its point if it was run.
struct Cell<'a> {
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
    point: Option<&'a PointReport>,
}

/// Lines between neighbouring rows where both lie inside the range, markers, and edge
/// triangles with their value.
fn draw_series(layer: &mut Layer, series: &[Series], marks: &[Vec<Option<Mark>>]) {
    for (s, marks) in series.iter().zip(marks) {
        layer.group("frontier");
        let stroke = if s.dashed {
            Stroke::new(s.colour, 2.0).dashed("7 4")
        } else {
            Stroke::new(s.colour, 2.5)
        };
        for pair in marks.windows(2) {
            if let [Some(a), Some(b)] = pair {
                if matches!((a.place, b.place), (Place::At(_), Place::At(_))) {
                    layer.line(a.at, b.at, Stroke::new(WHITE_RGB, 4.5));
                    layer.line(a.at, b.at, stroke);
                }
            }
        }
        for m in marks.iter().flatten() {
            let fill = Some(Fill::new(s.colour, 1.0));
            if let Place::At(_) = m.place {
                layer.marker(s.shape, m.at, 10.0, fill, Some(Stroke::new(WHITE_RGB, 1.5)));
                continue;
            }
            let below = m.place == Place::Below;
            let shape = if below { Shape::Left } else { Shape::Right };
            layer.marker(shape, m.at, 13.0, fill, Some(Stroke::new(WHITE_RGB, 2.0)));
            let label_w = text_width(&m.text, 11.0) + 6.0;
            let (x, anchor, left) = if below {
                (m.at.0 + 9.0, Anchor::Start, m.at.0 + 7.0)
            } else {
                (m.at.0 - 9.0, Anchor::End, m.at.0 - 7.0 - label_w)
            };
            layer.rect(
                None,
                (left, m.at.1 - 7.5),
                (label_w, 15.0),
                Some(Fill::new(WHITE_RGB, 0.85)),
                None,
            );
            layer.text(x, m.at.1, Font::new(11.0).colour(s.colour).anchor(anchor), &m.text);
        }
        layer.end();
    }
}

/// Each cell's probability and counts, on a patch of the cell's own colour (frontier lines
/// crossing the cell pass behind it).
fn draw_cell_texts(layer: &mut Layer, cells: &[Cell]) {
    layer.group("cells");
    for c in cells {
        let (w, h) = (c.right - c.left, c.bottom - c.top);
        if w < 28.0 {
            continue;
        }
        let font = (w / 5.0).clamp(9.0, 13.0);
        let cx = (c.left + c.right) / 2.0;
        let cy = c.top + h * (0.5 - TEXT_OFFSET);
        let Some(p) = c.point else {
            let grey = Font::new(font).colour(RGBColor(90, 90, 90)).anchor(Anchor::Middle);
            layer.text(cx, cy, grey, "not run");
            continue;
        };
        let q = p.all_within.probability;
        let f = Font::new(font).colour(ink(q)).anchor(Anchor::Middle);
        let head = format!("P = {}", num(q, 3));
        let count = format!("{}/{}", p.all_within.successes, p.all_within.trials);
        let two = h >= 60.0;
        let patch = text_width(&head, font).max(text_width(&count, font)) + 8.0;
        let (y0, ph) = if two {
            (cy - font * 1.35, font * 2.7)
        } else {
            (cy - font * 0.9, font * 1.8)
        };
        layer.rect(
            None,
            (cx - patch / 2.0, y0),
            (patch, ph),
            Some(Fill::new(viridis(q), 0.9)),
            None,
        );
        if two {
            layer.text(cx, cy - font * 0.6, f.bold(), &head);
            layer.text(cx, cy + font * 0.6, f, &count);
        } else {
            layer.text(cx, cy, f.bold(), &head);
        }
    }
    layer.end();
}

/// The colour bar right of the map, as tall as its plotting area, with ticks, the 1 - delta
/// target and its label.
fn draw_colour_bar(layer: &mut Layer, plot: PixelRect, spec: &Spec) {
    layer.group("colour-bar");
    let bar_x = f64::from(MAP_WIDTH) + 20.0;
    let bar_w = 22.0;
    let steps = 60;
    let h = plot.bottom - plot.top;
    for k in 0..steps {
        let y = plot.bottom - (k + 1) as f64 * h / steps as f64;
        let q = (k as f64 + 0.5) / steps as f64;
        layer.rect(
            None,
            (bar_x, y),
            (bar_w, h / steps as f64 + 0.5),
            Some(Fill::new(viridis(q), 1.0)),
            None,
        );
    }
    layer.rect(
        None,
        (bar_x, plot.top),
        (bar_w, h),
        None,
        Some(Stroke::new(RGBColor(60, 60, 60), 1.0)),
    );
    let target = 1.0 - spec.delta;
    let ty = plot.bottom - target * h;
    for q in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let y = plot.bottom - q * h;
        layer.line(
            (bar_x + bar_w, y),
            (bar_x + bar_w + 5.0, y),
            Stroke::new(BLACK_RGB, 1.0),
        );
        if (y - ty).abs() >= 14.0 {
            layer.text(bar_x + bar_w + 8.0, y, Font::new(12.0), &num(q, 2));
        }
    }
    let red = RGBColor(200, 0, 0);
    layer.line((bar_x - 4.0, ty), (bar_x + bar_w + 5.0, ty), Stroke::new(red, 2.0));
    layer.text(
        bar_x + bar_w + 8.0,
        ty,
        Font::new(12.0).colour(red),
        &format!("1 - delta = {}", num(target, 4)),
    );
    let label_x = bar_x + bar_w + 128.0;
    let middle = (plot.top + plot.bottom) / 2.0;
    layer.text(
        label_x,
        middle,
        Font::new(13.0).anchor(Anchor::Middle).vertical(),
        COLOUR_BAR_LABEL,
    );
    layer.text(
        label_x + 20.0,
        middle,
        Font::new(12.0).anchor(Anchor::Middle).vertical(),
        &format!(
            "epsilon = {}, over {} per cell",
            num(spec.epsilon, 4),
            networks(spec.trials)
        ),
    );
    layer.end();
}

/// The figure of a width x depth sweep: per cell, the observed probability over networks that
/// every layer and sample stays within 1 +/- epsilon (colour, explained by a colour bar, and
/// written in the cell); per depth, the empirical frontier (smallest swept width with observed
/// probability >= 1 - delta) and each bound's minimal width, drawn where they lie inside the
/// swept range and marked by a triangle at the edge with their value where they do not; a table
/// of all of them per depth. A sweep with fewer points than its grid says so under the title.
pub fn map_svg(
    title: &str,
    spec: &Spec,
    points: &[PointReport],
    frontier: &[FrontierRow],
    job_status: &str,
) -> PlotResult {
    let mut depths: Vec<usize> = match spec.sweep() {
        Some(s) => s.depths.clone(),
        None => points.iter().map(|p| p.depth).collect(),
    };
    depths.sort_unstable();
    depths.dedup();
    let grid = Grid {
        widths: grid_widths(spec, points),
        depths,
        points,
    };
    let (nw, nd) = (grid.widths.len().max(1), grid.depths.len().max(1));
    let series = all_series(&grid, frontier);
    let table = frontier_table(&grid, frontier);
    let legend = map_legend(spec);

    let width = f64::from(WIDTH);
    let heading = Heading::new(
        title,
        partial_note(points.len(), grid_points(spec, points), job_status),
        width,
    );
    let chart_height = (nd as f64 * ROW).clamp(MIN_PLOT, MAX_PLOT) + CHART_FRAME;
    let legend_width = width - 40.0;
    let legend_height = legend.height(legend_width);
    let top = heading.height().ceil();
    let height = top + chart_height + legend_height + 10.0 + table.height() + 16.0;
    let mut layer = Layer::new();
    heading.draw(&mut layer, width);

    let mut svg = String::new();
    let plot: PixelRect;
    let mut marks: Vec<Vec<Option<Mark>>> = Vec::new();
    let mut cells: Vec<Cell> = Vec::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height.ceil() as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (_, rest) = root.split_vertically(top as u32);
        let (row_area, _) = rest.split_vertically(chart_height.ceil() as u32);
        let (area, _) = row_area.split_horizontally(MAP_WIDTH);
        // Column labels: every width, or every k-th when they would run into each other.
        let longest = grid
            .widths
            .iter()
            .map(|w| text_width(&w.to_string(), 12.0))
            .fold(0.0, f64::max);
        let per_column = (f64::from(MAP_WIDTH) - 120.0) / nw as f64;
        let every = ((longest + 10.0) / per_column).ceil().max(1.0) as usize;
        let x_keys: Vec<f64> = (0..nw).step_by(every).map(|i| i as f64).collect();
        let y_keys: Vec<f64> = (0..nd).map(|i| i as f64).collect();
        let mut chart = ChartBuilder::on(&area)
            .margin(16)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(
                Ticked::new(-0.5..nw as f64 - 0.5, x_keys),
                Ticked::new(-0.5..nd as f64 - 0.5, y_keys),
            )
            .map_err(err)?;
        let label = |values: &[usize], v: f64| {
            values
                .get(v.round().max(0.0) as usize)
                .map_or(String::new(), |x| x.to_string())
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_label_formatter(&|v| label(&grid.widths, *v))
            .y_label_formatter(&|v| label(&grid.depths, *v))
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 16))
            .x_desc("width m (swept values)")
            .y_desc("depth L")
            .draw()
            .map_err(err)?;
        for (j, &d) in grid.depths.iter().enumerate() {
            for (i, &w) in grid.widths.iter().enumerate() {
                let point = points.iter().find(|p| p.width == w && p.depth == d);
                let colour = point.map_or(MISSING, |p| viridis(p.all_within.probability));
                let (x, y) = (i as f64, j as f64);
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)],
                        colour.filled(),
                    )))
                    .map_err(err)?;
                let (left, top) = chart.backend_coord(&(x - 0.5, y + 0.5));
                let (right, bottom) = chart.backend_coord(&(x + 0.5, y - 0.5));
                cells.push(Cell {
                    left: f64::from(left),
                    top: f64::from(top),
                    right: f64::from(right),
                    bottom: f64::from(bottom),
                    point,
                });
            }
        }
        plot = mark_plot_area(&mut layer, chart.plotting_area().get_pixel_range());
        let px = |x: f64, y: f64| -> f64 { f64::from(chart.backend_coord(&(x, y)).0) };
        for s in &series {
            let row_marks = s
                .places
                .iter()
                .zip(&grid.depths)
                .enumerate()
                .map(|(j, (place, &d))| {
                    let (place, text) = place.clone()?;
                    let y = j as f64 + s.offset;
                    let py = f64::from(chart.backend_coord(&(0.0, y)).1);
                    // The empirical frontier is censored by the widths run at its depth (all of
                    // the grid's once the sweep is complete); a bound's, by the grid.
                    let run = grid.run_at(d);
                    let first = run.first().and_then(|&w| grid.column_of(w)).unwrap_or(0.0);
                    let last = run.last().and_then(|&w| grid.column_of(w)).unwrap_or(nw as f64 - 1.0);
                    let empirical = s.shape == Shape::Circle;
                    let x = match place {
                        Place::At(c) => px(c, y),
                        Place::Below if empirical => px(first - 0.5, y) + 8.0,
                        Place::Below => plot.left + 8.0,
                        Place::Above if empirical => px(last + 0.5, y) - 8.0,
                        Place::Above => plot.right - 8.0,
                    };
                    Some(Mark {
                        place,
                        at: (x, py),
                        text,
                    })
                })
                .collect();
            marks.push(row_marks);
        }
        root.present().map_err(err)?;
    }
    draw_series(&mut layer, &series, &marks);
    draw_cell_texts(&mut layer, &cells);
    draw_colour_bar(&mut layer, plot, spec);
    let legend_top = top + chart_height;
    legend.draw(&mut layer, 20.0, legend_top, legend_width);
    table.draw(
        &mut layer,
        20.0,
        legend_top + legend_height + 10.0,
        legend_width,
        &format!(
            "minimal width per depth (swept {} to {}; <= w: at or below the smallest width run, > w: above the largest)",
            grid.first(),
            grid.last()
        ),
    );
    Ok(layer.into_document(svg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_interpolate_on_a_log_scale_and_stop_at_the_range() {
        let w = [500, 1000, 2000, 4000];
        assert_eq!(column(&w, 500.0), Some(0.0));
        assert_eq!(column(&w, 4000.0), Some(3.0));
        let c = column(&w, 4000f64.sqrt() * 2000f64.sqrt()).unwrap_or(f64::NAN);
        assert!((c - 2.5).abs() < 1e-9, "{c}");
        assert_eq!(column(&w, 4061.0), None);
        assert_eq!(column(&w, 499.0), None);
    }

    #[test]
    fn the_colour_map_runs_from_dark_to_light() {
        let lum = |c: RGBColor| 0.2126 * f64::from(c.0) + 0.7152 * f64::from(c.1) + 0.0722 * f64::from(c.2);
        let l: Vec<f64> = (0..=10).map(|i| lum(viridis(i as f64 / 10.0))).collect();
        assert!(l.windows(2).all(|w| w[1] > w[0]), "{l:?}");
    }
}
