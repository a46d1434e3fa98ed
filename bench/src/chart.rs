//! The reports as an SVG chart, written beside the table so that a reader sees the
//! difference between the targets instead of reading it out of columns: latency (p50, p90,
//! p99 and the slowest delivery, on a log scale), the server's memory per socket, and its CPU
//! time per million deliveries, one colour per target.
//!
//! The SVG is written by hand: a few rectangles, lines and labels do not need a charting
//! library. It is at most [`WIDTH`] pixels wide with text of at least 13 px, so that it
//! reads at its natural size in the book's column.

use std::fmt::Write;

use crate::Report;

/// The chart's width in pixels.
pub const WIDTH: f64 = 720.0;

/// Colour-blind-safe colours (Okabe and Ito's palette), one per target in the order given.
/// The floor, the reference, is always grey.
const COLOURS: [&str; 6] = [
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#d55e00", "#56b4e9",
];
const FLOOR_COLOUR: &str = "#8c8c8c";

const FONT: &str = "font-family=\"sans-serif\" font-size=\"14\" fill=\"#222\"";
const SMALL_FONT: &str = "font-family=\"sans-serif\" font-size=\"13\" fill=\"#444\"";

/// Left and right edges of every panel's plot area: room on the left for axis labels and
/// target names.
const PLOT_LEFT: f64 = 130.0;
const PLOT_RIGHT: f64 = WIDTH - 70.0;

/// Height of the latency panel's plot area.
const LATENCY_HEIGHT: f64 = 260.0;

/// Height of one target's bar in the memory and CPU panels.
const ROW_HEIGHT: f64 = 26.0;

/// A figure read from a report.
type Figure = fn(&Report) -> f64;

/// The latency figures, in the order drawn.
const PERCENTILES: [(&str, Figure); 4] = [
    ("p50", |report| report.latency_ms_p50),
    ("p90", |report| report.latency_ms_p90),
    ("p99", |report| report.latency_ms_p99),
    ("max", |report| report.latency_ms_max),
];

/// The chart of `reports`, with `title` on top (a line describing the workload).
pub fn svg(title: &str, reports: &[Report]) -> String {
    let colours = colours(reports);
    let mut body = String::new();
    let mut y = 30.0;
    text(&mut body, 16.0, y, "start", "font-weight=\"bold\"", title);
    y += 14.0;
    y = legend(&mut body, y, reports, &colours);
    y = latency_panel(&mut body, y + 20.0, reports, &colours);
    y = bar_panel(
        &mut body,
        y + 20.0,
        "Server memory per socket (KiB, growth while the sockets connected)",
        "memory",
        reports,
        &colours,
        |report| report.rss_kib_per_socket,
    );
    y = bar_panel(
        &mut body,
        y + 20.0,
        "Server CPU time per million deliveries (s)",
        "cpu",
        reports,
        &colours,
        |report| report.cpu_secs_per_million,
    );
    let height = (y + 16.0).ceil();
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\">\n\
         <rect x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{height}\" fill=\"#fff\"/>\n\
         {body}</svg>\n"
    )
}

/// One colour per report, grey for the floor.
fn colours(reports: &[Report]) -> Vec<&'static str> {
    let mut others = COLOURS.iter().cycle();
    reports
        .iter()
        .map(|report| match report.target.as_str() {
            "floor" => FLOOR_COLOUR,
            _ => others.next().copied().unwrap_or(FLOOR_COLOUR),
        })
        .collect()
}

/// A swatch and the name of each target, in rows as wide as the chart. Returns the y below.
fn legend(out: &mut String, top: f64, reports: &[Report], colours: &[&str]) -> f64 {
    let (mut x, mut y) = (16.0, top + 14.0);
    for (report, colour) in reports.iter().zip(colours) {
        // About 8 px per character at 14 px, plus the swatch and a gap.
        let width = 22.0 + 8.0 * report.target.chars().count() as f64 + 24.0;
        if x + width > WIDTH && x > 16.0 {
            (x, y) = (16.0, y + 22.0);
        }
        let _ = writeln!(
            out,
            "<rect x=\"{x}\" y=\"{}\" width=\"14\" height=\"14\" fill=\"{colour}\"/>",
            y - 12.0
        );
        text(out, x + 20.0, y, "start", "", &report.target);
        x += width;
    }
    y + 8.0
}

/// Grouped bars, one group per percentile and one bar per target, on a log scale (the
/// slowest delivery is often a hundred times the median). Returns the y below.
fn latency_panel(out: &mut String, top: f64, reports: &[Report], colours: &[&str]) -> f64 {
    text(
        out,
        16.0,
        top + 14.0,
        "start",
        "font-weight=\"bold\"",
        "Latency from send to receipt (ms, log scale; lower is better)",
    );
    let plot_bottom = top + 34.0 + LATENCY_HEIGHT;
    let scale = LogScale::covering(
        reports
            .iter()
            .flat_map(|report| PERCENTILES.iter().map(move |(_, figure)| figure(report))),
    );
    let y_of = |value: f64| plot_bottom - scale.fraction(value) * LATENCY_HEIGHT;
    // The grid: one line and label per power of ten.
    for tick in scale.ticks() {
        let y = y_of(tick);
        let _ = writeln!(
            out,
            "<line x1=\"{PLOT_LEFT}\" y1=\"{y:.1}\" x2=\"{PLOT_RIGHT}\" y2=\"{y:.1}\" \
             stroke=\"#ddd\"/>"
        );
        // Powers of ten print as they are: 0.1, 1, 10, 100.
        text(out, PLOT_LEFT - 8.0, y + 5.0, "end", "", &tick.to_string());
    }
    let group_width = (PLOT_RIGHT - PLOT_LEFT) / PERCENTILES.len() as f64;
    let bar_width = (group_width * 0.8 / reports.len().max(1) as f64).min(44.0);
    let bars_width = bar_width * reports.len() as f64;
    for (index, (name, _)) in PERCENTILES.iter().enumerate() {
        let centre = PLOT_LEFT + group_width * (index as f64 + 0.5);
        text(out, centre, plot_bottom + 20.0, "middle", "", name);
    }
    for (position, (report, colour)) in reports.iter().zip(colours).enumerate() {
        let _ = writeln!(
            out,
            "<g class=\"latency\" data-target=\"{}\" fill=\"{colour}\">",
            escape(&report.target)
        );
        for (index, (name, figure)) in PERCENTILES.iter().enumerate() {
            let value = figure(report);
            let x = PLOT_LEFT
                + group_width * index as f64
                + (group_width - bars_width) / 2.0
                + bar_width * position as f64;
            let y = y_of(value);
            let _ = writeln!(
                out,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\">\
                 <title>{} {name}: {} ms</title></rect>",
                bar_width - 2.0,
                plot_bottom - y,
                escape(&report.target),
                format_number(value),
            );
            // A value over each bar, when the bars are wide enough to hold one.
            if bar_width >= 30.0 {
                let _ = writeln!(
                    out,
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" {SMALL_FONT}>{}</text>",
                    x + (bar_width - 2.0) / 2.0,
                    y - 4.0,
                    format_number(value)
                );
            }
        }
        out.push_str("</g>\n");
    }
    axis_line(out, plot_bottom);
    plot_bottom + 28.0
}

/// One horizontal bar per target, with its value at the end (or "n/a"), on a linear scale
/// from 0. Returns the y below.
fn bar_panel(
    out: &mut String,
    top: f64,
    title: &str,
    class: &str,
    reports: &[Report],
    colours: &[&str],
    figure: impl Fn(&Report) -> Option<f64>,
) -> f64 {
    text(
        out,
        16.0,
        top + 14.0,
        "start",
        "font-weight=\"bold\"",
        title,
    );
    let largest = reports.iter().filter_map(&figure).fold(0.0_f64, f64::max);
    let width_of = |value: f64| {
        if largest > 0.0 {
            value.max(0.0) / largest * (PLOT_RIGHT - PLOT_LEFT)
        } else {
            0.0
        }
    };
    let mut y = top + 28.0;
    for (report, colour) in reports.iter().zip(colours) {
        let target = escape(&report.target);
        text(out, PLOT_LEFT - 8.0, y + 18.0, "end", "", &report.target);
        let _ = writeln!(
            out,
            "<g class=\"{class}\" data-target=\"{target}\" fill=\"{colour}\">"
        );
        let label = match figure(report) {
            Some(value) => {
                let width = width_of(value);
                let _ = writeln!(
                    out,
                    "<rect x=\"{PLOT_LEFT}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"{:.1}\">\
                     <title>{target}: {}</title></rect>",
                    y + 3.0,
                    ROW_HEIGHT - 6.0,
                    format_number(value)
                );
                (PLOT_LEFT + width + 6.0, format_number(value))
            }
            None => (PLOT_LEFT + 6.0, "n/a".to_owned()),
        };
        out.push_str("</g>\n");
        text(out, label.0, y + 18.0, "start", "", &label.1);
        y += ROW_HEIGHT;
    }
    axis_line(out, y);
    y
}

/// The baseline under a panel's bars.
fn axis_line(out: &mut String, y: f64) {
    let _ = writeln!(
        out,
        "<line x1=\"{PLOT_LEFT}\" y1=\"{y:.1}\" x2=\"{PLOT_RIGHT}\" y2=\"{y:.1}\" stroke=\"#444\"/>"
    );
}

/// A label at (`x`, `y`), the baseline of the text.
fn text(out: &mut String, x: f64, y: f64, anchor: &str, extra: &str, content: &str) {
    let _ = writeln!(
        out,
        "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"{anchor}\" {FONT} {extra}>{}</text>",
        escape(content)
    );
}

/// A log scale over whole powers of ten, from the one at or below the smallest positive value
/// to the one at or above the largest.
#[derive(Debug, Clone, Copy, PartialEq)]
struct LogScale {
    /// Exponents of the lowest and highest power of ten.
    low: i32,
    high: i32,
}

impl LogScale {
    fn covering(values: impl Iterator<Item = f64>) -> Self {
        let (smallest, largest) = values
            .filter(|value| value.is_finite() && *value > 0.0)
            .fold((f64::INFINITY, 0.0_f64), |(small, large), value| {
                (small.min(value), large.max(value))
            });
        if largest <= 0.0 {
            return Self { low: -1, high: 0 };
        }
        let low = smallest.log10().floor() as i32;
        let high = (largest.log10().ceil() as i32).max(low + 1);
        Self { low, high }
    }

    /// Where `value` sits between the bottom (0) and the top (1); a value at or below the
    /// lowest power of ten (zero included) sits at the bottom.
    fn fraction(self, value: f64) -> f64 {
        if value.is_nan() || value <= 0.0 {
            return 0.0;
        }
        let span = f64::from(self.high - self.low);
        ((value.log10() - f64::from(self.low)) / span).clamp(0.0, 1.0)
    }

    fn ticks(self) -> impl Iterator<Item = f64> {
        (self.low..=self.high).map(|exponent| 10f64.powi(exponent))
    }
}

/// A figure as the chart prints it: two significant digits under 10, whole numbers above.
fn format_number(value: f64) -> String {
    if value >= 10.0 || value == 0.0 {
        format!("{value:.0}")
    } else if value >= 1.0 {
        format!("{value:.1}")
    } else {
        // 0.25, 0.01: as many decimals as it takes to show two significant digits.
        let decimals = (-value.log10().floor()) as usize + 1;
        let shown = format!("{value:.decimals$}");
        shown.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// `text` with the characters XML gives a meaning to replaced by entities.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(target: &str, p50: f64, max: f64, kib: Option<f64>) -> Report {
        Report {
            target: target.to_owned(),
            latency_ms_p50: p50,
            latency_ms_p90: p50 * 2.0,
            latency_ms_p99: p50 * 4.0,
            latency_ms_max: max,
            rss_kib_per_socket: kib,
            cpu_secs_per_million: Some(3.5),
            ..Report::default()
        }
    }

    fn two_reports() -> Vec<Report> {
        vec![
            report("floor", 0.8, 40.0, Some(12.0)),
            report("step05 <&>", 1.5, 250.0, None),
        ]
    }

    /// Every tag opened is closed, in order; self-closing tags count as both.
    fn assert_well_formed(svg: &str) {
        let mut open = Vec::new();
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            let end = rest[start..].find('>').expect("every tag ends") + start;
            let tag = &rest[start + 1..end];
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(open.pop(), Some(name.to_owned()), "closing {name}");
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().expect("a tag name");
                open.push(name.to_owned());
            }
            rest = &rest[end + 1..];
            // Text between tags holds no raw markup characters.
            let text = &rest[..rest.find('<').unwrap_or(rest.len())];
            assert!(!text.contains('>') && !text.contains('"'), "{text:?}");
        }
        assert!(open.is_empty(), "left open: {open:?}");
    }

    /// The value of every `name="number"` attribute in `svg`.
    fn numbers(svg: &str, name: &str) -> Vec<f64> {
        let needle = format!(" {name}=\"");
        svg.match_indices(&needle)
            .map(|(at, _)| {
                let value = &svg[at + needle.len()..];
                value[..value.find('"').expect("closing quote")]
                    .parse()
                    .expect("a number")
            })
            .collect()
    }

    #[test]
    fn the_chart_is_well_formed_and_has_one_series_per_target_in_each_panel() {
        let svg = svg("2 targets & a <title>", &two_reports());
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert_well_formed(&svg);
        for class in ["latency", "memory", "cpu"] {
            for target in ["floor", "step05 &lt;&amp;&gt;"] {
                let series = format!("<g class=\"{class}\" data-target=\"{target}\"");
                assert_eq!(svg.matches(&series).count(), 1, "{series}");
            }
        }
        // Four latency bars per target, one memory bar for the one that has a figure, one CPU
        // bar each, and the background.
        assert_eq!(svg.matches("<rect").count(), 2 + 2 * 4 + 1 + 2 + 1);
        assert!(svg.contains(">n/a</text>"));
    }

    #[test]
    fn everything_drawn_is_inside_the_view_box_and_the_text_is_readable() {
        let svg = svg("a run", &two_reports());
        let height = numbers(&svg, "height")[0];
        // The book's column: no wider than 750 px.
        assert!(numbers(&svg, "width")[0] <= 750.0);
        for x in numbers(&svg, "x").into_iter().chain(numbers(&svg, "x2")) {
            assert!((0.0..=WIDTH).contains(&x), "x = {x}");
        }
        for y in numbers(&svg, "y").into_iter().chain(numbers(&svg, "y2")) {
            assert!((0.0..=height).contains(&y), "y = {y}");
        }
        for width in numbers(&svg, "width") {
            assert!((0.0..=WIDTH).contains(&width), "width = {width}");
        }
        for size in numbers(&svg, "font-size") {
            assert!(size >= 13.0, "font-size {size}");
        }
    }

    #[test]
    fn bars_grow_with_their_values() {
        let svg = svg("a run", &two_reports());
        // The memory panel: the largest value spans the whole plot.
        assert!(svg.contains(&format!("width=\"{:.1}\"", PLOT_RIGHT - PLOT_LEFT)));
        // The latency panel: step05's max (250 ms) is taller than the floor's (40 ms).
        let scale = LogScale::covering([0.8, 250.0].into_iter());
        assert_eq!(scale, LogScale { low: -1, high: 3 });
        assert!(scale.fraction(250.0) > scale.fraction(40.0));
        assert_eq!(scale.fraction(0.0), 0.0);
        assert_eq!(scale.fraction(1e6), 1.0);
    }

    #[test]
    fn a_run_without_deliveries_still_draws() {
        let empty = report("floor", 0.0, 0.0, None);
        let svg = svg("nothing delivered", &[empty]);
        assert_well_formed(&svg);
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }

    #[test]
    fn numbers_are_printed_short() {
        assert_eq!(format_number(0.0), "0");
        assert_eq!(format_number(0.25), "0.25");
        assert_eq!(format_number(0.1), "0.1");
        assert_eq!(format_number(0.01), "0.01");
        assert_eq!(format_number(1.0), "1.0");
        assert_eq!(format_number(2.345), "2.3");
        assert_eq!(format_number(12.6), "13");
        assert_eq!(format_number(1000.0), "1000");
    }
}
