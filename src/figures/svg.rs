//! Raw SVG elements drawn beside what plotters draws: titles, legends, colour bars, tables,
//! markers. Plotters draws the charts (axes, ticks, series); everything whose place must be
//! controlled to the pixel (so that it never covers data) is written here and added to the
//! document before its closing tag.

use std::fmt::Write;

use plotters::style::RGBColor;

/// Average advance of a sans-serif character, as a fraction of the font size: a slight
/// overestimate (layouts here must not overlap whatever font the viewer picks).
const CHAR_WIDTH: f64 = 0.56;

/// Estimated width in pixels of `text` at `size` px.
pub fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * CHAR_WIDTH
}

/// Break `text` into lines no wider than `width` px at `size` px, at spaces (a word longer than
/// a line gets a line of its own).
pub fn wrap(text: &str, size: f64, width: f64) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let candidate = if line.is_empty() {
            word.to_string()
        } else {
            format!("{line} {word}")
        };
        if !line.is_empty() && text_width(&candidate, size) > width {
            lines.push(std::mem::replace(&mut line, word.to_string()));
        } else {
            line = candidate;
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

pub fn hex(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Horizontal anchor of a text.
#[derive(Clone, Copy)]
pub enum Anchor {
    Start,
    Middle,
    End,
}

impl Anchor {
    fn svg(self) -> &'static str {
        match self {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        }
    }
}

/// How a text is drawn.
#[derive(Clone, Copy)]
pub struct Font {
    pub size: f64,
    pub colour: RGBColor,
    pub bold: bool,
    pub anchor: Anchor,
    /// Rotated by -90 degrees about its anchor (reads bottom to top).
    pub vertical: bool,
}

impl Font {
    pub fn new(size: f64) -> Font {
        Font {
            size,
            colour: RGBColor(0, 0, 0),
            bold: false,
            anchor: Anchor::Start,
            vertical: false,
        }
    }

    pub fn colour(self, colour: RGBColor) -> Font {
        Font { colour, ..self }
    }

    pub fn bold(self) -> Font {
        Font { bold: true, ..self }
    }

    pub fn anchor(self, anchor: Anchor) -> Font {
        Font { anchor, ..self }
    }

    pub fn vertical(self) -> Font {
        Font { vertical: true, ..self }
    }
}

/// How a line or an outline is drawn.
#[derive(Clone, Copy)]
pub struct Stroke {
    pub colour: RGBColor,
    pub width: f64,
    /// `stroke-dasharray`, e.g. "6 4".
    pub dash: Option<&'static str>,
    pub opacity: f64,
}

impl Stroke {
    pub fn new(colour: RGBColor, width: f64) -> Stroke {
        Stroke {
            colour,
            width,
            dash: None,
            opacity: 1.0,
        }
    }

    pub fn dashed(self, dash: &'static str) -> Stroke {
        Stroke {
            dash: Some(dash),
            ..self
        }
    }

    fn attrs(&self) -> String {
        let mut s = format!(
            " stroke=\"{}\" stroke-width=\"{}\" stroke-opacity=\"{}\"",
            hex(self.colour),
            self.width,
            self.opacity
        );
        if let Some(d) = self.dash {
            let _ = write!(s, " stroke-dasharray=\"{d}\"");
        }
        s
    }
}

/// A fill colour with its opacity.
#[derive(Clone, Copy)]
pub struct Fill {
    pub colour: RGBColor,
    pub opacity: f64,
}

impl Fill {
    pub fn new(colour: RGBColor, opacity: f64) -> Fill {
        Fill { colour, opacity }
    }
}

fn paint(fill: Option<Fill>, stroke: Option<Stroke>) -> String {
    let mut s = match fill {
        Some(f) => format!(" fill=\"{}\" fill-opacity=\"{}\"", hex(f.colour), f.opacity),
        None => " fill=\"none\"".to_string(),
    };
    match stroke {
        Some(st) => s.push_str(&st.attrs()),
        None => s.push_str(" stroke=\"none\""),
    }
    s
}

/// A list of SVG elements in pixel coordinates.
#[derive(Default)]
pub struct Layer {
    out: String,
}

impl Layer {
    pub fn new() -> Layer {
        Layer::default()
    }

    /// Open a `<g class="...">`; close it with [`Layer::end`].
    pub fn group(&mut self, class: &str) {
        let _ = writeln!(self.out, "<g class=\"{}\">", escape(class));
    }

    pub fn end(&mut self) {
        self.out.push_str("</g>\n");
    }

    /// A text whose vertical centre is at `y`.
    pub fn text(&mut self, x: f64, y: f64, font: Font, content: &str) {
        let mut attrs = format!(
            "x=\"{x:.1}\" y=\"{y:.1}\" dy=\"0.35em\" text-anchor=\"{}\" font-family=\"sans-serif\" font-size=\"{}\" \
             fill=\"{}\"",
            font.anchor.svg(),
            font.size,
            hex(font.colour)
        );
        if font.bold {
            attrs.push_str(" font-weight=\"bold\"");
        }
        if font.vertical {
            let _ = write!(attrs, " transform=\"rotate(-90, {x:.1}, {y:.1})\"");
        }
        let _ = writeln!(self.out, "<text {attrs}>{}</text>", escape(content));
    }

    pub fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), stroke: Stroke) {
        let _ = writeln!(
            self.out,
            "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\"{}/>",
            stroke.attrs()
        );
    }

    pub fn rect(
        &mut self,
        class: Option<&str>,
        (x, y): (f64, f64),
        (w, h): (f64, f64),
        fill: Option<Fill>,
        stroke: Option<Stroke>,
    ) {
        let class = class.map_or(String::new(), |c| format!(" class=\"{}\"", escape(c)));
        let _ = writeln!(
            self.out,
            "<rect{class} x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\"{}/>",
            w.max(0.0),
            h.max(0.0),
            paint(fill, stroke)
        );
    }

    pub fn polygon(&mut self, points: &[(f64, f64)], fill: Option<Fill>, stroke: Option<Stroke>) {
        if points.len() < 3 {
            return;
        }
        let _ = writeln!(
            self.out,
            "<polygon points=\"{}\"{}/>",
            coords(points),
            paint(fill, stroke)
        );
    }

    pub fn circle(&mut self, (x, y): (f64, f64), r: f64, fill: Option<Fill>, stroke: Option<Stroke>) {
        let _ = writeln!(
            self.out,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{r}\"{}/>",
            paint(fill, stroke)
        );
    }

    /// A marker of `shape` centred at `at`, `size` px across.
    pub fn marker(&mut self, shape: Shape, at: (f64, f64), size: f64, fill: Option<Fill>, stroke: Option<Stroke>) {
        let (x, y) = at;
        let h = size / 2.0;
        match shape {
            Shape::Circle => self.circle(at, h, fill, stroke),
            Shape::Square => self.rect(None, (x - h, y - h), (size, size), fill, stroke),
            Shape::Diamond => self.polygon(&[(x, y - h), (x + h, y), (x, y + h), (x - h, y)], fill, stroke),
            Shape::Up => self.polygon(&[(x, y - h), (x + h, y + h), (x - h, y + h)], fill, stroke),
            Shape::Left => self.polygon(&[(x - h, y), (x + h, y - h), (x + h, y + h)], fill, stroke),
            Shape::Right => self.polygon(&[(x + h, y), (x - h, y - h), (x - h, y + h)], fill, stroke),
        }
    }

    /// Add these elements to `svg` (a whole document), on top of what it draws.
    pub fn into_document(self, mut svg: String) -> String {
        match svg.rfind("</svg>") {
            Some(i) => svg.insert_str(i, &self.out),
            None => svg.push_str(&self.out),
        }
        svg
    }
}

fn coords(points: &[(f64, f64)]) -> String {
    points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Marker shapes. The triangles pointing left or right mark a value beyond the left or right
/// edge of a plot; up, beyond its top.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    Circle,
    Square,
    Diamond,
    Up,
    Left,
    Right,
}

/// A number in at most `digits` significant digits, without trailing zeros.
pub fn num(v: f64, digits: usize) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let magnitude = v.abs().log10().floor() as i32;
    if !(-4..6).contains(&magnitude) {
        return format!("{:.*e}", digits.saturating_sub(1), v);
    }
    let decimals = (digits as i32 - 1 - magnitude).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short() {
        assert_eq!(num(90.8123, 3), "90.8");
        assert_eq!(num(0.152397, 3), "0.152");
        assert_eq!(num(0.15, 3), "0.15");
        assert_eq!(num(4000.0, 3), "4000");
        assert_eq!(num(1.0, 3), "1");
    }

    #[test]
    fn wrapping_keeps_every_word_and_the_width() {
        let text = "one two three four five six seven eight nine ten";
        let lines = wrap(text, 10.0, 80.0);
        assert!(lines.len() > 1);
        assert_eq!(lines.join(" "), text);
        assert!(lines.iter().all(|l| text_width(l, 10.0) <= 80.0));
    }

    #[test]
    fn text_is_escaped_and_added_before_the_end() {
        let mut layer = Layer::new();
        layer.text(1.0, 2.0, Font::new(10.0), "a < b & c");
        let svg = layer.into_document("<svg></svg>".into());
        assert!(svg.contains("a &lt; b &amp; c</text>\n</svg>"), "{svg}");
    }
}
