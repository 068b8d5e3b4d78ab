//! The figure of a `worst_case` job. Top: the last layer's deviation from 1 against
//! sqrt(n_0 / m), one colour per width: the worst case found over the unit sphere (solid, filled
//! circles) beside the random inputs' (dashed, hollow squares), means over networks with their
//! range (min to max) as whiskers. Bottom: the bracket of the supremum, layer by layer, at the
//! grid point with the largest sqrt(n_0 / m): the random inputs' largest ratio, the largest ratio
//! found, and the certified upper bound (logarithmic axis), with the smallest ratios below.

use plotters::prelude::*;

use super::legend::{Entry, Legend, Swatch};
use super::svg::{num, Shape, Stroke};
use super::{err, frame, house_mesh, mark_plot_area, round_ticks, series_colour, Heading, PlotResult, Ticked};
use crate::analysis::worst_case::WorstCaseLayer;
use crate::spec::Spec;

const WIDTH: u32 = 900;
const CHART_HEIGHT: u32 = 380;

/// One line of the bracket panel: label, colour, marker, and the value it draws.
type Series = (&'static str, RGBColor, Shape, fn(&WorstCaseLayer) -> f64);

/// Ticks of a logarithmic axis over [lo, hi] (natural logs): 1, 2, 5 times powers of ten that
/// fall inside, as logs.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let (a, b) = (
        (lo.exp()).log10().floor() as i32 - 1,
        (hi.exp()).log10().ceil() as i32 + 1,
    );
    for e in a..=b {
        for m in [1.0, 2.0, 5.0] {
            let v = (m * 10f64.powi(e)).ln();
            if v >= lo && v <= hi {
                out.push(v);
            }
        }
    }
    out
}

/// The figure: deviation against sqrt(n_0 / m) (top) and the bracket per layer (bottom).
pub fn worst_case_svg(title: &str, spec: &Spec, rows: &[WorstCaseLayer]) -> PlotResult {
    let depth = spec.network.depth();
    let last: Vec<&WorstCaseLayer> = rows.iter().filter(|r| r.layer == depth).collect();
    let mut widths: Vec<usize> = last.iter().map(|r| r.width).collect();
    widths.sort_unstable();
    widths.dedup();
    let networks = rows.first().map_or(0, |r| r.networks);
    let hardest = last
        .iter()
        .copied()
        .fold(None::<&WorstCaseLayer>, |best, r| match best {
            Some(b) if b.sqrt_input_dim_over_width >= r.sqrt_input_dim_over_width => Some(b),
            _ => Some(r),
        })
        .ok_or_else(|| "no rows to plot".to_string())?;
    let bracket: Vec<&WorstCaseLayer> = {
        let mut these: Vec<&WorstCaseLayer> = rows.iter().filter(|r| r.point == hardest.point).collect();
        these.sort_by_key(|r| r.layer);
        these
    };

    let mut legend = Legend::new(None, 2);
    for (i, w) in widths.iter().enumerate() {
        let colour = series_colour(i);
        legend.push(Entry::new(
            Swatch::LineMarker(Stroke::new(colour, 2.0), Shape::Circle),
            format!("m = {w}: worst case found over the sphere (mean of {networks} networks, whiskers min to max)"),
        ));
        legend.push(Entry::new(
            Swatch::LineMarker(Stroke::new(colour, 1.5).dashed("6 4"), Shape::Square),
            format!("m = {w}: random inputs ({} per network)", spec.samples),
        ));
    }
    let dark = RGBColor(40, 40, 40);
    let bracket_series: [Series; 5] = [
        (
            "certified upper bound (product of spectral norms)",
            RGBColor(214, 39, 40),
            Shape::Diamond,
            |r| r.certified_max.mean,
        ),
        ("largest ratio found", dark, Shape::Circle, |r| r.found_max.mean),
        ("largest random ratio", RGBColor(31, 119, 180), Shape::Square, |r| {
            r.random_max.mean
        }),
        ("smallest random ratio", RGBColor(31, 119, 180), Shape::Square, |r| {
            r.random_min.mean
        }),
        ("smallest ratio found", dark, Shape::Circle, |r| r.found_min.mean),
    ];
    for (label, colour, shape, _) in &bracket_series[..3] {
        legend.push(Entry::new(
            Swatch::LineMarker(Stroke::new(*colour, 2.0), *shape),
            format!("bottom, n0 = {} m = {}: {label}", hardest.input_dim, hardest.width),
        ));
    }
    let dead: Vec<String> = bracket
        .iter()
        .filter(|r| r.found_min.mean.is_nan() || r.found_min.mean <= 0.0)
        .map(|r| r.layer.to_string())
        .collect();
    if !dead.is_empty() {
        legend.push(Entry::note(format!(
            "bottom: the smallest ratio found is 0 at layer {} (an input that every unit of the layer \
             switches off in every network): not drawn on the log axis",
            dead.join(", ")
        )));
    }
    legend.push(Entry::note(
        "bottom: means over networks of ||h^l(x)|| / ||x||; the smallest ratios (found, random) sit below 1 with the \
         same markers; the true supremum lies between the largest found and the certified bound",
    ));

    let width = f64::from(WIDTH);
    let heading = Heading::new(title, None, width);
    let legend_width = width - 40.0;
    let top = heading.height().ceil();
    let charts = 2 * CHART_HEIGHT;
    let height = top + f64::from(charts) + legend.height(legend_width) + 16.0;
    let (mut layer, svg) = frame(&heading, WIDTH, height, top, |rest, layer| {
        let (upper, rest) = rest.split_vertically(CHART_HEIGHT);
        let (lower, _) = rest.split_vertically(CHART_HEIGHT);

        // Top: deviation against sqrt(n0 / m).
        let xs: Vec<f64> = last.iter().map(|r| r.sqrt_input_dim_over_width).collect();
        let (x_lo, x_hi) = (
            xs.iter().copied().fold(f64::INFINITY, f64::min),
            xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        );
        let pad = ((x_hi - x_lo) * 0.06).max(0.02);
        let (x_lo, x_hi) = ((x_lo - pad).max(0.0), x_hi + pad);
        let ys: Vec<f64> = last
            .iter()
            .flat_map(|r| [r.worst_deviation.max, r.random_deviation.min, 0.0])
            .filter(|v| v.is_finite())
            .collect();
        let y_hi = ys.iter().copied().fold(0.0, f64::max).max(1e-3) * 1.08;
        let mut chart = ChartBuilder::on(&upper)
            .margin(16)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(
                Ticked::new(x_lo..x_hi, round_ticks(x_lo, x_hi)),
                Ticked::new(0.0..y_hi, round_ticks(0.0, y_hi)),
            )
            .map_err(err)?;
        house_mesh(&mut chart.configure_mesh())
            .x_label_formatter(&|v| num(*v, 3))
            .y_label_formatter(&|v| num(*v, 3))
            .x_desc("sqrt(n0 / m)")
            .y_desc(format!("deviation from 1 at layer {depth}"))
            .draw()
            .map_err(err)?;
        for (i, w) in widths.iter().enumerate() {
            let colour = series_colour(i);
            let mut these: Vec<&&WorstCaseLayer> = last.iter().filter(|r| r.width == *w).collect();
            these.sort_by(|a, b| a.sqrt_input_dim_over_width.total_cmp(&b.sqrt_input_dim_over_width));
            for random in [false, true] {
                let pts: Vec<(f64, f64, f64, f64)> = these
                    .iter()
                    .map(|r| {
                        let s = if random {
                            &r.random_deviation
                        } else {
                            &r.worst_deviation
                        };
                        (r.sqrt_input_dim_over_width, s.mean, s.min, s.max)
                    })
                    .filter(|p| p.1.is_finite())
                    .collect();
                let line: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, p.1)).collect();
                if random {
                    chart
                        .draw_series(DashedLineSeries::new(line.clone(), 6, 4, colour.stroke_width(2)))
                        .map_err(err)?;
                    chart
                        .draw_series(line.iter().map(|&xy| {
                            EmptyElement::at(xy)
                                + Rectangle::new([(-4, -4), (4, 4)], ShapeStyle::from(WHITE).filled())
                                + Rectangle::new([(-4, -4), (4, 4)], colour.stroke_width(2))
                        }))
                        .map_err(err)?;
                } else {
                    chart
                        .draw_series(LineSeries::new(line.clone(), colour.stroke_width(2)))
                        .map_err(err)?;
                    chart
                        .draw_series(line.iter().map(|&xy| Circle::new(xy, 4, colour.filled())))
                        .map_err(err)?;
                }
                chart
                    .draw_series(
                        pts.iter()
                            .filter(|p| p.2.is_finite() && p.3.is_finite())
                            .map(|p| PathElement::new(vec![(p.0, p.2), (p.0, p.3)], colour.stroke_width(1))),
                    )
                    .map_err(err)?;
            }
        }
        mark_plot_area(layer, chart.plotting_area().get_pixel_range());

        // Bottom: the bracket per layer at the hardest point, on a log axis.
        let values: Vec<f64> = bracket
            .iter()
            .flat_map(|r| bracket_series.iter().map(move |s| (s.3)(r)))
            .filter(|v| v.is_finite() && *v > 0.0)
            .map(f64::ln)
            .collect();
        let lo = values.iter().copied().fold(0.0f64, f64::min);
        let hi = values.iter().copied().fold(0.0f64, f64::max);
        let pad = ((hi - lo) * 0.06).max(0.05);
        let (lo, hi) = (lo - pad, hi + pad);
        let x_hi = depth as f64 + 0.5;
        let x_ticks: Vec<f64> = if depth <= 20 {
            (1..=depth).map(|l| l as f64).collect()
        } else {
            round_ticks(1.0, depth as f64)
        };
        let mut chart = ChartBuilder::on(&lower)
            .margin(16)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(Ticked::new(0.5..x_hi, x_ticks), Ticked::new(lo..hi, log_ticks(lo, hi)))
            .map_err(err)?;
        house_mesh(&mut chart.configure_mesh())
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| num(v.exp(), 3))
            .x_desc(format!("layer l (n0 = {}, m = {})", hardest.input_dim, hardest.width))
            .y_desc("||h^l(x)|| / ||x|| (log scale)")
            .draw()
            .map_err(err)?;
        for (_, colour, shape, pick) in bracket_series {
            let pts: Vec<(f64, f64)> = bracket
                .iter()
                .map(|r| (r.layer as f64, pick(r)))
                .filter(|p| p.1.is_finite() && p.1 > 0.0)
                .map(|(x, y)| (x, y.ln()))
                .collect();
            let dashed = matches!(shape, Shape::Square);
            if dashed {
                chart
                    .draw_series(DashedLineSeries::new(pts.clone(), 6, 4, colour.stroke_width(2)))
                    .map_err(err)?;
            } else {
                chart
                    .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))
                    .map_err(err)?;
            }
            if shape == Shape::Circle {
                chart
                    .draw_series(pts.iter().map(|&xy| Circle::new(xy, 4, colour.filled())))
                    .map_err(err)?;
            } else {
                chart
                    .draw_series(pts.iter().map(|&xy| {
                        let outline = if shape == Shape::Diamond {
                            vec![(0, -6), (6, 0), (0, 6), (-6, 0), (0, -6)]
                        } else {
                            vec![(-4, -4), (4, -4), (4, 4), (-4, 4), (-4, -4)]
                        };
                        EmptyElement::at(xy) + PathElement::new(outline, colour.stroke_width(2))
                    }))
                    .map_err(err)?;
            }
        }
        mark_plot_area(layer, chart.plotting_area().get_pixel_range());
        Ok(())
    })?;
    legend.draw(&mut layer, 20.0, top + f64::from(charts) + 4.0, legend_width);
    Ok(layer.into_document(svg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ticks_lie_in_the_range() {
        let t = log_ticks(0.5f64.ln(), 20f64.ln());
        let values: Vec<f64> = t.iter().map(|v| (v.exp() * 1e9).round() / 1e9).collect();
        assert_eq!(values, vec![0.5, 1.0, 2.0, 5.0, 10.0, 20.0]);
    }
}
