//! The figure of a `norms` job: forward and gradient ratio per layer.

use plotters::prelude::*;

use super::{err, PlotResult};
use crate::analysis::predict::RatioPrediction;
use crate::analysis::report::LayerReport;
use crate::analysis::stats::RatioStats;

const WIDE: (u32, u32) = (1000, 440);

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// Which ratio a panel shows.
#[derive(Clone, Copy)]
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
}

/// One panel of the per-layer figure: mean with p05-p95 band, and the predicted mean.
fn layer_panel(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    layers: &[LayerReport],
    ratio: Ratio,
    y_desc: &str,
) -> Result<(), String> {
    let depth = layers.len().max(1) as f64;
    let get = |l: &LayerReport, pick: fn(&RatioStats) -> f64| finite(pick(ratio.measured(l)));
    let x = |l: &LayerReport| l.layer as f64;
    let mut hi = 0.0f64;
    for l in layers {
        hi = hi.max(get(l, |s| s.p95).unwrap_or(0.0));
        hi = hi.max(get(l, |s| s.mean).unwrap_or(0.0));
        hi = hi.max(finite(ratio.predicted(l).mean).unwrap_or(0.0));
    }
    let hi = if hi > 0.0 { hi * 1.1 } else { 1.5 };
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{} ratio by layer", ratio.name()), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0.5f64..depth + 0.5, 0f64..hi)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(layers.len().min(20))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .x_desc("layer l")
        .y_desc(y_desc)
        .draw()
        .map_err(err)?;
    let band: Vec<(f64, f64)> = layers
        .iter()
        .filter_map(|l| Some((x(l), get(l, |s| s.p95)?)))
        .chain(layers.iter().rev().filter_map(|l| Some((x(l), get(l, |s| s.p05)?))))
        .collect();
    chart
        .draw_series(std::iter::once(Polygon::new(band, BLUE.mix(0.18))))
        .map_err(err)?
        .label("p05 - p95 over samples")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], BLUE.mix(0.18).filled()));
    chart
        .draw_series(LineSeries::new(
            layers.iter().filter_map(|l| Some((x(l), get(l, |s| s.mean)?))),
            BLUE.stroke_width(2),
        ))
        .map_err(err)?
        .label("measured mean")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    chart
        .draw_series(
            layers
                .iter()
                .filter_map(|l| Some(Circle::new((x(l), get(l, |s| s.mean)?), 3, BLUE.filled()))),
        )
        .map_err(err)?;
    let predicted: Vec<(f64, f64)> = layers
        .iter()
        .filter_map(|l| Some((x(l), finite(ratio.predicted(l).mean)?)))
        .collect();
    chart
        .draw_series(LineSeries::new(predicted, BLACK.stroke_width(1)))
        .map_err(err)?
        .label("predicted mean")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    Ok(())
}

/// The figure of a `norms` job: forward and gradient ratio per layer.
pub fn norms_svg(title: &str, layers: &[LayerReport]) -> PlotResult {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, WIDE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let root = root.titled(title, ("sans-serif", 16)).map_err(err)?;
        let (left, right) = root.split_horizontally(WIDE.0 / 2);
        layer_panel(&left, layers, Ratio::Forward, "||h^l|| / ||x||")?;
        layer_panel(
            &right,
            layers,
            Ratio::Gradient,
            "||delta^l|| ||h^(l-1)|| / (||x|| ||delta^L||)",
        )?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}
