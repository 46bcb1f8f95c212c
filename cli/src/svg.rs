//! A line chart as SVG text, written by hand: axes with ticks and titles, one `<path
//! class="curve">` per series, a legend. Archived branches are drawn faded and dashed in their
//! metric's colour, as `<path class="branch">`; curves and branches are the only `<path>`s.

use std::fmt::Write as _;

use crate::output;

const WIDTH: f64 = 900.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 210.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
const LEGEND_ROW: f64 = 20.0;
const PLOT_WIDTH: f64 = WIDTH - LEFT - RIGHT;
const PLOT_RIGHT: f64 = WIDTH - RIGHT;

/// Matplotlib's "tab10": distinct on white, and for most colour-blind readers.
const COLOURS: [&str; 10] =
    ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

/// One curve: its name and its points `(x, y)` in data coordinates, in x order, and the
/// curves of the same metric in archived branches (drawn faded).
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub branches: Vec<Vec<(f64, f64)>>,
}

impl Series {
    /// All points: the live curve's and the branches'.
    fn all_points(&self) -> impl Iterator<Item = &(f64, f64)> {
        self.points.iter().chain(self.branches.iter().flatten())
    }
}

/// A chart to draw. x values are steps: whole numbers.
pub struct Chart {
    pub title: String,
    pub x_title: String,
    pub y_title: String,
    /// The x range to show; default: that of the points.
    pub x_range: Option<(f64, f64)>,
    pub series: Vec<Series>,
}

/// Where data coordinates land on the canvas.
struct Frame {
    height: f64,
    x: (f64, f64),
    y: (f64, f64),
}

impl Frame {
    fn bottom(&self) -> f64 {
        self.height - BOTTOM
    }

    fn x_at(&self, x: f64) -> f64 {
        LEFT + (x - self.x.0) / (self.x.1 - self.x.0) * PLOT_WIDTH
    }

    fn y_at(&self, y: f64) -> f64 {
        self.bottom() - (y - self.y.0) / (self.y.1 - self.y.0) * (self.bottom() - TOP)
    }
}

impl Chart {
    /// The SVG document.
    pub fn render(&self) -> String {
        #[allow(clippy::cast_precision_loss)]
        let height = (TOP + BOTTOM + LEGEND_ROW * self.series.len() as f64).max(500.0);
        let frame = Frame {
            height,
            x: range(
                self.x_range
                    .map_or_else(Vec::new, |(low, high)| vec![low, high])
                    .into_iter()
                    .chain(self.series.iter().flat_map(|s| s.all_points().map(|p| p.0))),
                0.0,
            ),
            y: range(self.series.iter().flat_map(|s| s.all_points().map(|p| p.1)), 0.05),
        };
        let mut svg = String::with_capacity(64 * 1024);
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="24" font-size="15" text-anchor="middle">{}</text>"#,
            LEFT + PLOT_WIDTH / 2.0,
            escape(&self.title)
        );
        self.axes(&mut svg, &frame);
        self.curves(&mut svg, &frame);
        self.legend(&mut svg);
        svg.push_str("</svg>\n");
        svg
    }

    /// Grid, axis lines, ticks, tick labels and axis titles.
    fn axes(&self, svg: &mut String, frame: &Frame) {
        let x_ticks = ticks(frame.x.0, frame.x.1, 1.0);
        let y_ticks = ticks(frame.y.0, frame.y.1, 0.0);
        let (bottom, right) = (frame.bottom(), PLOT_RIGHT);
        let _ = writeln!(svg, r##"<g class="grid" stroke="#e6e6e6" stroke-width="1">"##);
        for &x in &x_ticks {
            let px = frame.x_at(x);
            let _ = writeln!(svg, r#"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{bottom:.1}"/>"#);
        }
        for &y in &y_ticks {
            let py = frame.y_at(y);
            let _ = writeln!(svg, r#"<line x1="{LEFT}" y1="{py:.1}" x2="{right:.1}" y2="{py:.1}"/>"#);
        }
        let _ = writeln!(svg, "</g>");
        let _ = writeln!(svg, r##"<g class="axes" stroke="#333333" stroke-width="1">"##);
        let _ = writeln!(svg, r#"<line x1="{LEFT}" y1="{bottom:.1}" x2="{right:.1}" y2="{bottom:.1}"/>"#);
        let _ = writeln!(svg, r#"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom:.1}"/>"#);
        for &x in &x_ticks {
            let px = frame.x_at(x);
            let _ = writeln!(svg, r#"<line x1="{px:.1}" y1="{bottom:.1}" x2="{px:.1}" y2="{:.1}"/>"#, bottom + 5.0);
        }
        for &y in &y_ticks {
            let py = frame.y_at(y);
            let _ = writeln!(svg, r#"<line x1="{:.1}" y1="{py:.1}" x2="{LEFT}" y2="{py:.1}"/>"#, LEFT - 5.0);
        }
        let _ = writeln!(svg, "</g>");
        let _ = writeln!(svg, r##"<g class="tick-labels" fill="#333333">"##);
        for &x in &x_ticks {
            let (px, py, label) = (frame.x_at(x), bottom + 19.0, step_label(x));
            let _ = writeln!(svg, r#"<text x="{px:.1}" y="{py:.1}" text-anchor="middle">{label}</text>"#);
        }
        for &y in &y_ticks {
            let (px, py, label) = (LEFT - 8.0, frame.y_at(y) + 4.0, output::human(y));
            let _ = writeln!(svg, r#"<text x="{px:.1}" y="{py:.1}" text-anchor="end">{label}</text>"#);
        }
        let _ = writeln!(svg, "</g>");
        let _ = writeln!(
            svg,
            r#"<text class="axis-title" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + PLOT_WIDTH / 2.0,
            frame.height - 15.0,
            escape(&self.x_title)
        );
        let (tx, ty) = (20.0, f64::midpoint(TOP, bottom));
        let _ = writeln!(
            svg,
            r#"<text class="axis-title" x="{tx}" y="{ty:.1}" text-anchor="middle" transform="rotate(-90 {tx} {ty:.1})">{}</text>"#,
            escape(&output::fit(&self.y_title, 40))
        );
    }

    /// One `<path class="curve">` per series, even one without points.
    fn curves(&self, svg: &mut String, frame: &Frame) {
        let path = |points: &[(f64, f64)]| {
            let mut d = String::with_capacity(points.len() * 14);
            for (n, &(x, y)) in points.iter().enumerate() {
                let _ = write!(d, "{}{:.1},{:.1}", if n == 0 { 'M' } else { 'L' }, frame.x_at(x), frame.y_at(y));
            }
            d
        };
        if self.series.iter().any(|series| !series.branches.is_empty()) {
            let _ = writeln!(
                svg,
                r#"<g class="branches" fill="none" stroke-width="1.5" stroke-opacity="0.35" stroke-dasharray="4 3">"#
            );
            for (index, series) in self.series.iter().enumerate() {
                for points in &series.branches {
                    let _ = writeln!(
                        svg,
                        r#"<path class="branch" stroke="{}" d="{}"><title>{} (archived)</title></path>"#,
                        COLOURS[index % COLOURS.len()],
                        path(points),
                        escape(&series.name)
                    );
                }
            }
            let _ = writeln!(svg, "</g>");
        }
        let _ = writeln!(svg, r#"<g class="curves" fill="none" stroke-width="1.5" stroke-linejoin="round">"#);
        for (index, series) in self.series.iter().enumerate() {
            let d = path(&series.points);
            let _ = writeln!(
                svg,
                r#"<path class="curve" stroke="{}" d="{d}"><title>{}</title></path>"#,
                COLOURS[index % COLOURS.len()],
                escape(&series.name)
            );
        }
        let _ = writeln!(svg, "</g>");
    }

    /// A coloured line and the name of each series, right of the plot.
    fn legend(&self, svg: &mut String) {
        let _ = writeln!(svg, r#"<g class="legend">"#);
        let x = PLOT_RIGHT + 20.0;
        let mut y = TOP + 10.0;
        for (index, series) in self.series.iter().enumerate() {
            let colour = COLOURS[index % COLOURS.len()];
            let _ = writeln!(
                svg,
                r#"<line x1="{x:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{colour}" stroke-width="3"/>"#,
                x + 20.0
            );
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}">{}<title>{}</title></text>"#,
                x + 26.0,
                y + 4.0,
                escape(&output::fit(&series.name, 24)),
                escape(&series.name)
            );
            y += LEGEND_ROW;
        }
        if self.series.iter().any(|series| !series.branches.is_empty()) {
            let _ = writeln!(
                svg,
                r##"<line x1="{x:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#333333" stroke-width="1.5" stroke-opacity="0.35" stroke-dasharray="4 3"/>"##,
                x + 20.0
            );
            let _ = writeln!(svg, r#"<text x="{:.1}" y="{:.1}">archived branches</text>"#, x + 26.0, y + 4.0);
        }
        let _ = writeln!(svg, "</g>");
    }
}

/// The range of `values`, widened by `margin` of its span on each side; a sensible range
/// around a single value, and 0..1 when there are none.
fn range(values: impl Iterator<Item = f64>, margin: f64) -> (f64, f64) {
    let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !low.is_finite() || !high.is_finite() {
        return (0.0, 1.0);
    }
    if high - low <= f64::EPSILON * high.abs().max(1.0) {
        let pad = if low == 0.0 { 1.0 } else { low.abs() * 0.1 };
        return (low - pad, high + pad);
    }
    let pad = (high - low) * margin;
    (low - pad, high + pad)
}

/// About six "nice" tick values (1, 2 or 5 times a power of ten apart, at least `least`)
/// within `low..=high`.
fn ticks(low: f64, high: f64, least: f64) -> Vec<f64> {
    let raw = ((high - low) / 6.0).max(least);
    if !(raw.is_finite() && raw > 0.0) {
        return vec![low];
    }
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * power).find(|&s| s >= raw).unwrap_or(10.0 * power);
    let mut ticks = Vec::new();
    let mut tick = (low / step).ceil() * step;
    while tick <= high + step * 1e-9 && ticks.len() < 20 {
        // Snap values like 0.30000000000000004 and -0.0 for their labels.
        ticks.push(if tick.abs() < step * 1e-9 { 0.0 } else { tick });
        tick += step;
    }
    ticks
}

/// A step for a tick label: `750`, `20k`, `1.5M`, `3G`.
fn step_label(step: f64) -> String {
    let magnitude = step.abs();
    let (scaled, suffix) = if magnitude >= 1e9 {
        (step / 1e9, "G")
    } else if magnitude >= 1e6 {
        (step / 1e6, "M")
    } else if magnitude >= 1e4 {
        (step / 1e3, "k")
    } else {
        (step, "")
    };
    format!("{}{suffix}", output::human(scaled))
}

/// `text` with the five XML special characters escaped.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_numbers_inside_the_range() {
        assert_eq!(ticks(0.0, 10.0, 0.0), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(0.0, 3.0, 1.0), [0.0, 1.0, 2.0, 3.0]);
        assert_eq!(step_label(1_500_000.0), "1.5M");
        assert_eq!(step_label(200_000.0), "200k");
        let small = ticks(0.013, 0.061, 0.0);
        assert!(small.iter().all(|&t| (0.013..=0.061).contains(&t)), "{small:?}");
        assert_eq!(output::human(small[0]), "0.02");
    }

    #[test]
    fn special_characters_are_escaped() {
        assert_eq!(escape(r#"a<b & "c">'"#), "a&lt;b &amp; &quot;c&quot;&gt;&apos;");
    }
}
