//! The figure of a single-depth sweep: deviation vs width.

use plotters::prelude::*;

use super::{err, PlotResult, BOUND_COLOURS};
use crate::analysis::sweep::PointReport;
use crate::theory::bounds::Bound;

fn guaranteed(p: &PointReport, bound: &str) -> Option<f64> {
    p.bounds
        .iter()
        .find(|b| b.bound == bound)
        .and_then(|b| b.guaranteed_epsilon)
        .filter(|g| g.is_finite())
}

/// The figure of a single-depth sweep: pooled deviation vs width (log axis) with each bound's
/// guaranteed epsilon, as in the paper's bound figure.
pub fn sweep_svg(title: &str, points: &[PointReport]) -> PlotResult {
    let mut pts: Vec<&PointReport> = points.iter().collect();
    pts.sort_by_key(|p| p.width);
    let (wmin, wmax) = match (pts.first(), pts.last()) {
        (Some(a), Some(b)) => (a.width as f64, b.width as f64),
        _ => (1.0, 10.0),
    };
    let (wmin, wmax) = if wmin == wmax {
        (wmin / 2.0, wmax * 2.0)
    } else {
        (wmin / 1.15, wmax * 1.15)
    };
    let mut values: Vec<f64> = Vec::new();
    for p in &pts {
        values.extend([
            p.forward_deviation.mean,
            p.forward_deviation.max,
            p.gradient_deviation.mean,
            p.max_deviation,
        ]);
        values.extend(p.bounds.iter().filter_map(|b| b.guaranteed_epsilon));
    }
    values.retain(|v| v.is_finite() && *v > 0.0);
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min).min(1.0) / 1.5;
    let hi = values.iter().copied().fold(0.0f64, f64::max).max(lo * 10.0) * 1.5;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (820, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(14)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d((wmin..wmax).log_scale(), (lo..hi).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_label_formatter(&|v| format!("{v:.0}"))
            .x_desc("width m (log scale)")
            .y_desc("|1 - r| and guaranteed epsilon (log scale)")
            .draw()
            .map_err(err)?;
        type Pick = fn(&PointReport) -> f64;
        let series: [(&str, RGBColor, Pick); 3] = [
            ("forward: pooled mean |1 - r|", BLUE, |p| p.forward_deviation.mean),
            ("forward: pooled max |1 - r|", RGBColor(31, 119, 180), |p| {
                p.forward_deviation.max
            }),
            ("gradient: pooled mean |1 - r|", RGBColor(255, 127, 14), |p| {
                p.gradient_deviation.mean
            }),
        ];
        for (label, colour, f) in series {
            let line: Vec<(f64, f64)> = pts
                .iter()
                .map(|p| (p.width as f64, f(p)))
                .filter(|(_, y)| y.is_finite() && *y > 0.0)
                .collect();
            chart
                .draw_series(LineSeries::new(line.clone(), colour.stroke_width(2)))
                .map_err(err)?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
            chart
                .draw_series(line.into_iter().map(|xy| Circle::new(xy, 3, colour.filled())))
                .map_err(err)?;
        }
        for (bound, colour) in Bound::ALL.iter().map(|b| b.name()).zip(BOUND_COLOURS) {
            let line: Vec<(f64, f64)> = pts
                .iter()
                .filter_map(|p| Some((p.width as f64, guaranteed(p, bound)?)))
                .collect();
            chart
                .draw_series(DashedLineSeries::new(line, 6, 4, colour.stroke_width(2)))
                .map_err(err)?
                .label(format!("{bound}: guaranteed epsilon"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}
