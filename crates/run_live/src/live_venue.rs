//! `--live`: the exchange as the runtime's venue, over V2 orders.
//!
//! [`LiveVenue::submit`] writes a `submit` entry with the order's `client_order_id`
//! (`rl-<session>-<order id>`) to the journal and `fsync`s it, then sends the create on the
//! tokio runtime through [`RestClient::create_order_idempotent`] (never a blind resend: an
//! unknown outcome is resolved by looking the `client_order_id` up). The runtime does not
//! wait: the outcome comes back through [`Venue::poll`] as fills (read from
//! `GET /portfolio/fills?order_id=`, the exchange's own prices and fees) and a `Done`.
//! While an order's outcome is unknown its market is blocked for new orders, and a lookup
//! repeats every [`LOOKUP_EVERY`] until the exchange answers.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Duration;

use market_data::rest::{CreateOutcome, PortfolioQuery, RestClient, RestError};
use market_data::wire::{self, CreateOrderRequest};
use pipeline::ids::ClientOrderId;
use pipeline::money::{trading_fee, Count, FeeMultiplier, Liquidity, Price};
use pipeline::schema::strategy::TimeInForce;
use pipeline::schema::Outcome;
use pipeline::snapshot::Line;
use pipeline::MarketTicker;
use serde_json::json;
use strategy::venue::{Venue, VenueError, VenueEvent};
use strategy::{Fill, Order, Side};
use tokio::runtime::Handle;

use crate::engine::ExecVenue;
use crate::journal::SharedJournal;

/// How often an order with an unknown outcome is looked up again.
pub const LOOKUP_EVERY: Duration = Duration::from_secs(2);

/// The prefix of every `client_order_id` this runner makes (how its orders are told apart
/// from a person's at reconciliation and shutdown).
pub const CLIENT_ID_PREFIX: &str = "rl-";

#[derive(Debug)]
enum Answer {
    /// The order exists at the exchange: its id and its fills.
    Placed {
        exchange_id: String,
        fills: Vec<wire::Fill>,
        how: &'static str,
    },
    /// The exchange refused it (nothing placed).
    Refused(String),
    /// Not known yet: the market stays blocked, the lookup goes on.
    Unknown(String),
}

#[derive(Debug)]
struct InFlight {
    order: Order,
    client_order_id: String,
    unknown: Option<String>,
}

/// Converts one of the exchange's fills of `order` into the runtime's.
pub fn fill_of(order: &Order, f: &wire::Fill, now_ms: i64, m: FeeMultiplier) -> Option<Fill> {
    let count = f.count()?;
    let yes = f.yes_price();
    let price = match order.side {
        Side::Yes => yes?,
        Side::No => f.no_price_dollars.or(yes.map(Price::complement))?,
    };
    let fee = f
        .fee_cost
        .unwrap_or_else(|| trading_fee(Liquidity::Taker, m, count, price));
    Some(Fill {
        order_id: order.id,
        market: order.market.clone(),
        ts_ms: f
            .ts
            .map_or(now_ms, |t| if t < 10_000_000_000 { t * 1000 } else { t }),
        side: order.side,
        price,
        count,
        fee,
        decision_ts_ms: order.decision_ts_ms,
        model_p: order.model_p,
        mid: order.mid,
        close_ts_ms: order.close_ts_ms,
    })
}

pub struct LiveVenue {
    rest: RestClient,
    handle: Handle,
    journal: SharedJournal,
    session: String,
    fee_multiplier: FeeMultiplier,
    in_flight: BTreeMap<u64, InFlight>,
    tx: mpsc::Sender<(u64, Answer)>,
    rx: mpsc::Receiver<(u64, Answer)>,
    /// Settlements learned from the market results (the exchange pays out on its own).
    settled: Vec<VenueEvent>,
}

impl LiveVenue {
    pub fn new(
        rest: RestClient,
        handle: Handle,
        journal: SharedJournal,
        session: String,
        fee_multiplier: FeeMultiplier,
    ) -> LiveVenue {
        let (tx, rx) = mpsc::channel();
        LiveVenue {
            rest,
            handle,
            journal,
            session,
            fee_multiplier,
            in_flight: BTreeMap::new(),
            tx,
            rx,
            settled: Vec::new(),
        }
    }

    pub fn client_order_id(&self, order_id: u64) -> String {
        format!("{CLIENT_ID_PREFIX}{}-{order_id}", self.session)
    }

    fn request(&self, order: &Order, coid: &str) -> Result<CreateOrderRequest, String> {
        let b = match order.side {
            Side::Yes => {
                CreateOrderRequest::buy_yes(order.market.clone(), order.limit, order.count)
            }
            Side::No => CreateOrderRequest::buy_no(order.market.clone(), order.limit, order.count),
        };
        let tif = match order.time_in_force {
            TimeInForce::ImmediateOrCancel => wire::TimeInForce::ImmediateOrCancel,
            TimeInForce::FillOrKill => wire::TimeInForce::FillOrKill,
            TimeInForce::GoodTillCanceled => wire::TimeInForce::GoodTillCanceled,
        };
        b.client_order_id(ClientOrderId::new(coid.to_string()))
            .time_in_force(tif)
            .build()
            .map_err(|e| e.to_string())
    }

    fn spawn_create(&self, order_id: u64, req: CreateOrderRequest) {
        let rest = self.rest.clone();
        let tx = self.tx.clone();
        self.handle.spawn(async move {
            let answer = match rest.create_order_idempotent(&req).await {
                Ok(CreateOutcome::Placed(ack)) => {
                    let filled = ack.fill_count;
                    placed(&rest, ack.order_id.to_string(), filled, "placed").await
                }
                Ok(CreateOutcome::FoundExisting(o)) => {
                    placed(
                        &rest,
                        o.order_id.to_string(),
                        o.fill_count_fp,
                        "found by client_order_id",
                    )
                    .await
                }
                Err(e) if unknown(&e) => Answer::Unknown(e.to_string()),
                Err(e) => Answer::Refused(e.to_string()),
            };
            let _ = tx.send((order_id, answer));
        });
    }

    fn spawn_lookup(&self, order_id: u64, market: MarketTicker, coid: String) {
        let rest = self.rest.clone();
        let tx = self.tx.clone();
        self.handle.spawn(async move {
            tokio::time::sleep(LOOKUP_EVERY).await;
            let id = ClientOrderId::new(coid);
            let answer = match rest.find_order_by_client_id(&market, &id, None).await {
                Ok(Some(o)) => {
                    placed(
                        &rest,
                        o.order_id.to_string(),
                        o.fill_count_fp,
                        "found by lookup",
                    )
                    .await
                }
                Ok(None) => Answer::Unknown("not listed yet; looking again".into()),
                Err(e) => Answer::Unknown(format!("lookup failed: {e}")),
            };
            let _ = tx.send((order_id, answer));
        });
    }
}

/// A refusal we cannot trust to mean "not placed".
fn unknown(e: &RestError) -> bool {
    e.outcome_unknown() || matches!(e, RestError::UnresolvedCreate { .. })
}

/// The order exists: read its fills until they add up to what the exchange says filled.
async fn placed(
    rest: &RestClient,
    exchange_id: String,
    filled: Option<Count>,
    how: &'static str,
) -> Answer {
    let q = PortfolioQuery {
        order_id: Some(exchange_id.clone()),
        ..Default::default()
    };
    let mut last = String::new();
    for attempt in 0..10 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        match rest.fills(&q).await {
            Ok(fills) => {
                let sum: Count = fills.iter().filter_map(wire::Fill::count).sum();
                if filled.is_none_or(|f| f == sum) {
                    return Answer::Placed {
                        exchange_id,
                        fills,
                        how,
                    };
                }
                last = format!("fills add up to {sum}, the order says {filled:?}");
            }
            Err(e) => last = e.to_string(),
        }
    }
    Answer::Unknown(format!(
        "order {exchange_id} placed but its fills cannot be read: {last}"
    ))
}

impl Venue for LiveVenue {
    fn submit(&mut self, order: Order, now_ms: i64) -> Result<(), VenueError> {
        let reject = |msg: String| VenueError::Rejected { id: order.id, msg };
        if let Some(f) = self
            .in_flight
            .values()
            .find(|f| f.order.market == order.market && f.unknown.is_some())
        {
            return Err(reject(format!(
                "order {} in this market has an unknown outcome; looking it up",
                f.client_order_id
            )));
        }
        let coid = self.client_order_id(order.id);
        let req = self.request(&order, &coid).map_err(reject)?;
        {
            let mut j = self.journal.lock().expect("journal lock");
            let entry = json!({"order_id": order.id, "client_order_id": coid,
                "market": order.market, "side": order.side, "count": order.count,
                "limit": order.limit, "decision_ts_ms": order.decision_ts_ms, "now_ms": now_ms});
            // Nothing leaves unless the journal holds its client_order_id durably.
            j.write("submit", entry)
                .and_then(|()| j.sync())
                .map_err(|e| reject(format!("not sent: {e}")))?;
        }
        self.spawn_create(order.id, req);
        self.in_flight.insert(
            order.id,
            InFlight {
                order,
                client_order_id: coid,
                unknown: None,
            },
        );
        Ok(())
    }

    fn poll(&mut self, now_ms: i64) -> Vec<VenueEvent> {
        let mut out = std::mem::take(&mut self.settled);
        while let Ok((id, answer)) = self.rx.try_recv() {
            let Some(fl) = self.in_flight.get_mut(&id) else {
                continue;
            };
            let mut j = self.journal.lock().expect("journal lock");
            match answer {
                Answer::Unknown(why) => {
                    if fl.unknown.is_none() {
                        tracing::warn!(client_order_id = %fl.client_order_id, market = %fl.order.market, why = %why, "order outcome unknown: market blocked until a lookup resolves it");
                        let _ = j.write("order_unknown", json!({"order_id": id, "client_order_id": fl.client_order_id, "why": why}));
                    }
                    fl.unknown = Some(why);
                    let (m, c) = (fl.order.market.clone(), fl.client_order_id.clone());
                    drop(j);
                    self.spawn_lookup(id, m, c);
                }
                Answer::Refused(why) => {
                    let fl = self.in_flight.remove(&id).expect("present");
                    let _ = j.write("order_result", json!({"order_id": id, "client_order_id": fl.client_order_id, "status": "refused", "why": why}));
                    out.push(VenueEvent::Done {
                        order_id: id,
                        market: fl.order.market.clone(),
                        filled: Count::ZERO,
                        cancelled: fl.order.count,
                        reason: format!("refused by the exchange: {why}"),
                    });
                }
                Answer::Placed {
                    exchange_id,
                    fills,
                    how,
                } => {
                    let fl = self.in_flight.remove(&id).expect("present");
                    let ours: Vec<Fill> = fills
                        .iter()
                        .filter_map(|f| fill_of(&fl.order, f, now_ms, self.fee_multiplier))
                        .collect();
                    let filled: Count = ours.iter().map(|f| f.count).sum();
                    let _ = j.write("order_result", json!({"order_id": id, "client_order_id": fl.client_order_id, "exchange_order_id": exchange_id, "status": how, "filled": filled}));
                    out.extend(ours.into_iter().map(VenueEvent::Fill));
                    out.push(VenueEvent::Done {
                        order_id: id,
                        market: fl.order.market.clone(),
                        filled,
                        cancelled: fl.order.count - filled.min(fl.order.count),
                        reason: "remainder cancelled by the exchange (immediate-or-cancel)".into(),
                    });
                }
            }
        }
        out
    }
}

impl ExecVenue for LiveVenue {
    fn observe(&mut self, _line: &Line) {}

    fn resolve(&mut self, market: &MarketTicker, outcome: Outcome) {
        self.settled.push(VenueEvent::Settled {
            market: market.clone(),
            outcome,
            ts_ms: 0,
        });
    }

    fn blocked(&self) -> Vec<(MarketTicker, String)> {
        self.in_flight
            .values()
            .filter_map(|f| {
                f.unknown.as_ref().map(|w| {
                    (
                        f.order.market.clone(),
                        format!("order {} outcome unknown: {w}", f.client_order_id),
                    )
                })
            })
            .collect()
    }

    fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}
