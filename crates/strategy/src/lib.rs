//! The synchronous strategy runtime, the replay execution venue and the evaluation report.
//!
//! Free of libtorch and of tokio: snapshot lines in, orders out, time passed as an argument.
//! The model sits behind [`features::EdgeModel`] (implemented with libtorch in `edge_model`),
//! the exchange behind [`venue::Venue`] and time behind [`venue::Clock`], so replay, dry-run
//! and live drive the same [`runtime::Runtime`].
//!
//! - [`runtime`]: the [`runtime::Strategy`] trait, per-market state, the runtime loop;
//! - [`rnn_edge`]: the built-in `rnn_edge_v1` strategy and its `signals` checks;
//! - [`risk`]: the risk gate (every `risk` limit, before every order);
//! - [`portfolio`]: positions, open orders, cash, marks, exposure (exact money);
//! - [`venue`]: the venue and clock traits;
//! - [`replay`]: the replay venue (the execution model) and the replay driver;
//! - [`report`]: the evaluation report (JSON) and [`html`] its self-contained page.
//!
//! How `evaluate_strategy` uses it, per fold (names as in this crate):
//!
//! ```text
//! let file = pipeline::schema::Strategy::load(path)?;             // strict, validated
//! let make = || RnnEdge::from_strategy(&file, model_for_fold(), FeeMultiplier::ONE).unwrap();
//! let fold = replay_fold("fold 1", in_sample, make, &file.risk, &file.execution,
//!                        ReplayConfig { latency, ..Default::default() },
//!                        &labels, &close_times, || reader_over_the_fold's_test_markets())?;
//! let report = build_report(&file.name, &folds, &ReportOptions::default());
//! let page = report.write(out_json)?;                             // JSON + HTML beside it
//! ```
//!
//! Live trading drives the same [`runtime::Runtime`] with its own [`venue::Venue`] and
//! [`venue::Clock`]: `runtime.on_line(&line, &clock, &mut venue)` per recorder line.

/// The feature state, normaliser and `EdgeModel` trait, and the metrics, from `pipeline`
/// (re-exported so a strategy needs only this crate).
pub use pipeline::{features, metrics};

pub mod html;
pub mod ols;
pub mod portfolio;
pub mod replay;
pub mod report;
pub mod risk;
pub mod rnn_edge;
pub mod runtime;
pub mod types;
pub mod venue;

pub use replay::{
    replay, replay_fold, Latency, ReplayConfig, ReplayError, ReplayResult, ReplayVenue,
};
pub use report::{build_report, FoldInput, Report, ReportOptions, Verdict};
pub use rnn_edge::RnnEdge;
pub use runtime::{Journal, MarketContext, Runtime, Strategy};
pub use types::{Decision, Fill, Intent, Order, Settlement, Side};
