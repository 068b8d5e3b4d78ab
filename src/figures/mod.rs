//! Figures as SVG (plotters, SVG backend only: text is left to the viewer, no fonts needed).
//!
//! Holds one file per figure family: `norms` (ratios per layer), `sweep` (deviation vs width),
//! `map` (width x depth). Each takes typed results and a title.
//! Depends on: `analysis` (the result types), `theory` (bound names).

mod map;
mod norms;
mod search;
mod sweep;

pub use map::map_svg;
pub use norms::norms_svg;
pub use search::{search_svg, table_svg};
pub use sweep::sweep_svg;

use plotters::style::RGBColor;

/// Colours of the bounds, in the order of `Bound::ALL`.
const BOUND_COLOURS: [RGBColor; 3] = [RGBColor(214, 39, 40), RGBColor(44, 160, 44), RGBColor(148, 103, 189)];

/// A figure as SVG text, or why it could not be drawn.
pub type PlotResult = Result<String, String>;

fn err<E: std::fmt::Display>(e: E) -> String {
    format!("drawing the figure: {e}")
}
