//! `im-loadgen`, the load generator: drives a running `im-server` over its public HTTP API and
//! WebSockets like real clients, and reports throughput, latency percentiles and anomalies.
//!
//! - [`api`]: the HTTP calls (register, login, friends, groups) over awc;
//! - [`setup`]: populations built through the API, concurrently with a bound;
//! - [`ws`]: one WebSocket with a reader task and a queued writer task;
//! - [`scenario`]: one module per scenario (`login`, `direct`, `group`, `idle`), the generator
//!   threads they share, and the step mode of `direct` and `group`;
//! - [`report`]: HDR latency histograms, percentiles, text and JSON output;
//! - [`progress`]: the once-a-second progress line on stderr;
//! - [`sys`]: `/proc` readings (RSS, CPU per thread, summed over several pids), the open-file
//!   limit and the ephemeral port range.

pub mod api;
pub mod progress;
pub mod report;
pub mod scenario;
pub mod setup;
pub mod sys;
pub mod ws;
