//! The figure of `/compare`: several `norms` jobs overlaid, one panel per ratio: each job's mean
//! per layer and its p05-p95 band over networks and inputs (He vs Glorot vs weight norm, say).

use plotters::prelude::*;

use super::legend::{Entry, Legend, Swatch};
use super::norms::{band_polygon, layer_ticks};
use super::svg::{num, Fill, Stroke};
use super::{err, frame, house_mesh, mark_plot_area, Heading, PlotResult, Ticked};
use crate::analysis::report::LayerReport;
use crate::analysis::stats::RatioStats;

const WIDTH: u32 = 1100;
const PANEL_HEIGHT: u32 = 420;

/// One colour per compared job, in order; also the most jobs one figure compares.
pub const COMPARE_COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(217, 95, 2),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// A job in a comparison: its label (name or id) and its per-layer statistics.
pub struct Compared<'a> {
    pub label: String,
    pub layers: &'a [LayerReport],
}

/// Which ratio of a layer a panel shows.
type Pick = fn(&LayerReport) -> &RatioStats;
/// (layer, mean) points and (layer, p05, p95) band of one ratio of one job.
type Series = (Vec<(f64, f64)>, Vec<(f64, f64, f64)>);

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// (layer, mean) and (layer, p05, p95) of one ratio of one job, finite values only.
fn series(layers: &[LayerReport], pick: Pick) -> Series {
    let mean = layers
        .iter()
        .filter_map(|l| Some((l.layer as f64, finite(pick(l).mean)?)))
        .collect();
    let band = layers
        .iter()
        .filter_map(|l| Some((l.layer as f64, finite(pick(l).p05)?, finite(pick(l).p95)?)))
        .collect();
    (mean, band)
}

/// Several jobs' forward and gradient ratios per layer in one SVG (1 to 8 jobs).
pub fn compare_svg(title: &str, jobs: &[Compared]) -> PlotResult {
    if jobs.is_empty() || jobs.len() > COMPARE_COLOURS.len() {
        return Err(format!("a comparison takes 1 to {} jobs", COMPARE_COLOURS.len()));
    }
    let width = f64::from(WIDTH);
    let heading = Heading::new(title, None, width);
    let mut legend = Legend::new(None, 2);
    for (job, colour) in jobs.iter().zip(COMPARE_COLOURS) {
        legend.push(Entry::new(
            Swatch::Band(Fill::new(colour, 0.25), Some(Stroke::new(colour, 2.0))),
            job.label.clone(),
        ));
    }
    legend.push(Entry::note(
        "lines: the mean ratio per layer; bands: its p05 to p95 over networks and inputs",
    ));
    let legend_width = width - 28.0;
    let top = heading.height().ceil();
    let height = top + f64::from(PANEL_HEIGHT) + legend.height(legend_width) + 16.0;
    let depth = jobs
        .iter()
        .flat_map(|j| j.layers.iter().map(|l| l.layer))
        .max()
        .unwrap_or(1)
        .max(1);
    let (mut layer, svg) = frame(&heading, WIDTH, height, top, |rest, layer| {
        let (charts, _) = rest.split_vertically(PANEL_HEIGHT);
        let (left, right) = charts.split_horizontally(WIDTH / 2);
        let panels: [(&str, &str, Pick); 2] = [
            ("forward ratio by layer", "||h^l|| / ||x||", |l| &l.forward),
            ("gradient ratio by layer", "gradient ratio", |l| &l.gradient),
        ];
        for ((caption, axis, pick), area) in panels.into_iter().zip([left, right]) {
            let drawn: Vec<_> = jobs.iter().map(|j| series(j.layers, pick)).collect();
            let (mut lo, mut hi) = (1.0f64, 1.0f64);
            for (mean, band) in &drawn {
                for &(_, m) in mean {
                    lo = lo.min(m);
                    hi = hi.max(m);
                }
                for &(_, a, b) in band {
                    lo = lo.min(a);
                    hi = hi.max(b);
                }
            }
            let pad = (hi - lo).max(0.05) * 0.06;
            let mut chart = ChartBuilder::on(&area)
                .caption(caption, ("sans-serif", 19))
                .margin(14)
                .x_label_area_size(42)
                .y_label_area_size(62)
                .build_cartesian_2d(
                    Ticked::new(0.5..depth as f64 + 0.5, layer_ticks(depth)),
                    (lo - pad).max(0.0)..hi + pad,
                )
                .map_err(err)?;
            house_mesh(&mut chart.configure_mesh())
                .y_labels(8)
                .x_label_formatter(&|v| format!("{v:.0}"))
                .y_label_formatter(&|v| num(*v, 3))
                .x_desc("layer l")
                .y_desc(axis)
                .draw()
                .map_err(err)?;
            for ((mean, band), colour) in drawn.iter().zip(COMPARE_COLOURS) {
                if !band.is_empty() {
                    chart
                        .draw_series(std::iter::once(Polygon::new(band_polygon(band), colour.mix(0.18))))
                        .map_err(err)?;
                }
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
    legend.draw(&mut layer, 14.0, top + f64::from(PANEL_HEIGHT) + 4.0, legend_width);
    Ok(layer.into_document(svg))
}
