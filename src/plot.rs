//! Figures as SVG (plotters, SVG backend only: text is left to the viewer, no fonts needed).

use plotters::prelude::*;
use serde_json::Value;

use crate::sweep::{FrontierRow, PointReport};

const WIDE: (u32, u32) = (1000, 440);
const BOUND_COLOURS: [RGBColor; 3] = [RGBColor(214, 39, 40), RGBColor(44, 160, 44), RGBColor(148, 103, 189)];

type PlotResult = Result<String, String>;

fn err<E: std::fmt::Display>(e: E) -> String {
    format!("drawing the figure: {e}")
}

fn num(v: &Value, pointer: &str) -> Option<f64> {
    v.pointer(pointer).and_then(Value::as_f64).filter(|x| x.is_finite())
}

/// One panel of the per-layer figure: mean with p05-p95 band, and the predicted mean.
fn layer_panel(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    layers: &[Value],
    ratio: &str,
    y_desc: &str,
) -> Result<(), String> {
    let depth = layers.len().max(1) as f64;
    let get = |l: &Value, field: &str| num(l, &format!("/{ratio}/{field}"));
    let x = |l: &Value| num(l, "/layer").unwrap_or(0.0);
    let mut hi = 0.0f64;
    for l in layers {
        for f in ["p95", "mean"] {
            hi = hi.max(get(l, f).unwrap_or(0.0));
        }
        hi = hi.max(num(l, &format!("/predicted/{ratio}/mean")).unwrap_or(0.0));
    }
    let hi = if hi > 0.0 { hi * 1.1 } else { 1.5 };
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{ratio} ratio by layer"), ("sans-serif", 18))
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
        .filter_map(|l| Some((x(l), get(l, "p95")?)))
        .chain(layers.iter().rev().filter_map(|l| Some((x(l), get(l, "p05")?))))
        .collect();
    chart
        .draw_series(std::iter::once(Polygon::new(band, BLUE.mix(0.18))))
        .map_err(err)?
        .label("p05 - p95 over samples")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], BLUE.mix(0.18).filled()));
    chart
        .draw_series(LineSeries::new(
            layers.iter().filter_map(|l| Some((x(l), get(l, "mean")?))),
            BLUE.stroke_width(2),
        ))
        .map_err(err)?
        .label("measured mean")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    chart
        .draw_series(
            layers
                .iter()
                .filter_map(|l| Some(Circle::new((x(l), get(l, "mean")?), 3, BLUE.filled()))),
        )
        .map_err(err)?;
    let predicted: Vec<(f64, f64)> = layers
        .iter()
        .filter_map(|l| Some((x(l), num(l, &format!("/predicted/{ratio}/mean"))?)))
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
pub fn norms_svg(title: &str, layers: &[Value]) -> PlotResult {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, WIDE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let root = root.titled(title, ("sans-serif", 16)).map_err(err)?;
        let (left, right) = root.split_horizontally(WIDE.0 / 2);
        layer_panel(&left, layers, "forward", "||h^l|| / ||x||")?;
        layer_panel(
            &right,
            layers,
            "gradient",
            "||delta^l|| ||h^(l-1)|| / (||x|| ||delta^L||)",
        )?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

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
        for (bound, colour) in ["arpit2019", "exact_tail", "chernoff"].into_iter().zip(BOUND_COLOURS) {
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

/// The figure of a width x depth sweep: observed probability of staying within 1 +/- epsilon as
/// a heat map, with the empirical frontier and each bound's minimal width per depth.
pub fn map_svg(title: &str, points: &[PointReport], frontier: &[FrontierRow]) -> PlotResult {
    let mut widths: Vec<usize> = points.iter().map(|p| p.width).collect();
    widths.sort_unstable();
    widths.dedup();
    let mut depths: Vec<usize> = points.iter().map(|p| p.depth).collect();
    depths.sort_unstable();
    depths.dedup();
    let (nw, nd) = (widths.len().max(1) as f64, depths.len().max(1) as f64);
    let wi = |w: usize| widths.iter().position(|&x| x == w).map(|i| i as f64);
    let di = |d: usize| depths.iter().position(|&x| x == d).map(|i| i as f64);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (860, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(14)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5f64..nw - 0.5, -0.5f64..nd - 0.5)
            .map_err(err)?;
        let wl = widths.clone();
        let dl = depths.clone();
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(widths.len())
            .y_labels(depths.len())
            .x_label_formatter(&move |v| {
                wl.get(v.round().max(0.0) as usize)
                    .map_or(String::new(), |w| w.to_string())
            })
            .y_label_formatter(&move |v| {
                dl.get(v.round().max(0.0) as usize)
                    .map_or(String::new(), |d| d.to_string())
            })
            .x_desc("width m (swept values)")
            .y_desc("depth L")
            .draw()
            .map_err(err)?;
        chart
            .draw_series(points.iter().filter_map(|p| {
                let (x, y) = (wi(p.width)?, di(p.depth)?);
                let q = p.all_within.probability.clamp(0.0, 1.0);
                let colour = RGBColor((255.0 * (1.0 - q)) as u8, (90.0 + 130.0 * q) as u8, 90);
                Some(Rectangle::new(
                    [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)],
                    colour.mix(0.75).filled(),
                ))
            }))
            .map_err(err)?
            .label("cell colour: observed P(all within 1 +/- epsilon), red 0 .. green 1")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], RGBColor(90, 220, 90).filled()));
        // Frontiers in grid coordinates: interpolate a width between swept columns on a log scale.
        let col = |w: f64| -> f64 {
            if widths.is_empty() {
                return 0.0;
            }
            let lw = w.ln();
            let logs: Vec<f64> = widths.iter().map(|&x| (x as f64).ln()).collect();
            if lw <= logs[0] {
                return -0.5;
            }
            for i in 1..logs.len() {
                if lw <= logs[i] {
                    return (i - 1) as f64 + (lw - logs[i - 1]) / (logs[i] - logs[i - 1]);
                }
            }
            nw - 0.5
        };
        let empirical: Vec<(f64, f64)> = frontier
            .iter()
            .filter_map(|r| Some((wi(r.empirical_min_width?)?, di(r.depth)?)))
            .collect();
        chart
            .draw_series(LineSeries::new(empirical.clone(), BLACK.stroke_width(3)))
            .map_err(err)?
            .label("empirical frontier (smallest width meeting epsilon, delta)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(3)));
        chart
            .draw_series(empirical.into_iter().map(|xy| Circle::new(xy, 5, BLACK.filled())))
            .map_err(err)?;
        for (bound, colour) in ["arpit2019", "exact_tail", "chernoff"].into_iter().zip(BOUND_COLOURS) {
            let line: Vec<(f64, f64)> = frontier
                .iter()
                .filter_map(|r| {
                    let m = r.bounds.iter().find(|b| b.bound == bound)?.min_width?;
                    Some((col(m as f64).clamp(-0.5, nw - 0.5), di(r.depth)?))
                })
                .collect();
            chart
                .draw_series(DashedLineSeries::new(line, 6, 4, colour.stroke_width(2)))
                .map_err(err)?
                .label(format!("{bound}: minimal width (clipped to the swept range)"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}
