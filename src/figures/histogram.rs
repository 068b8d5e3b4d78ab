//! The histogram of one layer's kept per-sample ratios (`keep_samples`), scaled as a density,
//! with the exact law's density beside it where one exists (plain Gaussian weights, forward
//! ratio) and the reason where none does.

use plotters::prelude::*;

use super::legend::{Entry, Legend, Swatch};
use super::svg::{num, Fill, Stroke};
use super::{err, frame, house_mesh, mark_plot_area, round_ticks, Heading, PlotResult, Ticked, MEASURED, PREDICTED};
use crate::analysis::samples::{Histogram, SampleRatio};

const WIDTH: u32 = 900;
const CHART_HEIGHT: u32 = 440;
/// Points at which the exact density is drawn across the chart.
pub const DENSITY_POINTS: usize = 400;

/// What the histogram is of, for its axis and legend.
pub struct HistogramOf<'a> {
    pub layer: usize,
    /// Residual blocks: the ratios are per block (the backward ratio is the gradient at the
    /// block's input relative to the output's).
    pub residual: bool,
    pub ratio: SampleRatio,
    pub networks: usize,
    pub inputs: usize,
    /// The exact density at `DENSITY_POINTS` evenly spaced points over the chart's range
    /// ([`density_points`]), with the law's mass at 0; or why there is none.
    pub exact: Result<(Vec<f64>, f64), &'a str>,
}

/// The x range of the chart: the histogram's bins with a little room on each side.
pub fn chart_range(h: &Histogram) -> (f64, f64) {
    let hi = h.lo + h.bin_width * h.counts.len() as f64;
    let pad = 0.03 * (hi - h.lo);
    (
        (h.lo - pad).max(if h.lo >= 0.0 { 0.0 } else { f64::NEG_INFINITY }),
        hi + pad,
    )
}

/// Where the exact density is evaluated: `DENSITY_POINTS` points evenly over the chart's range.
pub fn density_points(h: &Histogram) -> Vec<f64> {
    let (lo, hi) = chart_range(h);
    (0..DENSITY_POINTS)
        .map(|i| lo + (hi - lo) * i as f64 / (DENSITY_POINTS - 1) as f64)
        .collect()
}

/// Bars of count / (values x bin width), so the bars integrate to 1 like the density line.
pub fn histogram_svg(title: &str, h: &Histogram, of: &HistogramOf) -> PlotResult {
    let name = match (of.ratio, of.residual) {
        (SampleRatio::Forward, true) => format!("forward ratio ||h^{0}|| / ||x|| at block {0}", of.layer),
        (SampleRatio::Gradient, true) => format!(
            "backward ratio ||dL/dh^{}|| / ||dL/dh^B|| at block {}",
            of.layer - 1,
            of.layer
        ),
        (SampleRatio::Forward, false) => format!("forward ratio ||h^{0}|| / ||x|| at layer {0}", of.layer),
        (SampleRatio::Gradient, false) => format!(
            "gradient ratio ||delta^{0}|| ||h^{1}|| / (||x|| ||delta^L||) at layer {0}",
            of.layer,
            of.layer - 1
        ),
    };
    let mut legend = Legend::new(None, 1);
    legend.push(Entry::new(
        Swatch::Band(Fill::new(MEASURED, 0.45), None),
        format!(
            "measured: {} ratios ({} networks x {} inputs; one network's inputs share its weights), \
             mean {}, std {}",
            h.values,
            of.networks,
            of.inputs,
            num(h.mean, 5),
            num(h.std, 4)
        ),
    ));
    let xs = density_points(h);
    match &of.exact {
        Ok((_, zero)) => legend.push(Entry::new(
            Swatch::Line(Stroke::new(PREDICTED, 2.5)),
            format!(
                "exact law: R^2 = product of sigma_k^2 chi^2_K, K ~ Binomial(n_k, 1/2) over layers 1..{} \
                 (P(R = 0) = {})",
                of.layer,
                num(*zero, 3)
            ),
        )),
        Err(why) => legend.push(Entry::note(format!("no exact density drawn: {why}"))),
    }
    if h.zeros > 0 {
        legend.push(Entry::note(format!(
            "{} ratios are exactly 0 (a layer with no active unit), in the first bar",
            h.zeros
        )));
    }
    if h.undefined > 0 {
        legend.push(Entry::note(format!(
            "{} ratios are undefined and not shown",
            h.undefined
        )));
    }
    let bars: Vec<f64> = h
        .counts
        .iter()
        .map(|&c| c as f64 / (h.values.max(1) as f64 * h.bin_width))
        .collect();
    let exact: Vec<(f64, f64)> = match &of.exact {
        Ok((ys, _)) => xs
            .iter()
            .copied()
            .zip(ys.iter().copied())
            .filter(|(_, y)| y.is_finite())
            .collect(),
        Err(_) => Vec::new(),
    };
    let top_value = bars
        .iter()
        .chain(exact.iter().map(|(_, y)| y))
        .copied()
        .fold(0.0, f64::max);
    let y_hi = if top_value > 0.0 { top_value * 1.08 } else { 1.0 };
    let (x_lo, x_hi) = chart_range(h);

    let width = f64::from(WIDTH);
    let heading = Heading::new(title, None, width);
    let legend_width = width - 40.0;
    let top = heading.height().ceil();
    let height = top + f64::from(CHART_HEIGHT) + legend.height(legend_width) + 16.0;
    let (mut layer, svg) = frame(&heading, WIDTH, height, top, |rest, layer| {
        let (area, _) = rest.split_vertically(CHART_HEIGHT);
        let mut chart = ChartBuilder::on(&area)
            .margin(16)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(
                Ticked::new(x_lo..x_hi, round_ticks(x_lo, x_hi)),
                Ticked::new(0.0..y_hi, round_ticks(0.0, y_hi)),
            )
            .map_err(err)?;
        house_mesh(&mut chart.configure_mesh())
            .x_label_formatter(&|v| num(*v, 4))
            .y_label_formatter(&|v| num(*v, 3))
            .x_desc(name.as_str())
            .y_desc("density")
            .draw()
            .map_err(err)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, &b)| {
                let left = h.lo + i as f64 * h.bin_width;
                Rectangle::new([(left, 0.0), (left + h.bin_width, b)], MEASURED.mix(0.45).filled())
            }))
            .map_err(err)?;
        if !exact.is_empty() {
            chart
                .draw_series(LineSeries::new(exact, PREDICTED.stroke_width(3)))
                .map_err(err)?;
        }
        mark_plot_area(layer, chart.plotting_area().get_pixel_range());
        Ok(())
    })?;
    legend.draw(&mut layer, 20.0, top + f64::from(CHART_HEIGHT) + 4.0, legend_width);
    Ok(layer.into_document(svg))
}
