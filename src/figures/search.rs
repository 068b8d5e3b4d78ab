//! The figures of a `min_width` job: for one cell, the measured P(all within) against width with
//! each probe's interval, the 1 - delta line, the certified bracket and each bound's minimal
//! width; for a table of cells, each bound's looseness (its width over the certified one)
//! against depth.

use plotters::prelude::*;

use super::{err, PlotResult, BOUND_COLOURS};
use crate::analysis::search::CellResult;
use crate::theory::bounds::Bound;

const SIZE: (u32, u32) = (900, 620);
/// Height of the legend strip under the chart (legends never sit on the data).
const LEGEND: u32 = 130;

/// One legend line: a colour swatch and a text.
fn legend_line(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    row: i32,
    colour: RGBColor,
    dashed: bool,
    text: &str,
) -> Result<(), String> {
    let (x, y) = (30, 14 + 20 * row);
    if dashed {
        for k in 0..3 {
            area.draw(&PathElement::new(
                vec![(x + 10 * k, y), (x + 10 * k + 6, y)],
                colour.stroke_width(2),
            ))
            .map_err(err)?;
        }
    } else {
        area.draw(&PathElement::new(vec![(x, y), (x + 26, y)], colour.stroke_width(2)))
            .map_err(err)?;
    }
    area.draw(&Text::new(text.to_string(), (x + 36, y - 7), ("sans-serif", 14)))
        .map_err(err)?;
    Ok(())
}

/// P(all within) against width for one cell.
pub fn search_svg(title: &str, cell: &CellResult, target: f64) -> PlotResult {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (top, legend) = root.split_vertically(SIZE.1 - LEGEND);
        let mut xs: Vec<f64> = cell.probes.iter().map(|p| p.width as f64).collect();
        xs.extend(cell.bounds.iter().filter_map(|b| b.min_width.map(|w| w as f64)));
        xs.push(cell.width_range[0] as f64);
        xs.push(cell.width_range[1] as f64);
        let lo = xs.iter().copied().fold(f64::INFINITY, f64::min).max(1.0) / 1.3;
        let hi = xs.iter().copied().fold(1.0f64, f64::max) * 1.3;
        let mut chart = ChartBuilder::on(&top)
            .caption(title, ("sans-serif", 15))
            .margin(14)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d((lo..hi).log_scale(), -0.02f64..1.02)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("width m (log scale)")
            .y_desc("P(every ratio of the claim within 1 +/- epsilon)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(err)?;
        // The certified bracket, shaded.
        if let (Some(f), Some(p)) = (cell.bracket.fail, cell.bracket.pass) {
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(f as f64, -0.02), (p as f64, 1.02)],
                    RGBColor(255, 200, 0).mix(0.25).filled(),
                )))
                .map_err(err)?;
        }
        chart
            .draw_series(LineSeries::new(vec![(lo, target), (hi, target)], BLACK.stroke_width(1)))
            .map_err(err)?;
        for (b, colour) in Bound::ALL.iter().zip(BOUND_COLOURS) {
            if let Some(w) = cell
                .bounds
                .iter()
                .find(|x| x.bound == b.name())
                .and_then(|x| x.min_width)
            {
                chart
                    .draw_series(DashedLineSeries::new(
                        vec![(w as f64, -0.02), (w as f64, 1.02)],
                        6,
                        4,
                        colour.stroke_width(2),
                    ))
                    .map_err(err)?;
            }
        }
        for p in &cell.probes {
            let x = p.width as f64;
            let frac = if p.networks > 0 {
                p.successes as f64 / p.networks as f64
            } else {
                0.0
            };
            let colour = match p.decision {
                crate::analysis::search::Decision::Pass => RGBColor(44, 160, 44),
                crate::analysis::search::Decision::Fail => RGBColor(214, 39, 40),
                crate::analysis::search::Decision::Undecided => RGBColor(120, 120, 120),
            };
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x, p.lower_limit), (x, p.upper_limit)],
                    colour.stroke_width(2),
                )))
                .map_err(err)?;
            chart
                .draw_series(std::iter::once(Circle::new((x, frac), 4, colour.filled())))
                .map_err(err)?;
        }
        let mut row = 0;
        legend_line(&legend, row, BLACK, false, &format!("1 - delta = {target}"))?;
        row += 1;
        legend_line(
            &legend,
            row,
            RGBColor(44, 160, 44),
            false,
            "probes: observed fraction, bar = its one-sided limits (green pass, red fail, grey undecided)",
        )?;
        row += 1;
        let bracket = match (cell.bracket.fail, cell.bracket.pass) {
            (Some(f), Some(p)) => format!(
                "certified bracket [{f}, {p}] (shaded), every decision right with probability >= {}",
                cell.confidence
            ),
            (None, Some(p)) => format!("passes at {p}, the lower end of the range"),
            (_, None) => "no width in the range passed".to_string(),
        };
        legend_line(&legend, row, RGBColor(255, 200, 0), false, &bracket)?;
        row += 1;
        let bounds: Vec<String> = cell
            .bounds
            .iter()
            .map(|b| {
                format!(
                    "{} {}{}",
                    b.bound,
                    b.min_width.map_or("beyond limit".into(), |w| w.to_string()),
                    b.looseness.map_or(String::new(), |l| format!(" ({l:.1}x)"))
                )
            })
            .collect();
        legend_line(
            &legend,
            row,
            BOUND_COLOURS[0],
            true,
            &format!("bounds' minimal widths (dashed): {}", bounds.join(", ")),
        )?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Each bound's looseness against depth, one line per (bound, epsilon), for a table of cells.
pub fn table_svg(title: &str, cells: &[CellResult]) -> PlotResult {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (top, legend) = root.split_vertically(SIZE.1 - LEGEND);
        let values: Vec<f64> = cells
            .iter()
            .flat_map(|c| c.bounds.iter().filter_map(|b| b.looseness))
            .filter(|v| v.is_finite() && *v > 0.0)
            .collect();
        let lo = values.iter().copied().fold(1.0f64, f64::min) / 1.5;
        let hi = values.iter().copied().fold(2.0f64, f64::max) * 1.5;
        let dmax = cells.iter().map(|c| c.depth).max().unwrap_or(1) as f64;
        let dmin = cells.iter().map(|c| c.depth).min().unwrap_or(1) as f64;
        let mut chart = ChartBuilder::on(&top)
            .caption(title, ("sans-serif", 15))
            .margin(14)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d((dmin - 0.5)..(dmax + 0.5), (lo..hi).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("depth L")
            .y_desc("looseness: bound's width / certified minimal width (log)")
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                vec![(dmin - 0.5, 1.0), (dmax + 0.5, 1.0)],
                BLACK.stroke_width(1),
            ))
            .map_err(err)?;
        let mut epsilons: Vec<f64> = cells.iter().map(|c| c.epsilon).collect();
        epsilons.dedup();
        let mut row = 0;
        for (b, colour) in Bound::ALL.iter().zip(BOUND_COLOURS) {
            for &e in &epsilons {
                let line: Vec<(f64, f64)> = cells
                    .iter()
                    .filter(|c| c.epsilon == e)
                    .filter_map(|c| {
                        let l = c.bounds.iter().find(|x| x.bound == b.name())?.looseness?;
                        Some((c.depth as f64, l))
                    })
                    .collect();
                chart
                    .draw_series(LineSeries::new(line.clone(), colour.stroke_width(2)))
                    .map_err(err)?;
                chart
                    .draw_series(line.into_iter().map(|xy| Circle::new(xy, 4, colour.filled())))
                    .map_err(err)?;
            }
            legend_line(
                &legend,
                row,
                colour,
                false,
                &format!("{} (one line per epsilon {epsilons:?})", b.name()),
            )?;
            row += 1;
        }
        legend_line(
            &legend,
            row,
            BLACK,
            false,
            "1: the bound asks for exactly the certified width",
        )?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}
