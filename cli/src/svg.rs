//! Line charts as SVG text, written by hand: one panel per metric, stacked (small multiples)
//! over a shared step axis, each with its own y axis (linear or logarithmic), ticks and
//! titles; one `<path class="curve">` per series, a legend. Archived branches are drawn faded
//! and dashed in their series' colour, as `<path class="branch">`; with smoothing, the raw
//! values are drawn faded behind the smoothed curve, as `<path class="raw">`. Those are the
//! only `<path>`s.

use std::fmt::Write as _;

use crate::output;

const WIDTH: f64 = 900.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 210.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;
/// The height of the plot area of a chart with one panel, and of each panel of several.
const ONE_PANEL: f64 = 400.0;
const PANEL: f64 = 170.0;
/// Space between stacked panels, for the next panel's title.
const GAP: f64 = 34.0;
const LEGEND_ROW: f64 = 20.0;
const PLOT_WIDTH: f64 = WIDTH - LEFT - RIGHT;
const PLOT_RIGHT: f64 = WIDTH - RIGHT;

/// Matplotlib's "tab10": distinct on white, and for most colour-blind readers.
const COLOURS: [&str; 10] =
    ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

/// The colour of a metric, the same in every plot: picked by a hash of its name.
pub fn metric_colour(name: &str) -> &'static str {
    // FNV-1a: stable across runs, platforms and versions, unlike std's hasher.
    let hash = name
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3));
    COLOURS[usize::try_from(hash % COLOURS.len() as u64).unwrap_or(0)]
}

/// The colour of the `index`th run of a plot of several runs.
pub fn run_colour(index: usize) -> &'static str {
    COLOURS[index % COLOURS.len()]
}

/// One curve: its label (the run, or the metric), colour, points `(x, y)` in data
/// coordinates in x order, and the raw points behind it when it is smoothed, and its archived
/// branches.
pub struct Series {
    pub label: String,
    pub colour: &'static str,
    pub points: Vec<(f64, f64)>,
    pub raw: Option<Vec<(f64, f64)>>,
    pub branches: Vec<Vec<(f64, f64)>>,
}

impl Series {
    /// Every point drawn: the curve's, the raw one's and the branches'.
    fn all_points(&self) -> impl Iterator<Item = &(f64, f64)> {
        self.points.iter().chain(self.raw.iter().flatten()).chain(self.branches.iter().flatten())
    }
}

/// One metric's panel.
pub struct Panel {
    pub metric: String,
    pub series: Vec<Series>,
}

/// A chart to draw. x values are steps: whole numbers.
pub struct Chart {
    pub title: String,
    pub x_title: String,
    /// The x range to show; default: that of the points.
    pub x_range: Option<(f64, f64)>,
    /// A logarithmic y axis: values at or below zero are left out.
    pub log_y: bool,
    pub panels: Vec<Panel>,
}

/// Where one panel's data coordinates land on the canvas.
struct Frame {
    top: f64,
    bottom: f64,
    x: (f64, f64),
    /// In axis units: log10 of the values on a logarithmic axis.
    y: (f64, f64),
    log_y: bool,
}

impl Frame {
    fn x_at(&self, x: f64) -> f64 {
        LEFT + (x - self.x.0) / (self.x.1 - self.x.0) * PLOT_WIDTH
    }

    /// The axis unit of a value: itself, or its log10 on a logarithmic axis (`None` for a
    /// value that a logarithmic axis cannot show).
    fn unit(&self, y: f64) -> Option<f64> {
        if self.log_y { (y > 0.0).then(|| y.log10()) } else { Some(y) }
    }

    fn y_at(&self, unit: f64) -> f64 {
        self.bottom - (unit - self.y.0) / (self.y.1 - self.y.0) * (self.bottom - self.top)
    }
}

impl Chart {
    /// The labels and colours of the legend: each distinct series label once.
    fn legend_entries(&self) -> Vec<(&str, &'static str)> {
        let mut entries: Vec<(&str, &'static str)> = Vec::new();
        for series in self.panels.iter().flat_map(|panel| &panel.series) {
            if !entries.iter().any(|(label, _)| *label == series.label) {
                entries.push((&series.label, series.colour));
            }
        }
        entries
    }

    fn has(&self, what: impl Fn(&Series) -> bool) -> bool {
        self.panels.iter().flat_map(|panel| &panel.series).any(what)
    }

    /// The SVG document.
    pub fn render(&self) -> String {
        #[allow(clippy::cast_precision_loss)]
        let count = self.panels.len().max(1) as f64;
        let panel = if count > 1.0 { PANEL } else { ONE_PANEL };
        let plots = panel * count + GAP * (count - 1.0);
        #[allow(clippy::cast_precision_loss)]
        let legend = TOP + LEGEND_ROW * (self.legend_entries().len() + 2) as f64;
        let height = (TOP + plots + BOTTOM).max(legend);
        let x = range(
            self.x_range
                .map_or_else(Vec::new, |(low, high)| vec![low, high])
                .into_iter()
                .chain(self.panels.iter().flat_map(|p| &p.series).flat_map(|s| s.all_points().map(|p| p.0))),
            0.0,
        );
        let x_ticks = ticks_to_end(x.0, x.1, 1.0);
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
        let mut top = TOP;
        for (index, panel_data) in self.panels.iter().enumerate() {
            let mut frame = Frame { top, bottom: top + panel, x, y: (0.0, 1.0), log_y: self.log_y };
            let units: Vec<f64> = panel_data
                .series
                .iter()
                .flat_map(|s| s.all_points().filter_map(|p| frame.unit(p.1)))
                .filter(|unit| unit.is_finite())
                .collect();
            frame.y = range(units.into_iter(), 0.05);
            let last = index + 1 == self.panels.len();
            Chart::panel(&mut svg, &frame, panel_data, &x_ticks, last, count > 1.0);
            top += panel + GAP;
        }
        if self.panels.is_empty() {
            let frame = Frame { top, bottom: top + panel, x, y: (0.0, 1.0), log_y: false };
            Chart::panel(&mut svg, &frame, &Panel { metric: String::new(), series: Vec::new() }, &x_ticks, true, false);
        }
        let _ = writeln!(
            svg,
            r#"<text class="axis-title" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + PLOT_WIDTH / 2.0,
            height - 15.0,
            escape(&self.x_title)
        );
        self.legend(&mut svg);
        svg.push_str("</svg>\n");
        svg
    }

    /// One panel: grid, axes, ticks, labels (step labels under the last panel only), its
    /// title (above it when there are several, else along the y axis), and its curves.
    fn panel(svg: &mut String, frame: &Frame, panel: &Panel, x_ticks: &[f64], last: bool, several: bool) {
        let y_ticks = if frame.log_y { log_ticks(frame.y.0, frame.y.1) } else { ticks(frame.y.0, frame.y.1, 0.0) };
        let (top, bottom, right) = (frame.top, frame.bottom, PLOT_RIGHT);
        let _ = writeln!(svg, r#"<g class="panel">"#);
        let _ = writeln!(svg, r##"<g class="grid" stroke="#e6e6e6" stroke-width="1">"##);
        for &x in x_ticks {
            let px = frame.x_at(x);
            let _ = writeln!(svg, r#"<line x1="{px:.1}" y1="{top:.1}" x2="{px:.1}" y2="{bottom:.1}"/>"#);
        }
        for &(unit, _) in &y_ticks {
            let py = frame.y_at(unit);
            let _ = writeln!(svg, r#"<line x1="{LEFT}" y1="{py:.1}" x2="{right:.1}" y2="{py:.1}"/>"#);
        }
        let _ = writeln!(svg, "</g>");
        let _ = writeln!(svg, r##"<g class="axes" stroke="#333333" stroke-width="1">"##);
        let _ = writeln!(svg, r#"<line x1="{LEFT}" y1="{bottom:.1}" x2="{right:.1}" y2="{bottom:.1}"/>"#);
        let _ = writeln!(svg, r#"<line x1="{LEFT}" y1="{top:.1}" x2="{LEFT}" y2="{bottom:.1}"/>"#);
        for &x in x_ticks {
            let px = frame.x_at(x);
            let _ = writeln!(svg, r#"<line x1="{px:.1}" y1="{bottom:.1}" x2="{px:.1}" y2="{:.1}"/>"#, bottom + 5.0);
        }
        for &(unit, _) in &y_ticks {
            let py = frame.y_at(unit);
            let _ = writeln!(svg, r#"<line x1="{:.1}" y1="{py:.1}" x2="{LEFT}" y2="{py:.1}"/>"#, LEFT - 5.0);
        }
        let _ = writeln!(svg, "</g>");
        let _ = writeln!(svg, r##"<g class="tick-labels" fill="#333333">"##);
        if last {
            for &x in x_ticks {
                let (px, py, label) = (frame.x_at(x), bottom + 19.0, tick_label(x));
                let _ = writeln!(svg, r#"<text x="{px:.1}" y="{py:.1}" text-anchor="middle">{label}</text>"#);
            }
        }
        for &(unit, value) in &y_ticks {
            let (px, py, label) = (LEFT - 8.0, frame.y_at(unit) + 4.0, tick_label(value));
            let _ = writeln!(svg, r#"<text x="{px:.1}" y="{py:.1}" text-anchor="end">{label}</text>"#);
        }
        let _ = writeln!(svg, "</g>");
        let scale = if frame.log_y { " (log)" } else { "" };
        if several {
            let _ = writeln!(
                svg,
                r#"<text class="panel-title" x="{LEFT}" y="{:.1}" font-weight="bold">{}{scale}</text>"#,
                top - 8.0,
                escape(&output::fit(&panel.metric, 80))
            );
        } else {
            let (tx, ty) = (20.0, f64::midpoint(top, bottom));
            let _ = writeln!(
                svg,
                r#"<text class="axis-title" x="{tx}" y="{ty:.1}" text-anchor="middle" transform="rotate(-90 {tx} {ty:.1})">{}{scale}</text>"#,
                escape(&output::fit(&panel.metric, 40))
            );
        }
        curves(svg, frame, panel);
        let _ = writeln!(svg, "</g>");
    }

    /// A coloured line and the label of each series, right of the plot; then what faded
    /// lines mean.
    fn legend(&self, svg: &mut String) {
        let _ = writeln!(svg, r#"<g class="legend">"#);
        let x = PLOT_RIGHT + 20.0;
        let mut y = TOP + 10.0;
        for (label, colour) in self.legend_entries() {
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
                escape(&crate::table::fit_middle(label, 24)),
                escape(label)
            );
            y += LEGEND_ROW;
        }
        if self.has(|series| series.raw.is_some()) {
            let _ = writeln!(
                svg,
                r##"<line x1="{x:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#333333" stroke-width="1" stroke-opacity="0.25"/>"##,
                x + 20.0
            );
            let _ = writeln!(svg, r#"<text x="{:.1}" y="{:.1}">faded: raw values</text>"#, x + 26.0, y + 4.0);
            y += LEGEND_ROW;
        }
        if self.has(|series| !series.branches.is_empty()) {
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

/// The panel's paths: branches and raw values faded behind, then one curve per series (even
/// one without points). A point a logarithmic axis cannot show breaks the line.
fn curves(svg: &mut String, frame: &Frame, panel: &Panel) {
    let path = |points: &[(f64, f64)]| {
        let mut d = String::with_capacity(points.len() * 14);
        let mut pen_down = false;
        for &(x, y) in points {
            match frame.unit(y) {
                Some(unit) => {
                    let _ =
                        write!(d, "{}{:.1},{:.1}", if pen_down { 'L' } else { 'M' }, frame.x_at(x), frame.y_at(unit));
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        d
    };
    if panel.series.iter().any(|series| !series.branches.is_empty()) {
        let _ = writeln!(
            svg,
            r#"<g class="branches" fill="none" stroke-width="1.5" stroke-opacity="0.35" stroke-dasharray="4 3">"#
        );
        for series in &panel.series {
            for points in &series.branches {
                let _ = writeln!(
                    svg,
                    r#"<path class="branch" stroke="{}" d="{}"><title>{} (archived)</title></path>"#,
                    series.colour,
                    path(points),
                    escape(&series.label)
                );
            }
        }
        let _ = writeln!(svg, "</g>");
    }
    if panel.series.iter().any(|series| series.raw.is_some()) {
        let _ = writeln!(svg, r#"<g class="raw" fill="none" stroke-width="1" stroke-opacity="0.25">"#);
        for series in &panel.series {
            if let Some(raw) = &series.raw {
                let _ = writeln!(
                    svg,
                    r#"<path class="raw" stroke="{}" d="{}"><title>{} (raw)</title></path>"#,
                    series.colour,
                    path(raw),
                    escape(&series.label)
                );
            }
        }
        let _ = writeln!(svg, "</g>");
    }
    let _ = writeln!(svg, r#"<g class="curves" fill="none" stroke-width="1.5" stroke-linejoin="round">"#);
    for series in &panel.series {
        let _ = writeln!(
            svg,
            r#"<path class="curve" stroke="{}" d="{}"><title>{}</title></path>"#,
            series.colour,
            path(&series.points),
            escape(&series.label)
        );
    }
    let _ = writeln!(svg, "</g>");
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
fn ticks(low: f64, high: f64, least: f64) -> Vec<(f64, f64)> {
    nice_ticks(low, high, least).0.into_iter().map(|tick| (tick, tick)).collect()
}

/// The nice ticks and their spacing.
fn nice_ticks(low: f64, high: f64, least: f64) -> (Vec<f64>, f64) {
    let raw = ((high - low) / 6.0).max(least);
    if !(raw.is_finite() && raw > 0.0) {
        return (vec![low], 0.0);
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
    (ticks, step)
}

/// The nice ticks of the step axis, ending with a tick at its right end: the last step
/// shown. A nice tick too close to the end for both labels gives way to it.
fn ticks_to_end(low: f64, high: f64, least: f64) -> Vec<f64> {
    let (mut ticks, step) = nice_ticks(low, high, least);
    if let Some(&last) = ticks.last()
        && high - last < step * 0.45
        && high > last
    {
        ticks.pop();
    }
    if ticks.last().is_none_or(|&last| last < high) {
        ticks.push(high);
    }
    ticks
}

/// Ticks of a logarithmic axis over `low..=high` (in log10 units), as (unit, value): the
/// powers of ten, with 2 and 5 times them when the range spans fewer than three decades.
fn log_ticks(low: f64, high: f64) -> Vec<(f64, f64)> {
    let (first, last) = (low.floor(), high.ceil());
    let decades = last - first;
    let multiples: &[f64] = if decades < 3.0 { &[1.0, 2.0, 5.0] } else { &[1.0] };
    let every = (decades / 8.0).ceil().max(1.0);
    let mut ticks = Vec::new();
    let mut power = first;
    while power <= last && ticks.len() < 40 {
        for &multiple in multiples {
            let value = multiple * 10f64.powf(power);
            let unit = value.log10();
            if (low..=high).contains(&unit) {
                ticks.push((unit, value));
            }
        }
        power += every;
    }
    if ticks.is_empty() {
        // Less than one tick's worth of range: label its ends.
        ticks = vec![(low, 10f64.powf(low)), (high, 10f64.powf(high))];
    }
    ticks
}

/// One label style for both axes: `750`, `0.25`, `8.12e-4`, and `20k`, `1.5M`, `3G` from
/// ten thousand up.
fn tick_label(value: f64) -> String {
    let magnitude = value.abs();
    let (scaled, suffix) = if magnitude >= 1e9 {
        (value / 1e9, "G")
    } else if magnitude >= 1e6 {
        (value / 1e6, "M")
    } else if magnitude >= 1e4 {
        (value / 1e3, "k")
    } else {
        (value, "")
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
        let values = |ticks: Vec<(f64, f64)>| ticks.into_iter().map(|(_, value)| value).collect::<Vec<_>>();
        assert_eq!(values(ticks(0.0, 10.0, 0.0)), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(values(ticks(0.0, 3.0, 1.0)), [0.0, 1.0, 2.0, 3.0]);
        assert_eq!(tick_label(1_500_000.0), "1.5M");
        assert_eq!(tick_label(200_000.0), "200k");
        assert_eq!(tick_label(0.25), "0.25");
        let small = values(ticks(0.013, 0.061, 0.0));
        assert!(small.iter().all(|&t| (0.013..=0.061).contains(&t)), "{small:?}");
        assert_eq!(output::human(small[0]), "0.02");
    }

    #[test]
    fn the_step_axis_has_a_tick_at_its_right_end() {
        assert_eq!(ticks_to_end(0.0, 499.0, 1.0), [0.0, 100.0, 200.0, 300.0, 400.0, 499.0]);
        // 1000 is too close to 1010 for both labels.
        assert_eq!(ticks_to_end(0.0, 1010.0, 1.0), [0.0, 200.0, 400.0, 600.0, 800.0, 1010.0]);
        assert_eq!(ticks_to_end(0.0, 1000.0, 1.0).last(), Some(&1000.0));
    }

    #[test]
    fn a_log_axis_has_ticks_at_powers_of_ten() {
        let values: Vec<f64> = log_ticks(-3.2, 1.1).into_iter().map(|(_, value)| value).collect();
        assert_eq!(values.len(), 5, "{values:?}");
        assert!((values[0] - 1e-3).abs() < 1e-12 && (values[4] - 10.0).abs() < 1e-9, "{values:?}");
        let near: Vec<f64> = log_ticks(-0.5, 0.5).into_iter().map(|(_, value)| value).collect();
        assert!(near.contains(&1.0) && near.iter().any(|&v| (v - 2.0).abs() < 1e-9), "{near:?}");
    }

    #[test]
    fn a_metric_keeps_its_colour_whatever_else_is_plotted() {
        assert_eq!(metric_colour("loss"), metric_colour("loss"));
        let standard: std::collections::HashSet<_> =
            ["loss", "acc", "lr", "grad_norm"].into_iter().map(metric_colour).collect();
        assert_eq!(standard.len(), 4);
    }

    #[test]
    fn special_characters_are_escaped() {
        assert_eq!(escape(r#"a<b & "c">'"#), "a&lt;b &amp; &quot;c&quot;&gt;&apos;");
    }
}
