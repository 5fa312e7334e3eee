//! The exchange side of `sync_labels`: [`RestOutcomeSource`] answers
//! [`pipeline::labels::OutcomeSource`] from Kalshi's REST API (API.md §4.1, §4.5).
//!
//! For each batch of at most [`MAX_TICKERS_PER_REQUEST`] tickers it asks
//! `GET /markets?tickers=…` (no status filter, every page), then
//! `GET /historical/markets?tickers=…` for the tickers the live tier did not return (markets
//! settled before the historical cutoff are only there). Each market object becomes a
//! [`FetchedOutcome::Market`] read by [`MarketOutcome::from_json`]; an object that cannot be
//! read becomes [`FetchedOutcome::Unreadable`] for its ticker; a ticker in neither tier is
//! [`FetchedOutcome::NotFound`].
//!
//! Retries are the client's: 429, 5xx, timeouts and transport errors are retried with
//! jittered backoff; 401/403 and other refusals fail at once. The trait is synchronous, so
//! the source owns a current-thread tokio runtime and blocks on it; calling
//! [`OutcomeSource::fetch`] from inside another runtime is refused with
//! [`OutcomeSourceError::InsideRuntime`] instead of panicking.
//!
//! Market data is public: requests are signed only when credentials are configured
//! ([`optional_credentials`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use pipeline::auth::Signer;
use pipeline::config::{RateLimitTier, RuntimeConfig};
use pipeline::ids::MarketTicker;
use pipeline::labels::{FetchedOutcome, MarketOutcome, OutcomeSource};
use pipeline::secrets::{api_key_id, Credentials, PrivateKey, SecretsError};
use serde_json::Value;

use crate::rest::{MarketsQuery, RateLimits, RestClient, RestConfig, RestError, Tier};

/// Most tickers in one `tickers=` query (Kalshi's batch limit for market lists).
pub const MAX_TICKERS_PER_REQUEST: usize = 100;

/// Why [`RestOutcomeSource`] could not be built or could not answer.
#[derive(Debug, thiserror::Error)]
pub enum OutcomeSourceError {
    #[error(transparent)]
    Rest(Box<RestError>),
    /// A key file that exists but cannot be used (permissions, not a key, unreadable).
    #[error("credentials: {0}")]
    Credentials(#[from] SecretsError),
    /// A private key file exists but no API key id is configured.
    #[error(
        "credentials: the private key {pem} exists but there is no API key id: set \
         KALSHI_API_KEY_ID in {env} or in the environment (or move the key file away to \
         fetch unsigned: market data is public)"
    )]
    MissingKeyId { pem: String, env: String },
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error(
        "RestOutcomeSource::fetch was called inside an async runtime; call it from a plain \
         thread (e.g. tokio::task::spawn_blocking)"
    )]
    InsideRuntime,
}

impl From<RestError> for OutcomeSourceError {
    fn from(e: RestError) -> OutcomeSourceError {
        OutcomeSourceError::Rest(Box::new(e))
    }
}

impl OutcomeSourceError {
    /// The REST failure, if that is what this is.
    pub fn rest(&self) -> Option<&RestError> {
        match self {
            OutcomeSourceError::Rest(e) => Some(e),
            _ => None,
        }
    }
}

/// What a [`RestOutcomeSource`] asked and learned, for the summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// [`OutcomeSource::fetch`] calls and the distinct tickers they asked about.
    pub fetch_calls: u64,
    pub tickers: u64,
    /// `GET /markets?tickers=` lookups (each follows the cursor to the last page).
    pub live_lookups: u64,
    /// `GET /historical/markets?tickers=` lookups.
    pub historical_lookups: u64,
    /// Market objects read, by tier.
    pub found_live: u64,
    pub found_historical: u64,
    /// Tickers in neither tier.
    pub not_found: u64,
    /// Market objects that could not be read (one per ticker).
    pub unreadable: u64,
}

impl fmt::Display for SourceStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exchange: asked about {} market(s) in {} /markets and {} /historical/markets \
             lookup(s): {} live, {} historical, {} not found, {} unreadable",
            self.tickers,
            self.live_lookups,
            self.historical_lookups,
            self.found_live,
            self.found_historical,
            self.not_found,
            self.unreadable
        )
    }
}

/// Kalshi's REST API as a [`pipeline::labels::OutcomeSource`].
pub struct RestOutcomeSource {
    client: RestClient,
    runtime: tokio::runtime::Runtime,
    stats: SourceStats,
}

impl fmt::Debug for RestOutcomeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestOutcomeSource")
            .field("client", &self.client)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl RestOutcomeSource {
    /// A source over `client`, with its own current-thread runtime.
    pub fn new(client: RestClient) -> Result<RestOutcomeSource, OutcomeSourceError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(OutcomeSourceError::Runtime)?;
        Ok(RestOutcomeSource {
            client,
            runtime,
            stats: SourceStats::default(),
        })
    }

    /// The configured exchange ([`rest_config`]), signed when credentials are configured
    /// ([`optional_credentials`], the process environment first for the key id).
    pub fn from_config(cfg: &RuntimeConfig) -> Result<RestOutcomeSource, OutcomeSourceError> {
        let creds = optional_credentials(&cfg.env_file, &cfg.pem_file, &|k| std::env::var(k).ok())?;
        let signer = creds.as_ref().map(Signer::from_credentials);
        let client = RestClient::new(rest_config(cfg), signer)?;
        RestOutcomeSource::new(client)
    }

    pub fn client(&self) -> &RestClient {
        &self.client
    }

    pub fn stats(&self) -> &SourceStats {
        &self.stats
    }

    /// One batch: the live tier, then the historical tier for what is missing.
    async fn fetch_chunk(
        client: &RestClient,
        chunk: &[MarketTicker],
        stats: &mut SourceStats,
    ) -> Result<Vec<FetchedOutcome>, RestError> {
        let mut answered: BTreeMap<MarketTicker, FetchedOutcome> = BTreeMap::new();
        let live = client.markets_json(&tickers_query(chunk)).await?;
        stats.live_lookups += 1;
        stats.found_live += read_markets(live, chunk, &mut answered, "/markets");
        let missing: Vec<MarketTicker> = chunk
            .iter()
            .filter(|t| !answered.contains_key(*t))
            .cloned()
            .collect();
        if !missing.is_empty() {
            let hist = client
                .historical_markets_json(&tickers_query(&missing))
                .await?;
            stats.historical_lookups += 1;
            stats.found_historical +=
                read_markets(hist, &missing, &mut answered, "/historical/markets");
        }
        let mut out = Vec::with_capacity(chunk.len());
        for t in chunk {
            match answered.remove(t) {
                Some(o) => {
                    if matches!(o, FetchedOutcome::Unreadable { .. }) {
                        stats.unreadable += 1;
                    }
                    out.push(o);
                }
                None => {
                    stats.not_found += 1;
                    out.push(FetchedOutcome::NotFound(t.clone()));
                }
            }
        }
        Ok(out)
    }
}

impl OutcomeSource for RestOutcomeSource {
    type Error = OutcomeSourceError;

    fn fetch(&mut self, tickers: &[MarketTicker]) -> Result<Vec<FetchedOutcome>, Self::Error> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(OutcomeSourceError::InsideRuntime);
        }
        let mut seen = BTreeSet::new();
        let distinct: Vec<MarketTicker> = tickers
            .iter()
            .filter(|t| seen.insert(*t))
            .cloned()
            .collect();
        self.stats.fetch_calls += 1;
        self.stats.tickers += distinct.len() as u64;
        let mut out = Vec::with_capacity(distinct.len());
        for chunk in distinct.chunks(MAX_TICKERS_PER_REQUEST) {
            let answer =
                self.runtime
                    .block_on(Self::fetch_chunk(&self.client, chunk, &mut self.stats))?;
            out.extend(answer);
        }
        Ok(out)
    }
}

/// `tickers=A,B,…` with a page size that fits the batch, no status filter.
fn tickers_query(tickers: &[MarketTicker]) -> MarketsQuery {
    MarketsQuery {
        tickers: tickers.to_vec(),
        limit: Some(tickers.len().clamp(1, 1000) as u32),
        ..Default::default()
    }
}

/// Reads market objects into `answered` (first answer per ticker wins); returns the markets
/// read. Objects about tickers not in `asked` are ignored; an object that cannot be read is
/// `Unreadable` for its ticker when it names an asked one, and logged otherwise.
fn read_markets(
    values: Vec<Value>,
    asked: &[MarketTicker],
    answered: &mut BTreeMap<MarketTicker, FetchedOutcome>,
    path: &str,
) -> u64 {
    let asked: BTreeSet<&str> = asked.iter().map(MarketTicker::as_str).collect();
    let mut read = 0;
    for (i, v) in values.into_iter().enumerate() {
        let Some(obj) = v.as_object() else {
            tracing::warn!(
                path,
                index = i,
                "market list item is not an object; ignored"
            );
            continue;
        };
        let named = obj.get("ticker").and_then(Value::as_str);
        let outcome = match MarketOutcome::from_json(obj, None) {
            Ok(m) => FetchedOutcome::Market(m),
            Err(message) => match named.filter(|t| asked.contains(t)) {
                Some(t) => {
                    tracing::warn!(path, ticker = t, %message, "market object cannot be read");
                    FetchedOutcome::Unreadable {
                        ticker: MarketTicker::new(t),
                        message: format!("{path}: {message}"),
                    }
                }
                None => {
                    tracing::warn!(path, index = i, %message, "unreadable market object for no requested ticker; ignored");
                    continue;
                }
            },
        };
        let ticker = match &outcome {
            FetchedOutcome::Market(m) => m.ticker.clone(),
            FetchedOutcome::Unreadable { ticker, .. } => ticker.clone(),
            FetchedOutcome::NotFound(t) => t.clone(),
        };
        if !asked.contains(ticker.as_str()) {
            tracing::debug!(path, ticker = %ticker, "market not asked about; ignored");
            continue;
        }
        if answered.contains_key(&ticker) {
            tracing::warn!(path, ticker = %ticker, "market listed twice; the first is kept");
            continue;
        }
        if matches!(outcome, FetchedOutcome::Market(_)) {
            read += 1;
        }
        answered.insert(ticker, outcome);
    }
    read
}

/// The REST client settings for the configured exchange: its base URL, and client-side
/// pacing at 90 % of the configured tier's budget.
pub fn rest_config(cfg: &RuntimeConfig) -> RestConfig {
    let tier = match cfg.rate_limit_tier {
        RateLimitTier::Basic => Tier::Basic,
        RateLimitTier::Advanced => Tier::Advanced,
        RateLimitTier::Premier => Tier::Premier,
        RateLimitTier::Paragon => Tier::Paragon,
        RateLimitTier::Prime => Tier::Prime,
    };
    let mut rc = RestConfig::new(cfg.rest_base.as_str().trim_end_matches('/'));
    rc.rate_limits = Some(RateLimits::for_tier(tier).scaled(90));
    rc
}

/// Credentials for signing when they are configured, for tools that only read public data:
///
/// - no file at `pem_file` → `Ok(None)` (unsigned; market data is public);
/// - a key file that cannot be used (readable by group or others, not a private key,
///   unreadable) → the error, naming the file;
/// - a usable key without an API key id (`env` first, then `env_file`) → an error.
pub fn optional_credentials(
    env_file: &Path,
    pem_file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Credentials>, OutcomeSourceError> {
    match std::fs::symlink_metadata(pem_file) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!(pem = %pem_file.display(), "no private key file; requests are unsigned");
            return Ok(None);
        }
        _ => {}
    }
    let key = PrivateKey::load(pem_file)?;
    let key_id = match api_key_id(Some(env_file), env) {
        Ok(id) => id,
        Err(SecretsError::MissingKeyId { .. }) => {
            return Err(OutcomeSourceError::MissingKeyId {
                pem: pem_file.display().to_string(),
                env: env_file.display().to_string(),
            })
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(key_id = %key_id, "requests are signed");
    Ok(Some(Credentials { key_id, key }))
}
