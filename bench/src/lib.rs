//! Load testing the chat: a Rust load generator, and a "floor" to measure it against.
//!
//! ```console
//! cargo run --release -p bench --bin loadgen -- --targets floor,step05
//! ```
//!
//! - [`floor`]: the chat's Socket.IO events on a bare socketioxide server (no auth, no
//!   storage): the best step 5 could do on this machine with this library.
//! - [`client`]: a small Socket.IO client over a WebSocket, cheap enough that one process can
//!   drive 10,000 sockets.
//! - [`workload`]: users, tabs and senders; connects, sends, counts and times every delivery.
//! - [`restart`]: the restart scenario, a reconnect storm: the server stopped and started
//!   again in the middle of the sending; every socket back, caught up, nothing lost.
//! - [`flood`]: a thousand connections at once (unfinished heads, catch-ups, room joins), and
//!   the server's memory before, at the peak and after: what it gives back (`flood` binary).
//! - [`procfs`]: a server process's memory and CPU time, from `/proc`.
//! - [`servers`]: the servers under test, each started as its own process.
//! - [`table`]: the report as a Markdown table.
//! - [`chart`]: the same reports as an SVG chart.

pub mod chart;
pub mod client;
pub mod flood;
pub mod floor;
pub mod procfs;
pub mod restart;
pub mod servers;
pub mod table;
pub mod workload;

pub use restart::{RestartPlan, RestartReport, run_restart};
pub use workload::{Report, Target, Workload, run};
