//! The figure of a `geometry` job: per initial angle, the cosine similarity of the pairs
//! against the layer (measured mean, a band of one standard deviation over pairs and networks)
//! beside the arc-cosine map's infinite-width prediction; below it the distance ratio, the same
//! way.

use plotters::prelude::*;

use super::legend::{Entry, Legend, Swatch};
use super::svg::{num, Fill, Shape, Stroke};
use super::{err, frame, house_mesh, mark_plot_area, round_ticks, series_colour, Heading, PlotResult, Ticked};
use crate::analysis::geometry::GeometryLayer;
use crate::spec::Spec;

const WIDTH: u32 = 900;
const CHART_HEIGHT: u32 = 380;

type Pick = fn(&GeometryLayer) -> (f64, f64, f64);

/// Cosine against layer (top) and distance ratio against layer (bottom), one colour per initial
/// angle: the measured mean (solid, circles), the band mean +/- one standard deviation over every
/// pair of every network, and the infinite-width prediction (dashed, diamonds).
pub fn geometry_svg(title: &str, spec: &Spec, rows: &[GeometryLayer]) -> PlotResult {
    let depth = spec.network.depth();
    let mut angles: Vec<f64> = Vec::new();
    for r in rows {
        if !angles.contains(&r.angle_deg) {
            angles.push(r.angle_deg);
        }
    }
    let networks = rows.first().map_or(0, |r| r.networks);
    let pairs = spec.geometry().map_or(0, |g| g.pairs);
    let mut legend = Legend::new(None, 3);
    for (i, a) in angles.iter().enumerate() {
        let colour = series_colour(i);
        legend.push(Entry::new(
            Swatch::LineMarker(Stroke::new(colour, 2.0), Shape::Circle),
            format!(
                "{} deg (c0 = {}): measured mean",
                num(*a, 4),
                num(rows_of(rows, *a)[0].initial_cosine, 3)
            ),
        ));
    }
    legend.push(Entry::new(
        Swatch::Band(Fill::new(RGBColor(120, 120, 120), 0.25), None),
        format!("band: mean +/- 1 std over {pairs} pairs x {networks} networks"),
    ));
    legend.push(Entry::new(
        Swatch::LineMarker(Stroke::new(RGBColor(60, 60, 60), 1.5).dashed("6 4"), Shape::Diamond),
        "infinite width: arc-cosine map iterated (distance: sqrt(q_l (1 - c_l) / (1 - c_0)))",
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
        let panels: [(&DrawingArea<SVGBackend, plotters::coord::Shift>, &str, Pick); 2] = [
            (&upper, "cosine of h^l(x), h^l(y)", |r| {
                (r.cosine.mean, r.cosine.std, r.predicted.cosine)
            }),
            (&lower, "||h^l(x) - h^l(y)|| / ||x - y||", |r| {
                (r.distance_ratio.mean, r.distance_ratio.std, r.predicted.distance_ratio)
            }),
        ];
        for (area, y_desc, pick) in panels {
            let values: Vec<f64> = rows
                .iter()
                .flat_map(|r| {
                    let (m, s, p) = pick(r);
                    let s = if s.is_finite() { s } else { 0.0 };
                    [m - s, m + s, p]
                })
                .filter(|v| v.is_finite())
                .collect();
            let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let (lo, hi) = if lo.is_finite() && hi > lo {
                let pad = 0.05 * (hi - lo);
                (lo - pad, hi + pad)
            } else {
                (0.0, 1.0)
            };
            let x_hi = depth as f64 + 0.3;
            let x_ticks: Vec<f64> = if depth <= 20 {
                (0..=depth).map(|l| l as f64).collect()
            } else {
                round_ticks(0.0, depth as f64)
            };
            let mut chart = ChartBuilder::on(area)
                .margin(16)
                .x_label_area_size(45)
                .y_label_area_size(70)
                .build_cartesian_2d(
                    Ticked::new(-0.3..x_hi, x_ticks),
                    Ticked::new(lo..hi, round_ticks(lo, hi)),
                )
                .map_err(err)?;
            house_mesh(&mut chart.configure_mesh())
                .x_label_formatter(&|v| format!("{v:.0}"))
                .y_label_formatter(&|v| num(*v, 3))
                .x_desc("layer l (0: the inputs)")
                .y_desc(y_desc)
                .draw()
                .map_err(err)?;
            for (i, a) in angles.iter().enumerate() {
                let colour = series_colour(i);
                let these = rows_of(rows, *a);
                let pts: Vec<(f64, f64, f64, f64)> = these
                    .iter()
                    .map(|r| {
                        let (m, s, p) = pick(r);
                        (r.layer as f64, m, if s.is_finite() { s } else { 0.0 }, p)
                    })
                    .filter(|(_, m, _, _)| m.is_finite())
                    .collect();
                let mut band: Vec<(f64, f64)> = pts.iter().map(|&(x, m, s, _)| (x, m + s)).collect();
                band.extend(pts.iter().rev().map(|&(x, m, s, _)| (x, m - s)));
                chart
                    .draw_series(std::iter::once(Polygon::new(band, colour.mix(0.18))))
                    .map_err(err)?;
                let predicted: Vec<(f64, f64)> = these
                    .iter()
                    .map(|r| (r.layer as f64, pick(r).2))
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
                let mean: Vec<(f64, f64)> = pts.iter().map(|&(x, m, _, _)| (x, m)).collect();
                chart
                    .draw_series(LineSeries::new(mean.clone(), colour.stroke_width(2)))
                    .map_err(err)?;
                chart
                    .draw_series(mean.iter().map(|&xy| Circle::new(xy, 3, colour.filled())))
                    .map_err(err)?;
            }
            mark_plot_area(layer, chart.plotting_area().get_pixel_range());
        }
        Ok(())
    })?;
    legend.draw(&mut layer, 20.0, top + f64::from(charts) + 4.0, legend_width);
    Ok(layer.into_document(svg))
}

/// The rows of one angle, by layer.
fn rows_of(rows: &[GeometryLayer], angle: f64) -> Vec<&GeometryLayer> {
    let mut these: Vec<&GeometryLayer> = rows.iter().filter(|r| r.angle_deg == angle).collect();
    these.sort_by_key(|r| r.layer);
    these
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_ticks_cover_the_range() {
        let t = round_ticks(0.0, 1.0);
        assert_eq!(t.first(), Some(&0.0));
        assert!((t.last().unwrap() - 1.0).abs() < 1e-12);
        assert!(t.len() <= 9);
        let t = round_ticks(0.31, 0.99);
        assert!(t.iter().all(|v| (0.31..=0.99).contains(v)) && t.len() >= 3, "{t:?}");
    }
}
