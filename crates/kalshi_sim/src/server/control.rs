//! Control endpoints under `/_sim` (no auth; the simulator listens on loopback): inject
//! faults, read their counters, inspect books, move a manual clock, close a market early.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::rest::ApiError;
use super::{Clock, Shared};
use crate::engine::MarketResult;
use crate::faults::Fault;
use crate::wire;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_sim/faults", get(stats).post(inject))
        .route("/_sim/state", get(state))
        .route("/_sim/book/{ticker}", get(book))
        .route("/_sim/advance", post(advance))
        .route("/_sim/close/{ticker}", post(close))
        .with_state(shared)
}

fn bad(e: impl std::fmt::Display) -> Response {
    ApiError::new(
        400,
        "invalid_parameters",
        "invalid request body",
        e.to_string(),
    )
    .into_response()
}

async fn inject(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Fault>(&body) {
        Ok(f) => {
            s.faults.inject(f);
            Json(json!({ "ok": true, "stats": s.faults.stats() })).into_response()
        }
        Err(e) => bad(e),
    }
}

async fn stats(State(s): State<Arc<Shared>>) -> Response {
    Json(s.faults.stats()).into_response()
}

async fn state(State(s): State<Arc<Shared>>) -> Response {
    let (v, batch) = s.with(|core| {
        let e = &core.engine;
        json!({
            "now_ms": e.now_ms(),
            "fees_collected": e.fees_collected(),
            "markets": e.markets().map(|m| json!({
                "ticker": m.ticker, "status": m.status.as_str(),
                "open_ms": m.open_ms, "close_ms": m.close_ms,
                "result": m.result.map(|r| r.as_str()),
            })).collect::<Vec<_>>(),
        })
    });
    let mut v = v;
    v["batches"] = json!(batch);
    Json(v).into_response()
}

async fn book(State(s): State<Arc<Shared>>, Path(ticker): Path<String>) -> Response {
    let r = s
        .with(|core| {
            let (yes, no) = core.engine.book_levels(&ticker)?;
            let fair = core.engine.fair_value(&ticker);
            Some(json!({
                "ticker": ticker,
                "yes_dollars": wire::levels(&yes),
                "no_dollars": wire::levels(&no),
                "fair_value": fair,
            }))
        })
        .0;
    match r {
        Some(v) => Json(v).into_response(),
        None => ApiError::new(404, "market_not_found", "market not found", ticker).into_response(),
    }
}

#[derive(Deserialize)]
struct Advance {
    ms: Option<i64>,
    to_ms: Option<i64>,
}

async fn advance(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let a: Advance = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => return bad(e),
    };
    let Clock::Manual(t) = &s.clock else {
        return bad("the clock is not manual");
    };
    let target = match (a.ms, a.to_ms) {
        (Some(ms), None) if ms >= 0 => t.load(std::sync::atomic::Ordering::SeqCst) + ms,
        (None, Some(to)) => to,
        _ => return bad("give exactly one of ms (>= 0) or to_ms"),
    };
    t.fetch_max(target, std::sync::atomic::Ordering::SeqCst);
    let now = s.with(|core| core.engine.now_ms()).0;
    Json(json!({ "now_ms": now })).into_response()
}

#[derive(Deserialize)]
struct Close {
    result: Option<MarketResult>,
}

async fn close(State(s): State<Arc<Shared>>, Path(ticker): Path<String>, body: Bytes) -> Response {
    let c: Close = if body.is_empty() {
        Close { result: None }
    } else {
        match serde_json::from_slice(&body) {
            Ok(c) => c,
            Err(e) => return bad(e),
        }
    };
    match s.with(|core| core.engine.force_close(&ticker, c.result)).0 {
        Ok(()) => Json(json!({ "ok": true })).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
