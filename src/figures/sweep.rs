//! The figure of a single-depth sweep (the paper's Fig. 6): deviation vs width on log axes,
//! with each bound's guaranteed epsilon at every width and the spec's epsilon.

use plotters::coord::combinators::BindKeyPoints;
use plotters::prelude::*;

use super::legend::{Entry, Legend, Swatch};
use super::svg::{num, text_width, Shape, Stroke};
use super::{
    err, frame, house_mesh, mark_plot_area, partial_note, Heading, PlotResult, BOUND_COLOURS, EPSILON, MEASURED,
    PREDICTED,
};
use crate::analysis::sweep::PointReport;
use crate::spec::Spec;
use crate::theory::bounds::Bound;

const WIDTH: u32 = 900;
const CHART_HEIGHT: u32 = 470;
/// Guarantees more than this factor above the largest measured value (or epsilon) are marked
/// off scale instead of stretching the axis.
const OFF_SCALE_FACTOR: f64 = 1000.0;

/// The swept widths of the grid (all of them, run or not), ascending.
pub(super) fn grid_widths(spec: &Spec, points: &[PointReport]) -> Vec<usize> {
    let mut widths: Vec<usize> = match spec.sweep() {
        Some(sweep) => sweep.widths.clone(),
        None => points.iter().map(|p| p.width).collect(),
    };
    widths.sort_unstable();
    widths.dedup();
    widths
}

/// How many points the grid has.
pub(super) fn grid_points(spec: &Spec, points: &[PointReport]) -> usize {
    spec.sweep().map_or(points.len(), |s| s.widths.len() * s.depths.len())
}

/// Ticks of a log axis over [lo, hi]: 1, 2, 5 times the powers of ten, or only the powers of
/// ten when that would be too many.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let (a, b) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let all = |mults: &[f64]| -> Vec<f64> {
        (a..=b)
            .flat_map(|k| mults.iter().map(move |m| m * 10f64.powi(k)))
            .filter(|v| (lo..=hi).contains(v))
            .collect()
    };
    let dense = all(&[1.0, 2.0, 5.0]);
    if dense.len() <= 10 {
        dense
    } else {
        all(&[1.0])
    }
}

/// The widths that get a labelled tick: every swept width whose label does not run into the
/// previous one (the smallest always does).
fn width_ticks(widths: &[usize], (lo, hi): (f64, f64), pixels: f64) -> Vec<f64> {
    let pos = |w: f64| (w.ln() - lo.ln()) / (hi.ln() - lo.ln()) * pixels;
    let mut ticks: Vec<f64> = Vec::new();
    for &w in widths {
        let w = w as f64;
        let room = text_width(&format!("{w}"), 12.0) + 8.0;
        match ticks.last() {
            Some(&last) if pos(w) - pos(last) < room => {}
            _ => ticks.push(w),
        }
    }
    ticks
}

type Pick = fn(&PointReport) -> f64;

/// The figure of a single-depth sweep: the pooled mean and max |1 - r| of both ratios against
/// the width (log axes), each bound's guaranteed epsilon at every width (dashed) and the spec's
/// epsilon; ticks at the swept widths. A sweep with fewer points than its grid (still running,
/// or stopped) says so under the title ("partial: k of n points (job running)").
pub fn sweep_svg(title: &str, spec: &Spec, points: &[PointReport], job_status: &str) -> PlotResult {
    let mut pts: Vec<&PointReport> = points.iter().collect();
    pts.sort_by_key(|p| p.width);
    let widths = grid_widths(spec, points);
    let (wmin, wmax) = match (widths.first(), widths.last()) {
        (Some(&a), Some(&b)) => (a as f64, b as f64),
        _ => (1.0, 10.0),
    };
    let (wlo, whi) = if wmin == wmax {
        (wmin / 2.0, wmax * 2.0)
    } else {
        (wmin / 1.2, wmax * 1.2)
    };

    let series: [(&str, RGBColor, Pick, bool); 4] = [
        (
            "forward: pooled mean |1 - r|",
            MEASURED,
            |p| p.forward_deviation.mean,
            false,
        ),
        (
            "forward: pooled max |1 - r|",
            MEASURED,
            |p| p.forward_deviation.max,
            true,
        ),
        (
            "gradient: pooled mean |1 - r|",
            PREDICTED,
            |p| p.gradient_deviation.mean,
            false,
        ),
        (
            "gradient: pooled max |1 - r|",
            PREDICTED,
            |p| p.gradient_deviation.max,
            true,
        ),
    ];
    let positive = |v: f64| (v.is_finite() && v > 0.0).then_some(v);
    let measured: Vec<f64> = pts
        .iter()
        .flat_map(|p| series.iter().filter_map(move |s| positive((s.2)(p))))
        .chain(positive(spec.epsilon))
        .collect();
    let data_hi = measured.iter().copied().fold(0.0f64, f64::max);
    let cap = if data_hi > 0.0 {
        data_hi * OFF_SCALE_FACTOR
    } else {
        f64::INFINITY
    };

    // Each bound's guarantee per width: on the axis, off scale above it, or none at all.
    let mut legend = Legend::new(None, 2);
    for (label, colour, _, max) in series {
        let (stroke, shape) = if max {
            (Stroke::new(colour, 1.5).dashed("2 3"), Shape::Up)
        } else {
            (Stroke::new(colour, 2.0), Shape::Circle)
        };
        legend.push(Entry::new(Swatch::LineMarker(stroke, shape), label));
    }
    legend.push(Entry::new(
        Swatch::Line(Stroke::new(EPSILON, 1.5)),
        format!("the spec's epsilon = {}", num(spec.epsilon, 4)),
    ));
    let mut curves: Vec<(RGBColor, Vec<(f64, f64)>)> = Vec::new();
    let mut guaranteed_values: Vec<f64> = Vec::new();
    for (bound, colour) in Bound::ALL.iter().map(|b| b.name()).zip(BOUND_COLOURS) {
        let mut line = Vec::new();
        let (mut off, mut none) = (Vec::new(), Vec::new());
        for p in &pts {
            match p
                .bounds
                .iter()
                .find(|b| b.bound == bound)
                .and_then(|b| b.guaranteed_epsilon)
            {
                Some(g) if g.is_finite() && g > 0.0 && g <= cap => line.push((p.width as f64, g)),
                Some(g) if g.is_finite() && g > 0.0 => off.push(format!("{} at m = {}", num(g, 3), p.width)),
                _ => none.push(p.width.to_string()),
            }
        }
        guaranteed_values.extend(line.iter().map(|xy| xy.1));
        let mut label = format!("{bound}: guaranteed epsilon at each width");
        if !off.is_empty() {
            label.push_str(&format!("; off scale: {}", off.join(", ")));
        }
        if !none.is_empty() {
            label.push_str(&format!("; none finite at m = {}", none.join(", ")));
        }
        legend.push(Entry::new(
            Swatch::LineMarker(Stroke::new(colour, 2.0).dashed("7 4"), Shape::Square),
            label,
        ));
        curves.push((colour, line));
    }

    let all: Vec<f64> = measured.iter().chain(&guaranteed_values).copied().collect();
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = all.iter().copied().fold(0.0f64, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > 0.0 {
        (lo / 1.6, hi * 1.6)
    } else {
        (0.01, 1.0)
    };

    let width = f64::from(WIDTH);
    let heading = Heading::new(
        title,
        partial_note(points.len(), grid_points(spec, points), job_status),
        width,
    );
    let legend_width = width - 40.0;
    let top = heading.height().ceil();
    let height = top + f64::from(CHART_HEIGHT) + legend.height(legend_width) + 16.0;
    let (mut layer, svg) = frame(&heading, WIDTH, height, top, |rest, layer| {
        let (area, _) = rest.split_vertically(CHART_HEIGHT);
        let x_ticks = width_ticks(&widths, (wlo, whi), width - 110.0);
        let mut chart = ChartBuilder::on(&area)
            .margin(16)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(
                (wlo..whi).log_scale().with_key_points(x_ticks),
                (lo..hi).log_scale().with_key_points(log_ticks(lo, hi)),
            )
            .map_err(err)?;
        house_mesh(&mut chart.configure_mesh())
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| num(*v, 3))
            .x_desc("width m (log scale; ticks at the swept widths)")
            .y_desc("|1 - r| and guaranteed epsilon (log scale)")
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                [(wlo, spec.epsilon), (whi, spec.epsilon)],
                EPSILON.stroke_width(2),
            ))
            .map_err(err)?;
        for (colour, line) in &curves {
            chart
                .draw_series(DashedLineSeries::new(line.clone(), 7, 4, colour.stroke_width(2)))
                .map_err(err)?;
            chart
                .draw_series(
                    line.iter()
                        .map(|&(x, y)| EmptyElement::at((x, y)) + Rectangle::new([(-3, -3), (3, 3)], colour.filled())),
                )
                .map_err(err)?;
        }
        for (_, colour, f, max) in series {
            let line: Vec<(f64, f64)> = pts
                .iter()
                .filter_map(|p| Some((p.width as f64, positive(f(p))?)))
                .collect();
            if max {
                chart
                    .draw_series(DashedLineSeries::new(line.clone(), 2, 3, colour.stroke_width(2)))
                    .map_err(err)?;
                chart
                    .draw_series(line.iter().map(|&xy| TriangleMarker::new(xy, 5, colour.filled())))
                    .map_err(err)?;
            } else {
                chart
                    .draw_series(LineSeries::new(line.clone(), colour.stroke_width(2)))
                    .map_err(err)?;
                chart
                    .draw_series(line.iter().map(|&xy| Circle::new(xy, 4, colour.filled())))
                    .map_err(err)?;
            }
        }
        mark_plot_area(layer, chart.plotting_area().get_pixel_range());
        Ok(())
    })?;
    legend.draw(&mut layer, 20.0, top + f64::from(CHART_HEIGHT) + 4.0, legend_width);
    Ok(layer.into_document(svg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ticks_are_round() {
        let close =
            |a: &[f64], b: &[f64]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x / y - 1.0).abs() < 1e-9);
        let t = log_ticks(0.015, 3.0);
        assert!(close(&t, &[0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0]), "{t:?}");
        let t = log_ticks(1.5e-4, 1.5e3);
        assert!(close(&t, &[1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0, 1000.0]), "{t:?}");
    }

    #[test]
    fn the_smallest_swept_width_has_a_tick() {
        let widths = [500, 1000, 2000, 4000];
        let t = width_ticks(&widths, (500.0 / 1.2, 4000.0 * 1.2), 700.0);
        assert_eq!(t, vec![500.0, 1000.0, 2000.0, 4000.0]);
        // Crowded widths: the first is kept, its neighbour too close to label is not.
        let t = width_ticks(&[500, 505, 4000], (400.0, 5000.0), 700.0);
        assert_eq!(t, vec![500.0, 4000.0]);
    }
}
