//! Out-of-process strategies: a child process speaking `run_live.plugin/v1`, JSON lines over
//! its stdin/stdout (docs/PLUGINS.md). The runner starts the Python host
//! (`plugins/host.py`, embedded in the binary) which imports `plugin.module`, builds
//! `plugin.class(**plugin.params)` and answers each line with the intents it returns.
//!
//! A plugin that exits, misses its [`DEADLINE`] or answers something that is not a valid
//! reply is marked failed: it gets no more lines, [`Strategy::failure`] says why (the runner
//! halts new orders and logs it), and the runner goes on.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use pipeline::money::{Count, Price};
use pipeline::schema::strategy::PluginSpec;
use pipeline::snapshot::Line;
use pipeline::MarketTicker;
use serde::Deserialize;
use serde_json::json;
use strategy::{Intent, MarketContext, Side, Strategy};

pub const PROTOCOL: &str = "run_live.plugin/v1";
/// How long a plugin may take to answer one line (and to start: ten times this).
pub const DEADLINE: Duration = Duration::from_millis(500);
/// The Python host, written next to the journal's temp files at start.
pub const HOST_PY: &str = include_str!("../../../plugins/host.py");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireIntent {
    market: MarketTicker,
    side: Side,
    /// Contracts, a decimal string ("1", "2.50") or an integer.
    count: serde_json::Value,
    /// Dollars, a decimal string ("0.4500").
    limit: String,
    #[serde(default)]
    reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Reply {
    Ready { protocol: String },
    Intents { intents: Vec<WireIntent> },
    Error { message: String },
}

pub struct PluginStrategy {
    child: Child,
    stdin: Option<ChildStdin>,
    replies: mpsc::Receiver<String>,
    failed: Option<String>,
    name: String,
}

impl Drop for PluginStrategy {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_intent(w: WireIntent) -> Result<Intent, String> {
    let count = match &w.count {
        serde_json::Value::Number(n) if n.is_i64() => {
            Count::from_contracts(n.as_i64().unwrap_or(0))
        }
        serde_json::Value::String(s) => s
            .parse::<Count>()
            .map_err(|e| format!("count {s:?}: {e}"))?,
        v => return Err(format!("count {v}: not a decimal string or an integer")),
    };
    if count <= Count::ZERO {
        return Err(format!("count {count} must be positive"));
    }
    let limit: Price = w
        .limit
        .parse()
        .map_err(|e| format!("limit {:?}: {e}", w.limit))?;
    Ok(Intent {
        market: w.market,
        side: w.side,
        count,
        limit,
        model_p: None,
        mid: None,
        edge: None,
        reason: w.reason,
    })
}

impl PluginStrategy {
    /// Starts `python3 host.py` for `spec` with `base` (the strategy file's folder) on the
    /// module path, and waits for its `ready`.
    pub fn spawn(spec: &PluginSpec, base: &Path) -> Result<PluginStrategy, String> {
        let host =
            std::env::temp_dir().join(format!("run_live_plugin_host_{}.py", std::process::id()));
        std::fs::write(&host, HOST_PY).map_err(|e| format!("writing {}: {e}", host.display()))?;
        let python = std::env::var("RUN_LIVE_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut child = Command::new(&python)
            .arg(&host)
            .env("PYTHONPATH", base)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("plugin: cannot start {python}: {e}"))?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) => {
                        if tx.send(l).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        let mut p = PluginStrategy {
            stdin: child.stdin.take(),
            child,
            replies: rx,
            failed: None,
            name: format!("{}.{}", spec.module, spec.class),
        };
        p.send(
            &json!({"type": "hello", "protocol": PROTOCOL, "module": spec.module,
                       "class": spec.class, "params": spec.params}),
        )?;
        match p.reply(DEADLINE * 10)? {
            Reply::Ready { protocol } if protocol == PROTOCOL => Ok(p),
            Reply::Ready { protocol } => Err(format!(
                "plugin {}: speaks {protocol:?}, the runner {PROTOCOL:?}",
                p.name
            )),
            Reply::Error { message } => Err(format!("plugin {}: {message}", p.name)),
            Reply::Intents { .. } => Err(format!("plugin {}: answered intents to hello", p.name)),
        }
    }

    fn send(&mut self, v: &serde_json::Value) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        let mut line = v.to_string();
        line.push('\n');
        stdin
            .write_all(line.as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|e| {
                format!(
                    "plugin {}: writing to it failed ({e}): it exited?",
                    self.name
                )
            })
    }

    fn reply(&mut self, deadline: Duration) -> Result<Reply, String> {
        match self.replies.recv_timeout(deadline) {
            Ok(l) => serde_json::from_str::<Reply>(&l).map_err(|e| {
                let shown: String = l.chars().take(120).collect();
                format!(
                    "plugin {}: not a {PROTOCOL} reply ({e}): {shown:?}",
                    self.name
                )
            }),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
                "plugin {}: no answer within {} ms",
                self.name,
                deadline.as_millis()
            )),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = self.child.try_wait().ok().flatten();
                Err(format!(
                    "plugin {}: exited ({})",
                    self.name,
                    status.map_or("still running, stdout closed".into(), |s| s.to_string())
                ))
            }
        }
    }

    fn fail(&mut self, why: String) {
        tracing::error!(plugin = %self.name, why = %why, "plugin failed: its new orders are halted; the runner goes on");
        self.failed = Some(why);
        drop(self.stdin.take());
        let _ = self.child.kill();
    }

    fn ask(
        &mut self,
        line: &Line,
        ctx: &MarketContext<'_>,
        now_ms: i64,
    ) -> Result<Vec<Intent>, String> {
        let pos = ctx
            .position
            .map(|p| json!({"yes": p.yes, "no": p.no, "cost": p.cost}));
        let line_json: serde_json::Value =
            serde_json::from_str(&line.to_json()).expect("our own lines are JSON");
        self.send(&json!({"type": "line", "now_ms": now_ms, "line": line_json,
                          "ctx": {"market": ctx.market, "close_ts_ms": ctx.close_ts_ms,
                                  "trusted": ctx.trusted, "position": pos}}))?;
        match self.reply(DEADLINE)? {
            Reply::Intents { intents } => intents
                .into_iter()
                .map(parse_intent)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("plugin {}: bad intent: {e}", self.name)),
            Reply::Error { message } => Err(format!("plugin {}: raised: {message}", self.name)),
            Reply::Ready { .. } => Err(format!("plugin {}: answered ready to a line", self.name)),
        }
    }
}

impl Strategy for PluginStrategy {
    fn on_line(&mut self, line: &Line, ctx: &MarketContext<'_>, now_ms: i64) -> Vec<Intent> {
        if self.failed.is_some() {
            return Vec::new();
        }
        match self.ask(line, ctx, now_ms) {
            Ok(v) => v,
            Err(e) => {
                self.fail(e);
                Vec::new()
            }
        }
    }

    fn on_market_done(&mut self, market: &MarketTicker) {
        if self.failed.is_none() {
            if let Err(e) = self.send(&json!({"type": "market_done", "market": market})) {
                self.fail(e);
            }
        }
    }

    fn failure(&self) -> Option<String> {
        self.failed.clone()
    }
}
