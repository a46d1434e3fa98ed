//! The reports as a Markdown table, and each target against the floor.

use crate::{Report, RestartReport};

/// The table's header and separator lines.
pub fn header() -> String {
    [
        "| Target | Sockets | Connects/s | CPU ms per connect | Delivered live | After catch-up | Dup. | Out of order | p50 ms | p99 ms | max ms | Disconnects | KiB/socket | CPU s per M deliveries | loadgen CPU s per M | Cold start ms | Idle MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    .join("\n")
}

/// One row.
pub fn row(report: &Report) -> String {
    format!(
        "| {} | {} | {:.0} | {} | {:.3} % | {:.3} % | {} | {} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} |",
        report.target,
        report.sockets,
        report.connects_per_sec,
        optional(report.connect_cpu_ms),
        report.delivered_live_pct,
        report.delivered_total_pct,
        report.duplicates,
        report.out_of_order,
        report.latency_ms_p50,
        report.latency_ms_p99,
        report.latency_ms_max,
        report.disconnects,
        optional(report.rss_kib_per_socket),
        optional(report.cpu_secs_per_million),
        optional(report.loadgen_cpu_secs_per_million),
        optional(report.cold_start_ms),
        optional(report.idle_rss_mib),
    )
}

/// `report` against `floor`, as the targets put it: p99 and CPU as multiples of the
/// floor's (targets: ≤ 2× and ≤ 1.5×).
pub fn versus_floor(report: &Report, floor: &Report) -> String {
    let ratio = |ours: Option<f64>, theirs: Option<f64>| match (ours, theirs) {
        (Some(ours), Some(theirs)) if theirs > 0.0 => format!("{:.2}×", ours / theirs),
        _ => "n/a".to_owned(),
    };
    format!(
        "{} vs floor: p99 {} (target ≤ 2×), CPU per delivery {} (target ≤ 1.5×)",
        report.target,
        ratio(Some(report.latency_ms_p99), Some(floor.latency_ms_p99)),
        ratio(report.cpu_secs_per_million, floor.cpu_secs_per_million),
    )
}

/// `report` against `other` (step 5 against its Node twin): each figure as a multiple of the
/// other's, so below 1× means `report` needs less.
pub fn versus(report: &Report, other: &Report) -> String {
    let ratio = |ours: Option<f64>, theirs: Option<f64>| match (ours, theirs) {
        (Some(ours), Some(theirs)) if theirs > 0.0 => format!("{:.2}×", ours / theirs),
        _ => "n/a".to_owned(),
    };
    format!(
        "{} vs {}: p99 {}, CPU per delivery {}, memory per socket {}, cold start {}, idle memory {}",
        report.target,
        other.target,
        ratio(Some(report.latency_ms_p99), Some(other.latency_ms_p99)),
        ratio(report.cpu_secs_per_million, other.cpu_secs_per_million),
        ratio(report.rss_kib_per_socket, other.rss_kib_per_socket),
        ratio(report.cold_start_ms, other.cold_start_ms),
        ratio(report.idle_rss_mib, other.idle_rss_mib),
    )
}

/// The restart table's header and separator lines. Times are seconds from the stop.
pub fn restart_header() -> String {
    [
        "| Target | Signal | Sockets | Connects/s | Ended s | Listening s | Back 99 % s | Back 100 % s | Caught up 99 % s | Caught up 100 % s | Reconnects/s | Acked (before stop) | Acked, not delivered at the end | Dup. | Out of order | Resent | Failed attempts | Run s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    .join("\n")
}

/// One row of the restart table. The floor keeps no history: what it delivers is not its
/// promise, so its message columns say `n/a`, and caught up is back.
pub fn restart_row(report: &RestartReport) -> String {
    let promised = |count: usize| match report.replays {
        true => count.to_string(),
        false => "n/a".to_owned(),
    };
    let lost = match (report.replays, report.sockets_missing) {
        (true, 0) | (false, _) => promised(report.acked_not_delivered),
        (true, sockets) => format!("{} ({sockets} sockets)", report.acked_not_delivered),
    };
    format!(
        "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {} | {} | {} | {:.0} | {} ({}) | {} | {} | {} | {} | {} | {:.1} |",
        report.target,
        report.signal,
        report.sockets,
        report.connects_per_sec,
        report.stopped_ms / 1000.0,
        report.listening_ms / 1000.0,
        seconds(report.back_ms_p99),
        seconds(report.back_ms_all),
        seconds(report.caught_up_ms_p99),
        seconds(report.caught_up_ms_all),
        report.reconnects_per_sec,
        report.messages_acked,
        report.acked_before_stop,
        lost,
        promised(report.duplicates),
        promised(report.out_of_order),
        report.resends,
        report.failed_attempts,
        report.run_secs,
    )
}

/// `report` against the floor's restart with the same signal, as the targets put
/// it: every socket back and caught up within 3× the floor's time to have them all back, and
/// at least half the floor's connects per second.
pub fn restart_versus_floor(report: &RestartReport, floor: &RestartReport) -> String {
    let ratio = |ours: Option<f64>, theirs: Option<f64>| match (ours, theirs) {
        (Some(ours), Some(theirs)) if theirs > 0.0 => format!("{:.2}×", ours / theirs),
        _ => "n/a".to_owned(),
    };
    format!(
        "{} vs floor ({}): all caught up in {} the floor's time to have all back (target ≤ 3×); \
         connects/s {} the floor's, reconnects/s in the storm {} (target ≥ 0.5×)",
        report.target,
        report.signal,
        ratio(report.caught_up_ms_all, floor.back_ms_all),
        ratio(Some(report.connects_per_sec), Some(floor.connects_per_sec)),
        ratio(
            Some(report.reconnects_per_sec),
            Some(floor.reconnects_per_sec)
        ),
    )
}

/// Milliseconds as seconds, or `never` for a time that was not reached.
fn seconds(ms: Option<f64>) -> String {
    ms.map_or_else(|| "never".to_owned(), |ms| format!("{:.2}", ms / 1000.0))
}

fn optional(figure: Option<f64>) -> String {
    figure.map_or_else(|| "n/a".to_owned(), |figure| format!("{figure:.2}"))
}
