//! The figure of a sweep over residual networks: against the number of blocks B, the output's
//! forward ratio ||h^B|| / ||x|| and the input's backward ratio ||dL/dx|| / ||dL/dh^B||
//! (measured root mean square and mean), beside their predictions (docs/theory.md section
//! 7.4), one colour per swept hidden width, and sqrt(e), the limit of (1 + 1/B)^(B/2).

use plotters::prelude::*;

use super::legend::{Entry, Legend, Swatch};
use super::svg::{num, Shape, Stroke};
use super::{
    err, frame, house_mesh, mark_plot_area, partial_note, series_colour, Heading, PlotResult, Ticked, EPSILON,
};
use crate::analysis::sweep::{PointReport, ResidualPoint};
use crate::spec::{Spec, WeightNormGain, Weights};

const WIDTH: u32 = 900;
const CHART_HEIGHT: u32 = 380;

type Pick = fn(&ResidualPoint) -> (f64, f64, f64);

/// The output's forward ratio (top) and the input's backward ratio (bottom) against the number
/// of blocks: measured root mean square (solid, circles), measured mean (hollow circles), the
/// predicted root mean square (dashed, diamonds).
pub fn blocks_svg(title: &str, spec: &Spec, points: &[PointReport], job_status: &str) -> PlotResult {
    let mut widths: Vec<usize> = points.iter().map(|p| p.width).collect();
    widths.sort_unstable();
    widths.dedup();
    let mut blocks: Vec<usize> = spec
        .sweep()
        .map_or_else(|| points.iter().map(|p| p.depth).collect(), |s| s.depths.clone());
    blocks.sort_unstable();
    blocks.dedup();
    let grid = spec.sweep().map_or(points.len(), |s| s.widths.len() * s.depths.len());
    let proposed = matches!(spec.network.weights, Weights::Normalized(wn) if wn.gain == WeightNormGain::Derived);
    let root_e = 0.5f64.exp();

    let mut legend = Legend::new(None, 2);
    for (i, w) in widths.iter().enumerate() {
        let colour = series_colour(i);
        legend.push(Entry::new(
            Swatch::LineMarker(Stroke::new(colour, 2.0), Shape::Circle),
            format!(
                "hidden width {w}: measured root mean square over {} networks' inputs",
                spec.trials
            ),
        ));
    }
    legend.push(Entry::new(
        Swatch::Marker(Shape::Circle, None, Stroke::new(RGBColor(60, 60, 60), 1.5)),
        "measured mean (below the root mean square by the Jensen gap)",
    ));
    legend.push(Entry::new(
        Swatch::LineMarker(Stroke::new(RGBColor(60, 60, 60), 1.5).dashed("6 4"), Shape::Diamond),
        "predicted root mean square: forward sqrt(prod c_k) exact, backward mean field",
    ));
    if proposed {
        legend.push(Entry::new(
            Swatch::Line(Stroke::new(EPSILON, 1.5).dashed("2 3")),
            format!("sqrt(e) = {}: the limit of (1 + 1/B)^(B/2)", num(root_e, 5)),
        ));
    }

    let width = f64::from(WIDTH);
    let heading = Heading::new(title, partial_note(points.len(), grid, job_status), width);
    let legend_width = width - 40.0;
    let top = heading.height().ceil();
    let charts = 2 * CHART_HEIGHT;
    let height = top + f64::from(charts) + legend.height(legend_width) + 16.0;
    let (mut layer, svg) = frame(&heading, WIDTH, height, top, |rest, layer| {
        let (upper, rest) = rest.split_vertically(CHART_HEIGHT);
        let (lower, _) = rest.split_vertically(CHART_HEIGHT);
        let panels: [(&DrawingArea<SVGBackend, plotters::coord::Shift>, &str, Pick); 2] = [
            (&upper, "output ||h^B|| / ||x||", |r| {
                (r.forward_rms, r.forward_mean, r.predicted_forward_rms)
            }),
            (&lower, "input ||dL/dx|| / ||dL/dh^B||", |r| {
                (r.backward_rms, r.backward_mean, r.predicted_backward_rms)
            }),
        ];
        // x: log2 of the number of blocks, ticks at the swept values.
        let x = |b: usize| (b as f64).log2();
        let (x_lo, x_hi) = match (blocks.first(), blocks.last()) {
            (Some(&a), Some(&b)) if b > a => (x(a) - 0.3, x(b) + 0.3),
            (Some(&a), _) => (x(a) - 1.0, x(a) + 1.0),
            _ => (-1.0, 1.0),
        };
        for (area, y_desc, pick) in panels {
            let mut values: Vec<f64> = points
                .iter()
                .filter_map(|p| p.residual.as_ref())
                .flat_map(|r| {
                    let (a, b, c) = pick(r);
                    [a, b, c]
                })
                .filter(|v| v.is_finite())
                .collect();
            if proposed {
                values.push(root_e);
            }
            values.push(1.0);
            let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let pad = 0.06 * (hi - lo).max(0.05);
            let (lo, hi) = ((lo - pad).max(0.0), hi + pad);
            let mut chart = ChartBuilder::on(area)
                .margin(16)
                .x_label_area_size(45)
                .y_label_area_size(70)
                .build_cartesian_2d(Ticked::new(x_lo..x_hi, blocks.iter().map(|&b| x(b)).collect()), lo..hi)
                .map_err(err)?;
            house_mesh(&mut chart.configure_mesh())
                .x_label_formatter(&|v| format!("{:.0}", v.exp2()))
                .y_label_formatter(&|v| num(*v, 4))
                .y_labels(8)
                .x_desc("blocks B (log scale)")
                .y_desc(y_desc)
                .draw()
                .map_err(err)?;
            if proposed {
                chart
                    .draw_series(DashedLineSeries::new(
                        vec![(x_lo, root_e), (x_hi, root_e)],
                        2,
                        3,
                        EPSILON.stroke_width(1),
                    ))
                    .map_err(err)?;
            }
            for (i, &w) in widths.iter().enumerate() {
                let colour = series_colour(i);
                let mut these: Vec<(f64, (f64, f64, f64))> = points
                    .iter()
                    .filter(|p| p.width == w)
                    .filter_map(|p| p.residual.as_ref().map(|r| (x(r.blocks), pick(r))))
                    .collect();
                these.sort_by(|a, b| a.0.total_cmp(&b.0));
                let predicted: Vec<(f64, f64)> = these
                    .iter()
                    .map(|&(x, (_, _, p))| (x, p))
                    .filter(|xy| xy.1.is_finite())
                    .collect();
                chart
                    .draw_series(DashedLineSeries::new(predicted.clone(), 6, 4, colour.stroke_width(2)))
                    .map_err(err)?;
                chart
                    .draw_series(predicted.iter().map(|&xy| {
                        EmptyElement::at(xy)
                            + PathElement::new(vec![(0, -5), (5, 0), (0, 5), (-5, 0), (0, -5)], colour.stroke_width(2))
                    }))
                    .map_err(err)?;
                let rms: Vec<(f64, f64)> = these
                    .iter()
                    .map(|&(x, (r, _, _))| (x, r))
                    .filter(|xy| xy.1.is_finite())
                    .collect();
                chart
                    .draw_series(LineSeries::new(rms.clone(), colour.stroke_width(2)))
                    .map_err(err)?;
                chart
                    .draw_series(rms.iter().map(|&xy| Circle::new(xy, 3, colour.filled())))
                    .map_err(err)?;
                chart
                    .draw_series(
                        these
                            .iter()
                            .map(|&(x, (_, m, _))| (x, m))
                            .filter(|xy| xy.1.is_finite())
                            .map(|xy| Circle::new(xy, 4, colour.stroke_width(1))),
                    )
                    .map_err(err)?;
            }
            mark_plot_area(layer, chart.plotting_area().get_pixel_range());
        }
        Ok(())
    })?;
    legend.draw(&mut layer, 20.0, top + f64::from(charts) + 4.0, legend_width);
    Ok(layer.into_document(svg))
}
