//! The figure of a width x depth sweep: a heat map with the frontiers.

use plotters::prelude::*;

use super::{err, PlotResult, BOUND_COLOURS};
use crate::analysis::sweep::{FrontierRow, PointReport};
use crate::theory::bounds::Bound;

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
        for (bound, colour) in Bound::ALL.iter().map(|b| b.name()).zip(BOUND_COLOURS) {
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
