//! The figure of a `norms` job: forward and gradient ratio per layer, measured and predicted,
//! beside the spec's 1 +/- epsilon and each bound's guaranteed epsilon at the network's width.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::legend::{Entry, Legend, Swatch};
use super::svg::{num, Fill, Layer, Shape, Stroke};
use super::{
    err, frame, house_mesh, mark_plot_area, Heading, PixelRect, PlotResult, Ticked, BOUND_COLOURS, EPSILON, MEASURED,
    PREDICTED,
};
use crate::analysis::predict::RatioPrediction;
use crate::analysis::report::{BoundCheck, LayerReport, Verdict};
use crate::analysis::stats::RatioStats;
use crate::spec::{Network, Spec, WeightNormGain, Weights};
use crate::theory::bounds::Bound;

const WIDTH: u32 = 1100;
const PANEL_HEIGHT: u32 = 420;
/// Layers up to which every layer gets a tick.
const ALL_TICKS_UP_TO: usize = 20;

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// Which ratio a panel shows.
#[derive(Clone, Copy, PartialEq)]
enum Ratio {
    Forward,
    Gradient,
}

impl Ratio {
    fn name(self) -> &'static str {
        match self {
            Ratio::Forward => "forward",
            Ratio::Gradient => "gradient",
        }
    }

    fn measured(self, l: &LayerReport) -> &RatioStats {
        match self {
            Ratio::Forward => &l.forward,
            Ratio::Gradient => &l.gradient,
        }
    }

    fn predicted(self, l: &LayerReport) -> &RatioPrediction {
        match self {
            Ratio::Forward => &l.predicted.forward,
            Ratio::Gradient => &l.predicted.gradient,
        }
    }

    /// What the panel plots, as the simulator defines it (`sim::TrialRatios`, `sim::dense`).
    fn axis(self, net: &Network) -> &'static str {
        if net.is_residual() {
            return match self {
                Ratio::Forward => "||h^b|| / ||x||",
                Ratio::Gradient => "||dL/dh^(b-1)|| / ||dL/dh^B||",
            };
        }
        match (self, &net.weights) {
            (Ratio::Forward, _) => "||h^l|| / ||x||",
            (Ratio::Gradient, Weights::Plain(_)) => "||delta^l|| ||h^(l-1)|| / (||x|| ||delta^L||)",
            (Ratio::Gradient, Weights::Normalized(wn)) if wn.gain == WeightNormGain::Derived => {
                "||dL/dV^l||_F / (g_l ||x|| ||delta^L||)"
            }
            (Ratio::Gradient, Weights::Normalized(_)) => "||dL/dV^l||_F / (||x|| ||delta^L||)",
        }
    }

    /// The approximation used where there is no exact law (`analysis::predict`).
    fn approximation(self, residual: bool) -> &'static str {
        match (self, residual) {
            (Ratio::Forward, false) => "sqrt of the second moment",
            (Ratio::Forward, true) => "log-normal from the exact second and fourth moments",
            (Ratio::Gradient, _) => "mean-field",
        }
    }
}

/// Layers that get a tick: every layer up to 20, else the multiples of a round step (and 1).
pub(super) fn layer_ticks(depth: usize) -> Vec<f64> {
    if depth <= ALL_TICKS_UP_TO {
        return (1..=depth).map(|l| l as f64).collect();
    }
    let step = [2, 5, 10, 20, 50, 100, 200, 500]
        .into_iter()
        .find(|s| depth / s <= ALL_TICKS_UP_TO)
        .unwrap_or(1000);
    // Layer 1 too, unless its label would crowd the first multiple's.
    let first = (step >= 5).then_some(1);
    first
        .into_iter()
        .chain((step..=depth).step_by(step))
        .map(|l| l as f64)
        .collect()
}

/// A band as a closed polygon: along the upper edge, back along the lower one. A band of one
/// layer is drawn a quarter layer to each side.
pub(super) fn band_polygon(band: &[(f64, f64, f64)]) -> Vec<(f64, f64)> {
    let widened: Vec<(f64, f64, f64)> = match band {
        [(x, lo, hi)] => vec![(x - 0.25, *lo, *hi), (x + 0.25, *lo, *hi)],
        _ => band.to_vec(),
    };
    widened
        .iter()
        .map(|&(x, _, hi)| (x, hi))
        .chain(widened.iter().rev().map(|&(x, lo, _)| (x, lo)))
        .collect()
}

/// One bound's guarantee as drawn in a panel: its lines, or why none.
struct BoundLines {
    colour: RGBColor,
    lines: Vec<f64>,
}

/// Everything one panel draws, decided before drawing (its legend's height sizes the figure).
struct Panel {
    ratio: Ratio,
    depth: usize,
    y_desc: &'static str,
    /// Residual network: the x axis counts blocks.
    residual: bool,
    y_range: (f64, f64),
    epsilon: f64,
    measured_mean: Vec<(f64, f64)>,
    measured_band: Vec<(f64, f64, f64)>,
    predicted_mean: Vec<(f64, f64)>,
    predicted_band: Vec<(f64, f64, f64)>,
    bounds: Vec<BoundLines>,
    legend: Legend,
}

impl Panel {
    fn new(ratio: Ratio, spec: &Spec, layers: &[LayerReport], checks: &[BoundCheck]) -> Panel {
        let x = |l: &LayerReport| l.layer as f64;
        let measured_mean: Vec<(f64, f64)> = layers
            .iter()
            .filter_map(|l| Some((x(l), finite(ratio.measured(l).mean)?)))
            .collect();
        let measured_band: Vec<(f64, f64, f64)> = layers
            .iter()
            .filter_map(|l| {
                let s = ratio.measured(l);
                Some((x(l), finite(s.p05)?, finite(s.p95)?))
            })
            .collect();
        let predicted_mean: Vec<(f64, f64)> = layers
            .iter()
            .filter_map(|l| Some((x(l), finite(ratio.predicted(l).mean)?)))
            .collect();
        let predicted_band: Vec<(f64, f64, f64)> = layers
            .iter()
            .filter_map(|l| {
                let p = ratio.predicted(l);
                Some((x(l), finite(p.p05?)?, finite(p.p95?)?))
            })
            .collect();
        let exact = !layers.is_empty() && layers.iter().all(|l| ratio.predicted(l).exact);
        let residual = spec.network.is_residual();
        let epsilon = spec.epsilon;

        // The data's range, then each bound's lines where they keep the axis readable.
        let mut lo = 1.0 - epsilon;
        let mut hi = 1.0 + epsilon;
        let values = measured_mean
            .iter()
            .chain(&predicted_mean)
            .map(|p| p.1)
            .chain(measured_band.iter().chain(&predicted_band).flat_map(|b| [b.1, b.2]));
        for v in values {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        let span = (hi - lo).max(0.05);
        let (allowed_lo, allowed_hi) = (lo - span, hi + span);

        let mut legend = Legend::new(None, 1);
        legend.push(Entry::new(
            Swatch::Band(Fill::new(EPSILON, 0.16), Some(Stroke::new(EPSILON, 1.0).dashed("2 2"))),
            format!("the spec's 1 +/- epsilon (epsilon = {})", num(epsilon, 4)),
        ));
        let networks = match spec.trials {
            1 => "1 network".to_string(),
            t => format!("{t} networks"),
        };
        legend.push(Entry::new(
            Swatch::Band(Fill::new(MEASURED, 0.28), None),
            format!("measured p05-p95 over the inputs of {networks}"),
        ));
        legend.push(Entry::new(
            Swatch::LineMarker(Stroke::new(MEASURED, 2.0), Shape::Circle),
            "measured mean",
        ));
        if predicted_band.is_empty() {
            legend.push(Entry::note(format!(
                "no predicted p05-p95: no exact law for this init ({})",
                ratio.approximation(residual)
            )));
        } else {
            legend.push(Entry::new(
                Swatch::Band(
                    Fill::new(PREDICTED, 0.12),
                    Some(Stroke::new(PREDICTED, 1.2).dashed("4 3")),
                ),
                "exact law p05-p95 over networks and inputs",
            ));
        }
        legend.push(Entry::new(
            Swatch::LineMarker(Stroke::new(PREDICTED, 1.5), Shape::Diamond),
            if exact {
                "predicted mean (exact law)".to_string()
            } else {
                format!(
                    "predicted mean: no exact law for this init: {}",
                    ratio.approximation(residual)
                )
            },
        ));

        let mut bounds = Vec::new();
        // Bounds that make no claim on this ratio here, grouped by the reason.
        let mut silent: Vec<(String, Vec<&str>)> = Vec::new();
        for (bound, colour) in Bound::ALL.iter().zip(BOUND_COLOURS) {
            let name = bound.name();
            let Some(check) = checks.iter().find(|c| c.bound == name) else {
                continue;
            };
            let evidence = match ratio {
                Ratio::Forward => &check.claims.forward,
                Ratio::Gradient => &check.claims.gradient,
            };
            let g = check.guaranteed_epsilon.filter(|g| g.is_finite() && *g > 0.0);
            let g = match (g, evidence.verdict) {
                (Some(g), v) if v != Verdict::NotApplicable => g,
                (Some(_), _) => {
                    group(
                        &mut silent,
                        format!("no claim on this ratio: {}", evidence.reason),
                        name,
                    );
                    continue;
                }
                (None, _) if evidence.verdict == Verdict::NotApplicable => {
                    group(&mut silent, format!("no guarantee: {}", evidence.reason), name);
                    continue;
                }
                (None, _) => {
                    group(
                        &mut silent,
                        format!("no finite guaranteed epsilon at m = {}", check.actual_width),
                        name,
                    );
                    continue;
                }
            };
            let mut lines = vec![1.0 + g];
            if g < 1.0 {
                lines.push(1.0 - g);
            }
            let stroke = Stroke::new(colour, 1.8).dashed("7 4");
            if lines.iter().all(|y| (allowed_lo..=allowed_hi).contains(y)) {
                let label = if g < 1.0 {
                    format!("{name}: 1 +/- {} guaranteed at m = {}", num(g, 3), check.actual_width)
                } else {
                    format!(
                        "{name}: 1 + {} guaranteed at m = {} (its lower side is vacuous)",
                        num(g, 3),
                        check.actual_width
                    )
                };
                legend.push(Entry::new(Swatch::Line(stroke), label));
                bounds.push(BoundLines { colour, lines });
            } else {
                legend.push(Entry::new(
                    Swatch::Marker(Shape::Up, Some(Fill::new(colour, 1.0)), Stroke::new(colour, 1.0)),
                    format!("{name}: 1 +/- {}, off scale", num(g, 3)),
                ));
            }
        }
        for (reason, names) in silent {
            legend.push(Entry::note(format!("{}: {reason}", names.join(", "))));
        }
        for b in &bounds {
            for &y in &b.lines {
                lo = lo.min(y);
                hi = hi.max(y);
            }
        }
        let pad = (hi - lo).max(0.05) * 0.06;
        let y_range = ((lo - pad).max(0.0), hi + pad);
        Panel {
            ratio,
            depth: layers.iter().map(|l| l.layer).max().unwrap_or(1),
            y_desc: ratio.axis(&spec.network),
            residual,
            y_range,
            epsilon,
            measured_mean,
            measured_band,
            predicted_mean,
            predicted_band,
            bounds,
            legend,
        }
    }

    /// Draw the chart on `area`; returns its plotting area in pixels.
    fn draw(&self, area: &DrawingArea<SVGBackend, Shift>, layer: &mut Layer) -> Result<PixelRect, String> {
        let depth = self.depth.max(1) as f64;
        let (lo, hi) = self.y_range;
        let mut chart = ChartBuilder::on(area)
            .caption(
                match (self.residual, self.ratio) {
                    (true, Ratio::Forward) => "forward ratio by block".to_string(),
                    (true, Ratio::Gradient) => "backward ratio by block".to_string(),
                    (false, r) => format!("{} ratio by layer", r.name()),
                },
                ("sans-serif", 19),
            )
            .margin(14)
            .x_label_area_size(42)
            .y_label_area_size(62)
            .build_cartesian_2d(Ticked::new(0.5..depth + 0.5, layer_ticks(self.depth)), lo..hi)
            .map_err(err)?;
        house_mesh(&mut chart.configure_mesh())
            .y_labels(8)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| num(*v, 3))
            .x_desc(if self.residual { "block b" } else { "layer l" })
            .y_desc(self.y_desc)
            .draw()
            .map_err(err)?;
        let (x0, x1) = (0.5, depth + 0.5);
        let eps = self.epsilon;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x0, 1.0 - eps), (x1, 1.0 + eps)],
                EPSILON.mix(0.16).filled(),
            )))
            .map_err(err)?;
        for y in [1.0 - eps, 1.0 + eps] {
            chart
                .draw_series(DashedLineSeries::new([(x0, y), (x1, y)], 2, 2, EPSILON.stroke_width(1)))
                .map_err(err)?;
        }
        if !self.predicted_band.is_empty() {
            chart
                .draw_series(std::iter::once(Polygon::new(
                    band_polygon(&self.predicted_band),
                    PREDICTED.mix(0.12),
                )))
                .map_err(err)?;
            for edge in [|b: &(f64, f64, f64)| (b.0, b.1), |b: &(f64, f64, f64)| (b.0, b.2)] {
                let line: Vec<(f64, f64)> = self.predicted_band.iter().map(edge).collect();
                chart
                    .draw_series(DashedLineSeries::new(line, 4, 3, PREDICTED.stroke_width(1)))
                    .map_err(err)?;
            }
        }
        if !self.measured_band.is_empty() {
            chart
                .draw_series(std::iter::once(Polygon::new(
                    band_polygon(&self.measured_band),
                    MEASURED.mix(0.28),
                )))
                .map_err(err)?;
        }
        for b in &self.bounds {
            for &y in &b.lines {
                chart
                    .draw_series(DashedLineSeries::new(
                        [(x0, y), (x1, y)],
                        7,
                        4,
                        b.colour.stroke_width(2),
                    ))
                    .map_err(err)?;
            }
        }
        chart
            .draw_series(LineSeries::new(self.predicted_mean.clone(), PREDICTED.stroke_width(2)))
            .map_err(err)?;
        chart
            .draw_series(self.predicted_mean.iter().map(|&(x, y)| {
                EmptyElement::at((x, y)) + Polygon::new(vec![(0, -4), (4, 0), (0, 4), (-4, 0)], PREDICTED.filled())
            }))
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(self.measured_mean.clone(), MEASURED.stroke_width(2)))
            .map_err(err)?;
        chart
            .draw_series(
                self.measured_mean
                    .iter()
                    .map(|&xy| Circle::new(xy, 3, MEASURED.filled())),
            )
            .map_err(err)?;
        Ok(mark_plot_area(layer, chart.plotting_area().get_pixel_range()))
    }
}

fn group<'a>(groups: &mut Vec<(String, Vec<&'a str>)>, reason: String, name: &'a str) {
    match groups.iter_mut().find(|(r, _)| *r == reason) {
        Some((_, names)) => names.push(name),
        None => groups.push((reason, vec![name])),
    }
}

/// The figure of a `norms` job: per layer, the forward ratio (left) and the gradient ratio
/// (right): the measured mean and p05-p95 band, the predicted mean and (for Gaussian weights)
/// the exact law's p05-p95 band, the spec's 1 +/- epsilon, and each bound's guaranteed epsilon
/// at the network's width (`checks`, from the job's bound checks). Legends below the panels.
pub fn norms_svg(title: &str, spec: &Spec, layers: &[LayerReport], checks: &[BoundCheck]) -> PlotResult {
    let width = f64::from(WIDTH);
    let heading = Heading::new(title, None, width);
    let mut panels = [
        Panel::new(Ratio::Forward, spec, layers, checks),
        Panel::new(Ratio::Gradient, spec, layers, checks),
    ];
    let half = width / 2.0;
    // One legend across both panels when they say the same, else one under each.
    let labels = |p: &Panel| p.legend.entries.iter().map(|e| e.label.clone()).collect::<Vec<_>>();
    let shared = labels(&panels[0]) == labels(&panels[1]);
    let legends: Vec<(f64, f64, &Legend)> = if shared {
        panels[0].legend.columns = 2;
        vec![(14.0, width - 28.0, &panels[0].legend)]
    } else {
        vec![
            (14.0, half - 28.0, &panels[0].legend),
            (half + 14.0, half - 28.0, &panels[1].legend),
        ]
    };
    let legend_height = legends
        .iter()
        .map(|(_, w, legend)| legend.height(*w))
        .fold(0.0, f64::max);
    let top = heading.height().ceil();
    let height = top + f64::from(PANEL_HEIGHT) + legend_height + 16.0;
    let (mut layer, svg) = frame(&heading, WIDTH, height, top, |rest, layer| {
        let (charts, _) = rest.split_vertically(PANEL_HEIGHT);
        let (left, right) = charts.split_horizontally(WIDTH / 2);
        for (panel, area) in panels.iter().zip([left, right]) {
            panel.draw(&area, layer)?;
        }
        Ok(())
    })?;
    for (x, w, legend) in legends {
        legend.draw(&mut layer, x, top + f64::from(PANEL_HEIGHT) + 4.0, w);
    }
    Ok(layer.into_document(svg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layer_has_a_tick_up_to_twenty() {
        assert_eq!(layer_ticks(10).len(), 10);
        assert_eq!(layer_ticks(20).len(), 20);
        let t = layer_ticks(50);
        assert!(t.len() <= 21 && t[0] == 1.0 && t.contains(&50.0), "{t:?}");
        assert_eq!(layer_ticks(30), (1..=15).map(|k| f64::from(2 * k)).collect::<Vec<_>>());
    }
}
