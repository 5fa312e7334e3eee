use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser};

use super::*;

const PROD_REST: &str = "https://external-api.kalshi.com/trade-api/v2";
const PROD_WS: &str = "wss://external-api-ws.kalshi.com/trade-api/ws/v2";
const DEMO_REST: &str = "https://external-api.demo.kalshi.co/trade-api/v2";
const DEMO_WS: &str = "wss://external-api-ws.demo.kalshi.co/trade-api/ws/v2";

fn no_env(_: &str) -> Option<String> {
    None
}

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

fn file(text: &str) -> Option<(&'static Path, &str)> {
    Some((Path::new("config/runtime.json"), text))
}

fn problems(e: ConfigError) -> Vec<Problem> {
    match e {
        ConfigError::Invalid { problems, .. } => problems,
        other => panic!("expected Invalid, got {other}"),
    }
}

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../config")
        .join(name)
}

#[test]
fn defaults_load_and_point_at_production() {
    let cfg = resolve(None, &no_env, &CliOverrides::default()).unwrap();
    assert_eq!(cfg.source, None);
    assert_eq!(cfg.environment, "prod");
    assert_eq!(cfg.rest_base.as_str(), PROD_REST);
    assert_eq!(cfg.ws_url.as_str(), PROD_WS);
    assert_eq!(cfg.rate_limit_tier, RateLimitTier::Basic);
    assert_eq!(cfg.series.as_str(), "KXBTC15M");
    assert_eq!(cfg.env_file, PathBuf::from("secrets/.env"));
    assert_eq!(cfg.pem_file, PathBuf::from("secrets/kalshi_secret.pem"));
    assert_eq!(cfg.data_dir, PathBuf::from("pipeline_data/highres"));
    assert_eq!(cfg.labels_path, PathBuf::from("pipeline_data/labels.json"));
    assert_eq!(
        cfg.unresolved_path,
        PathBuf::from("pipeline_data/labels_unresolved.json")
    );
    assert_eq!(
        cfg.strategy_path,
        PathBuf::from("pipeline_data/strategy/strategy.json")
    );
    assert_eq!(cfg.reports_dir, PathBuf::from("pipeline_data/reports"));
    assert_eq!(cfg.live_dir, PathBuf::from("pipeline_data/live"));
    assert_eq!(cfg.snapshot_ms, 100);
    assert!(cfg.use_yes_price);
    assert!(!cfg.is_loopback());
    for field in [
        "environment",
        "rest_base",
        "ws_url",
        "series",
        "snapshot_ms",
    ] {
        assert_eq!(cfg.origin(field), Some(&Origin::Default), "{field}");
    }
    assert_eq!(cfg.origin("no_such_field"), None);
}

#[test]
fn empty_file_object_means_all_defaults() {
    let from_file = resolve(file("{}"), &no_env, &CliOverrides::default()).unwrap();
    let defaults = resolve(None, &no_env, &CliOverrides::default()).unwrap();
    assert_eq!(
        from_file.source.as_deref(),
        Some(Path::new("config/runtime.json"))
    );
    assert_eq!(from_file.series, defaults.series);
    assert_eq!(from_file.rest_base, defaults.rest_base);
    assert_eq!(from_file.data_dir, defaults.data_dir);
}

/// Each layer overrides the one below, field by field: default < file < env < cli.
#[test]
fn precedence_each_layer_overrides_the_previous() {
    struct Case {
        name: &'static str,
        file: Option<&'static str>,
        env: &'static [(&'static str, &'static str)],
        cli_series: Option<&'static str>,
        series: &'static str,
        series_origin: Origin,
        data_dir: &'static str,
        data_dir_origin: Origin,
    }
    let f = || Origin::File(PathBuf::from("config/runtime.json"));
    let cases = [
        Case {
            name: "defaults only",
            file: None,
            env: &[],
            cli_series: None,
            series: "KXBTC15M",
            series_origin: Origin::Default,
            data_dir: "pipeline_data/highres",
            data_dir_origin: Origin::Default,
        },
        Case {
            name: "file over defaults",
            file: Some(r#"{"series": "KXETH15M", "data_dir": "d/file"}"#),
            env: &[],
            cli_series: None,
            series: "KXETH15M",
            series_origin: f(),
            data_dir: "d/file",
            data_dir_origin: f(),
        },
        Case {
            name: "env over file",
            file: Some(r#"{"series": "KXETH15M", "data_dir": "d/file"}"#),
            env: &[("KALSHI_SERIES", "KXSOL15M"), ("KALSHI_DATA_DIR", "d/env")],
            cli_series: None,
            series: "KXSOL15M",
            series_origin: Origin::Env("KALSHI_SERIES"),
            data_dir: "d/env",
            data_dir_origin: Origin::Env("KALSHI_DATA_DIR"),
        },
        Case {
            name: "cli over env",
            file: Some(r#"{"series": "KXETH15M", "data_dir": "d/file"}"#),
            env: &[("KALSHI_SERIES", "KXSOL15M"), ("KALSHI_DATA_DIR", "d/env")],
            cli_series: Some("KXXRP15M"),
            series: "KXXRP15M",
            series_origin: Origin::Cli("--series"),
            data_dir: "d/env",
            data_dir_origin: Origin::Env("KALSHI_DATA_DIR"),
        },
        Case {
            name: "env over defaults without a file",
            file: None,
            env: &[("KALSHI_DATA_DIR", "d/env")],
            cli_series: None,
            series: "KXBTC15M",
            series_origin: Origin::Default,
            data_dir: "d/env",
            data_dir_origin: Origin::Env("KALSHI_DATA_DIR"),
        },
        Case {
            name: "empty env var counts as unset",
            file: Some(r#"{"data_dir": "d/file"}"#),
            env: &[("KALSHI_DATA_DIR", "  "), ("KALSHI_SERIES", "")],
            cli_series: None,
            series: "KXBTC15M",
            series_origin: Origin::Default,
            data_dir: "d/file",
            data_dir_origin: f(),
        },
    ];
    for c in cases {
        let cli = CliOverrides {
            series: c.cli_series.map(str::to_owned),
            ..Default::default()
        };
        let cfg = resolve(c.file.and_then(file), &env_of(c.env), &cli)
            .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        assert_eq!(cfg.series.as_str(), c.series, "{}", c.name);
        assert_eq!(cfg.origin("series"), Some(&c.series_origin), "{}", c.name);
        assert_eq!(cfg.data_dir, PathBuf::from(c.data_dir), "{}", c.name);
        assert_eq!(
            cfg.origin("data_dir"),
            Some(&c.data_dir_origin),
            "{}",
            c.name
        );
    }
}

/// The endpoint (environment, REST, WS) layers the same way, chosen as a unit.
#[test]
fn precedence_of_the_endpoint() {
    struct Case {
        name: &'static str,
        file: Option<&'static str>,
        env: &'static [(&'static str, &'static str)],
        cli: CliOverrides,
        environment: &'static str,
        rest: &'static str,
        ws: &'static str,
        rest_origin: Origin,
    }
    let cli = |env: Option<&str>, base: Option<&str>, ws: Option<&str>| CliOverrides {
        environment: env.map(str::to_owned),
        base_url: base.map(str::to_owned),
        ws_url: ws.map(str::to_owned),
        ..Default::default()
    };
    let f = || Origin::File(PathBuf::from("config/runtime.json"));
    let sim_a = "http://127.0.0.1:1111/trade-api/v2";
    let sim_b = "http://127.0.0.1:2222/trade-api/v2";
    let cases = [
        Case {
            name: "default",
            file: None,
            env: &[],
            cli: cli(None, None, None),
            environment: "prod",
            rest: PROD_REST,
            ws: PROD_WS,
            rest_origin: Origin::Default,
        },
        Case {
            name: "file selects demo",
            file: Some(r#"{"environment": "demo"}"#),
            env: &[],
            cli: cli(None, None, None),
            environment: "demo",
            rest: DEMO_REST,
            ws: DEMO_WS,
            rest_origin: Origin::Default,
        },
        Case {
            name: "file's own table",
            file: Some(
                r#"{"environment": "x", "exchange": {"x": {"rest_base": "http://127.0.0.1:1111/trade-api/v2"}}}"#,
            ),
            env: &[],
            cli: cli(None, None, None),
            environment: "x",
            rest: sim_a,
            ws: "ws://127.0.0.1:1111/trade-api/ws/v2",
            rest_origin: f(),
        },
        Case {
            name: "env environment over file",
            file: Some(r#"{"environment": "prod"}"#),
            env: &[("KALSHI_ENVIRONMENT", "demo")],
            cli: cli(None, None, None),
            environment: "demo",
            rest: DEMO_REST,
            ws: DEMO_WS,
            rest_origin: Origin::Default,
        },
        Case {
            name: "env REST base derives WS",
            file: None,
            env: &[("KALSHI_REST_BASE", "http://127.0.0.1:1111/trade-api/v2")],
            cli: cli(None, None, None),
            environment: "prod",
            rest: sim_a,
            ws: "ws://127.0.0.1:1111/trade-api/ws/v2",
            rest_origin: Origin::Env("KALSHI_REST_BASE"),
        },
        Case {
            name: "env REST and WS both explicit",
            file: None,
            env: &[
                ("KALSHI_REST_BASE", "http://127.0.0.1:1111/trade-api/v2"),
                ("KALSHI_WS_URL", "ws://127.0.0.1:3333/stream"),
            ],
            cli: cli(None, None, None),
            environment: "prod",
            rest: sim_a,
            ws: "ws://127.0.0.1:3333/stream",
            rest_origin: Origin::Env("KALSHI_REST_BASE"),
        },
        Case {
            name: "cli base-url over env; env WS is not mixed in",
            file: None,
            env: &[
                ("KALSHI_REST_BASE", "http://127.0.0.1:1111/trade-api/v2"),
                ("KALSHI_WS_URL", "ws://127.0.0.1:1111/trade-api/ws/v2"),
            ],
            cli: cli(None, Some("http://127.0.0.1:2222/trade-api/v2"), None),
            environment: "prod",
            rest: sim_b,
            ws: "ws://127.0.0.1:2222/trade-api/ws/v2",
            rest_origin: Origin::Cli("--base-url"),
        },
        Case {
            name: "cli environment beats env URL overrides",
            file: None,
            env: &[("KALSHI_REST_BASE", "http://127.0.0.1:1111/trade-api/v2")],
            cli: cli(Some("demo"), None, None),
            environment: "demo",
            rest: DEMO_REST,
            ws: DEMO_WS,
            rest_origin: Origin::Default,
        },
        Case {
            name: "cli environment and base-url together",
            file: None,
            env: &[],
            cli: cli(
                Some("demo"),
                Some("http://127.0.0.1:2222/trade-api/v2"),
                None,
            ),
            environment: "demo",
            rest: sim_b,
            ws: "ws://127.0.0.1:2222/trade-api/ws/v2",
            rest_origin: Origin::Cli("--base-url"),
        },
        Case {
            name: "cli ws-url wins over derivation",
            file: None,
            env: &[],
            cli: cli(
                None,
                Some("http://127.0.0.1:2222/trade-api/v2"),
                Some("ws://127.0.0.1:4444/trade-api/ws/v2"),
            ),
            environment: "prod",
            rest: sim_b,
            ws: "ws://127.0.0.1:4444/trade-api/ws/v2",
            rest_origin: Origin::Cli("--base-url"),
        },
    ];
    for c in cases {
        let cfg = resolve(c.file.and_then(file), &env_of(c.env), &c.cli)
            .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        assert_eq!(cfg.environment, c.environment, "{}", c.name);
        assert_eq!(cfg.rest_base.as_str(), c.rest, "{}", c.name);
        assert_eq!(cfg.ws_url.as_str(), c.ws, "{}", c.name);
        assert_eq!(cfg.origin("rest_base"), Some(&c.rest_origin), "{}", c.name);
    }
}

/// Acceptance criterion: a runtime.json with two wrong fields gives ONE error naming both.
#[test]
fn two_bad_fields_are_reported_together_with_their_paths() {
    let text = r#"{
  "exchnage": {},
  "snapshot_ms": "fast"
}"#;
    let e = resolve(file(text), &no_env, &CliOverrides::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "config/runtime.json: 2 problems:\n  \
         - exchnage: unknown field (did you mean \"exchange\"?)\n  \
         - snapshot_ms: expected a positive integer (1..=3600000), got \"fast\""
    );
    let ps = problems(e);
    let paths: Vec<&str> = ps.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["exchnage", "snapshot_ms"]);
    assert!(ps
        .iter()
        .all(|p| p.origin == Origin::File(PathBuf::from("config/runtime.json"))));
}

#[test]
fn every_kind_of_bad_field_is_collected() {
    let text = r#"{
  "schema": "runtime/v2",
  "environment": "Prod",
  "exchange": {"prod": {"rest_base": "wss://x.example/trade-api/v2", "ws_url": 5}},
  "env_file": "",
  "pem_file": "~/kalshi.pem",
  "series": "kxbtc15m",
  "data_dir": 7,
  "snapshot_ms": 0,
  "use_yes_price": "yes",
  "labels_path": null
}"#;
    let e = resolve(file(text), &no_env, &CliOverrides::default()).unwrap_err();
    let rendered = e.to_string();
    let ps = problems(e);
    let paths: Vec<&str> = ps.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "data_dir",
            "env_file",
            "environment",
            "exchange.prod.rest_base",
            "exchange.prod.ws_url",
            "labels_path",
            "pem_file",
            "schema",
            "series",
            "snapshot_ms",
            "use_yes_price",
        ],
        "{rendered}"
    );
    assert!(rendered.starts_with("config/runtime.json: 11 problems:"));
    assert!(rendered.contains("data_dir: expected a string, got 7"));
    assert!(rendered.contains("series: series tickers are upper case (did you mean \"KXBTC15M\"?)"));
    assert!(rendered.contains("use_yes_price: expected true or false, got \"yes\""));
    assert!(rendered.contains("labels_path: expected a string, got null"));
    assert!(rendered.contains("schema: expected \"runtime/v1\", got \"runtime/v2\""));
    assert!(rendered.contains("exchange.prod.rest_base: expected an http:// or https:// URL"));
    assert!(rendered.contains("pem_file: '~' is not expanded"));
}

#[test]
fn unknown_nested_field_has_its_full_path() {
    let text = r#"{"exchange": {"prod": {"rest_bse": "https://a.example/trade-api/v2"}}}"#;
    let e = resolve(file(text), &no_env, &CliOverrides::default()).unwrap_err();
    let ps = problems(e);
    assert_eq!(ps.len(), 2, "{ps:?}");
    assert_eq!(ps[0].path, "exchange.prod.rest_base");
    assert_eq!(ps[0].message, "missing (required)");
    assert_eq!(ps[1].path, "exchange.prod.rest_bse");
    assert_eq!(ps[1].message, "unknown field (did you mean \"rest_base\"?)");
}

#[test]
fn unknown_field_without_a_close_match_lists_the_known_ones() {
    let text =
        r#"{"exchange": {"prod": {"rest_base": "https://a.example/trade-api/v2", "zzz": 1}}}"#;
    let ps = problems(resolve(file(text), &no_env, &CliOverrides::default()).unwrap_err());
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].path, "exchange.prod.zzz");
    assert_eq!(
        ps[0].message,
        "unknown field (known fields: rest_base, ws_url, rate_limit_tier, env_file, pem_file)"
    );
}

#[test]
fn malformed_json_names_file_line_and_column() {
    let text = "{\n  \"series\": \"KXBTC15M\"\n  \"data_dir\": \"x\"\n}";
    let e = resolve(file(text), &no_env, &CliOverrides::default()).unwrap_err();
    match &e {
        ConfigError::Syntax {
            path, line, column, ..
        } => {
            assert_eq!(path, Path::new("config/runtime.json"));
            assert_eq!(*line, 3);
            assert_eq!(*column, 3);
        }
        other => panic!("expected Syntax, got {other}"),
    }
    assert_eq!(
        e.to_string(),
        "config/runtime.json: malformed JSON at line 3, column 3: expected `,` or `}`"
    );
}

#[test]
fn duplicate_key_is_a_syntax_error_with_position() {
    let text = "{\n  \"snapshot_ms\": 100,\n  \"snapshot_ms\": 250\n}";
    let e = resolve(file(text), &no_env, &CliOverrides::default()).unwrap_err();
    match &e {
        ConfigError::Syntax { line, message, .. } => {
            assert_eq!(*line, 3);
            assert_eq!(message, "duplicate key \"snapshot_ms\"");
        }
        other => panic!("expected Syntax, got {other}"),
    }
}

#[test]
fn top_level_must_be_an_object() {
    let ps = problems(resolve(file("[1, 2]"), &no_env, &CliOverrides::default()).unwrap_err());
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].path, "(top level)");
    assert_eq!(ps[0].message, "expected a JSON object, got [1,2]");
}

#[test]
fn snapshot_ms_bounds() {
    for (v, ok) in [
        ("1", true),
        ("3600000", true),
        ("0", false),
        ("3600001", false),
        ("-5", false),
        ("100.5", false),
        ("4294967396", false),
    ] {
        let text = format!(r#"{{"snapshot_ms": {v}}}"#);
        let r = resolve(file(&text), &no_env, &CliOverrides::default());
        assert_eq!(r.is_ok(), ok, "snapshot_ms {v}: {r:?}");
        if ok {
            assert_eq!(r.unwrap().snapshot_ms.to_string(), v);
        }
    }
}

#[test]
fn base_url_derives_the_websocket_url() {
    let cases = [
        (
            "http://127.0.0.1:8970/trade-api/v2",
            "http://127.0.0.1:8970/trade-api/v2",
            "ws://127.0.0.1:8970/trade-api/ws/v2",
        ),
        (
            "https://external-api.demo.kalshi.co/trade-api/v2/",
            "https://external-api.demo.kalshi.co/trade-api/v2",
            "wss://external-api.demo.kalshi.co/trade-api/ws/v2",
        ),
        (
            "http://localhost:9000/proxy/trade-api/v2",
            "http://localhost:9000/proxy/trade-api/v2",
            "ws://localhost:9000/proxy/trade-api/ws/v2",
        ),
    ];
    for (given, rest, ws) in cases {
        let cli = CliOverrides {
            base_url: Some(given.to_owned()),
            ..Default::default()
        };
        let cfg = resolve(None, &no_env, &cli).unwrap();
        assert_eq!(cfg.rest_base.as_str(), rest, "{given}");
        assert_eq!(cfg.ws_url.as_str(), ws, "{given}");
        assert_eq!(cfg.origin("ws_url"), Some(&Origin::Cli("--base-url")));
    }
}

#[test]
fn base_url_that_cannot_be_derived_asks_for_ws_url() {
    let cli = CliOverrides {
        base_url: Some("http://127.0.0.1:8970/api".to_owned()),
        ..Default::default()
    };
    let e = resolve(None, &no_env, &cli).unwrap_err();
    assert_eq!(
        e.to_string(),
        "configuration: 1 problem:\n  - ws_url (from --base-url): cannot derive the WebSocket \
         URL from http://127.0.0.1:8970/api: its path \"/api\" does not end in /trade-api/v2; \
         pass --ws-url too"
    );
    let with_ws = CliOverrides {
        ws_url: Some("ws://127.0.0.1:8970/stream".to_owned()),
        ..cli
    };
    let cfg = resolve(None, &no_env, &with_ws).unwrap();
    assert_eq!(cfg.rest_base.as_str(), "http://127.0.0.1:8970/api");
    assert_eq!(cfg.ws_url.as_str(), "ws://127.0.0.1:8970/stream");

    let env = env_of(&[("KALSHI_REST_BASE", "https://h.example/v3")]);
    let ps = problems(resolve(None, &env, &CliOverrides::default()).unwrap_err());
    assert!(ps[0].message.ends_with("set KALSHI_WS_URL too"), "{ps:?}");
}

#[test]
fn file_entry_without_ws_url_derives_or_reports() {
    let bad =
        r#"{"environment": "x", "exchange": {"x": {"rest_base": "http://127.0.0.1:1/other"}}}"#;
    let ps = problems(resolve(file(bad), &no_env, &CliOverrides::default()).unwrap_err());
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].path, "exchange.x.ws_url");
    assert!(ps[0].message.starts_with("missing, and cannot be derived"));
}

#[test]
fn url_schemes_and_shapes_are_checked() {
    let bad = [
        (
            "--base-url",
            "ws://127.0.0.1/trade-api/v2",
            "expected an http:// or https:// URL",
        ),
        (
            "--ws-url",
            "https://127.0.0.1/trade-api/ws/v2",
            "expected a ws:// or wss:// URL",
        ),
        (
            "--base-url",
            "not a url",
            "expected an http:// or https:// URL",
        ),
        (
            "--base-url",
            "http://127.0.0.1/trade-api/v2?x=1",
            "must not have a query",
        ),
        (
            "--ws-url",
            "ws://127.0.0.1/trade-api/ws/v2#frag",
            "must not have a query",
        ),
    ];
    for (flag, url, msg) in bad {
        let mut cli = CliOverrides::default();
        match flag {
            "--base-url" => cli.base_url = Some(url.to_owned()),
            _ => cli.ws_url = Some(url.to_owned()),
        }
        let ps = problems(resolve(None, &no_env, &cli).unwrap_err());
        assert_eq!(ps.len(), 1, "{url}: {ps:?}");
        assert_eq!(
            ps[0].origin,
            Origin::Cli(if flag == "--base-url" {
                "--base-url"
            } else {
                "--ws-url"
            })
        );
        assert!(ps[0].message.contains(msg), "{url}: {}", ps[0].message);
    }
}

#[test]
fn urls_with_credentials_are_rejected_without_echoing_them() {
    let text =
        r#"{"exchange": {"prod": {"rest_base": "https://user:hunter2@h.example/trade-api/v2"}}}"#;
    let e = resolve(file(text), &no_env, &CliOverrides::default()).unwrap_err();
    let s = e.to_string();
    assert!(
        s.contains("exchange.prod.rest_base: must not embed credentials"),
        "{s}"
    );
    assert!(!s.contains("hunter2"), "{s}");
    let cli = CliOverrides {
        ws_url: Some("wss://k:hunter2@h.example/trade-api/ws/v2".to_owned()),
        ..Default::default()
    };
    let s = resolve(None, &no_env, &cli).unwrap_err().to_string();
    assert!(
        s.contains("must not embed credentials") && !s.contains("hunter2"),
        "{s}"
    );
}

#[test]
fn unknown_environment_lists_the_defined_ones() {
    let cli = CliOverrides {
        environment: Some("stage".to_owned()),
        ..Default::default()
    };
    let e = resolve(None, &no_env, &cli).unwrap_err();
    assert_eq!(
        e.to_string(),
        "configuration: 1 problem:\n  - environment (from --environment): unknown environment \
         \"stage\" (the built-in exchange table defines: demo, prod)"
    );
}

#[test]
fn a_bad_entry_is_not_also_reported_as_an_unknown_environment() {
    let text = r#"{"environment": "x", "exchange": {"x": {"rest_base": 1}}}"#;
    let ps = problems(resolve(file(text), &no_env, &CliOverrides::default()).unwrap_err());
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert_eq!(ps[0].path, "exchange.x.rest_base");
}

#[test]
fn exchange_table_and_names_are_validated() {
    let text = r#"{"exchange": {}}"#;
    let ps = problems(resolve(file(text), &no_env, &CliOverrides::default()).unwrap_err());
    assert_eq!(ps[0].path, "exchange");
    assert_eq!(ps[0].message, "expected at least one environment");

    let text = r#"{"environment": "ok", "exchange": {"Bad Name": {"rest_base": "http://127.0.0.1/trade-api/v2"}, "ok": {"rest_base": "http://127.0.0.1/trade-api/v2", "rate_limit_tier": "gold"}}}"#;
    let ps = problems(resolve(file(text), &no_env, &CliOverrides::default()).unwrap_err());
    let paths: Vec<&str> = ps.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        ["exchange.ok.rate_limit_tier", "exchange[\"Bad Name\"]"]
    );
    assert_eq!(
        ps[0].message,
        "expected one of basic, advanced, premier, paragon, prime, got \"gold\""
    );
}

#[test]
fn problems_from_every_layer_are_reported_together() {
    let env = env_of(&[
        ("KALSHI_SERIES", "KXBTC15M-26SEP071915-15"),
        ("KALSHI_ENVIRONMENT", "UAT"),
    ]);
    let cli = CliOverrides {
        series: Some("x y".to_owned()),
        ..Default::default()
    };
    let e = resolve(file(r#"{"snapshot_ms": "fast"}"#), &env, &cli).unwrap_err();
    let s = e.to_string();
    assert!(
        s.starts_with("configuration (file config/runtime.json): 4 problems:\n  - snapshot_ms: "),
        "{s}"
    );
    let ps = problems(e);
    assert_eq!(ps.len(), 4, "{s}");
    assert_eq!(
        ps[0].origin,
        Origin::File(PathBuf::from("config/runtime.json"))
    );
    assert_eq!(ps[1].origin, Origin::Env("KALSHI_ENVIRONMENT"));
    assert_eq!(ps[2].origin, Origin::Env("KALSHI_SERIES"));
    assert_eq!(ps[3].origin, Origin::Cli("--series"));
    assert!(s.contains(
        "series (from $KALSHI_SERIES): \"KXBTC15M-26SEP071915-15\" looks like a market or event \
         ticker; a series ticker has no '-' (did you mean \"KXBTC15M\"?)"
    ));
    assert!(
        s.contains("series (from --series): may contain only A-Z, 0-9, '_' and '.', got \"x y\"")
    );
}

#[test]
fn non_utf8_environment_value_is_reported() {
    let env = env_of(&[("KALSHI_DATA_DIR", "data\u{FFFD}dir")]);
    let ps = problems(resolve(None, &env, &CliOverrides::default()).unwrap_err());
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].path, "data_dir");
    assert_eq!(ps[0].message, "is not valid UTF-8");
}

#[test]
fn entry_secrets_paths_override_the_top_level() {
    let cli = CliOverrides {
        environment: Some("demo".to_owned()),
        ..Default::default()
    };
    let demo = resolve(None, &no_env, &cli).unwrap();
    assert_eq!(demo.env_file, PathBuf::from("secrets/demo.env"));
    assert_eq!(
        demo.pem_file,
        PathBuf::from("secrets/kalshi_demo_secret.pem")
    );
    let prod = resolve(None, &no_env, &CliOverrides::default()).unwrap();
    assert_eq!(prod.env_file, PathBuf::from("secrets/.env"));

    let text = r#"{"env_file": "elsewhere/.env", "exchange": {"a": {"rest_base": "http://127.0.0.1/trade-api/v2", "pem_file": "a.pem"}}, "environment": "a"}"#;
    let cfg = resolve(file(text), &no_env, &CliOverrides::default()).unwrap();
    assert_eq!(cfg.env_file, PathBuf::from("elsewhere/.env"));
    assert_eq!(cfg.pem_file, PathBuf::from("a.pem"));
}

#[test]
fn a_file_table_replaces_the_built_in_one() {
    let text = r#"{"environment": "sim", "exchange": {"sim": {"rest_base": "http://127.0.0.1:8970/trade-api/v2"}}}"#;
    let cli = CliOverrides {
        environment: Some("prod".to_owned()),
        ..Default::default()
    };
    let e = resolve(file(text), &no_env, &cli).unwrap_err();
    assert!(
        e.to_string()
            .contains("unknown environment \"prod\" (config/runtime.json defines: sim)"),
        "{e}"
    );
}

#[test]
fn relative_paths_resolve_against_the_given_base() {
    let text = r#"{"data_dir": "/abs/data", "labels_path": "rel/labels.json"}"#;
    let cfg = resolve(file(text), &no_env, &CliOverrides::default())
        .unwrap()
        .with_base_dir(Path::new("/work/here"));
    assert_eq!(cfg.data_dir, PathBuf::from("/abs/data"));
    assert_eq!(cfg.labels_path, PathBuf::from("/work/here/rel/labels.json"));
    assert_eq!(
        cfg.pem_file,
        PathBuf::from("/work/here/secrets/kalshi_secret.pem")
    );
    assert_eq!(cfg.env_file, PathBuf::from("/work/here/secrets/.env"));
    for p in [
        &cfg.unresolved_path,
        &cfg.strategy_path,
        &cfg.reports_dir,
        &cfg.live_dir,
    ] {
        assert!(p.starts_with("/work/here"), "{}", p.display());
    }
}

#[test]
fn summary_shows_values_and_overrides_only() {
    let env = env_of(&[("KALSHI_SERIES", "KXETH15M")]);
    let cli = CliOverrides {
        base_url: Some("http://127.0.0.1:8970/trade-api/v2".to_owned()),
        ..Default::default()
    };
    let cfg = resolve(file("{}"), &env, &cli).unwrap();
    let s = cfg.summary();
    assert_eq!(s, cfg.to_string());
    for part in [
        "environment=prod",
        "rest_base=http://127.0.0.1:8970/trade-api/v2",
        "ws_url=ws://127.0.0.1:8970/trade-api/ws/v2",
        "rate_limit_tier=basic",
        "series=KXETH15M",
        "snapshot_ms=100",
        "use_yes_price=true",
        "data_dir=pipeline_data/highres",
        "pem_file=secrets/kalshi_secret.pem",
        "config=config/runtime.json",
        "overrides=[rest_base from --base-url, series from $KALSHI_SERIES, ws_url from --base-url]",
    ] {
        assert!(s.contains(part), "{part} missing from {s}");
    }
    assert!(!s.contains('\n'));
    let plain = resolve(None, &no_env, &CliOverrides::default())
        .unwrap()
        .summary();
    assert!(plain.contains("config=(built-in defaults)"));
    assert!(!plain.contains("overrides="));
}

#[test]
fn rest_url_joins_paths() {
    let cfg = resolve(None, &no_env, &CliOverrides::default()).unwrap();
    assert_eq!(cfg.rest_url("/markets"), format!("{PROD_REST}/markets"));
    assert_eq!(cfg.rest_url("markets"), format!("{PROD_REST}/markets"));
    let cli = CliOverrides {
        base_url: Some("http://127.0.0.1:8970".to_owned()),
        ws_url: Some("ws://127.0.0.1:8970".to_owned()),
        ..Default::default()
    };
    let bare = resolve(None, &no_env, &cli).unwrap();
    assert_eq!(bare.rest_url("/markets"), "http://127.0.0.1:8970/markets");
    assert!(bare.is_loopback());
}

#[test]
fn rate_limit_tiers_round_trip_and_match_the_api_table() {
    for t in RateLimitTier::ALL {
        assert_eq!(t.as_str().parse::<RateLimitTier>(), Ok(t));
        assert_eq!(t.to_string(), t.as_str());
    }
    assert_eq!(RateLimitTier::Basic.read_tokens_per_sec(), 200);
    assert_eq!(RateLimitTier::Basic.write_tokens_per_sec(), 100);
    assert_eq!(RateLimitTier::Basic.write_capacity_tokens(), 100);
    assert_eq!(RateLimitTier::Advanced.write_capacity_tokens(), 600);
    assert_eq!(RateLimitTier::Prime.read_tokens_per_sec(), 4_000);
    assert!("Basic".parse::<RateLimitTier>().is_err());
}

#[derive(Debug, Parser)]
struct TestCli {
    #[command(flatten)]
    config: CliOverrides,
    #[arg(long)]
    live: bool,
}

#[test]
fn cli_flags_parse_when_flattened() {
    TestCli::command().debug_assert();
    let cli = TestCli::try_parse_from([
        "tool",
        "--config",
        "config/sim.json",
        "--environment",
        "sim",
        "--base-url",
        "http://127.0.0.1:9/trade-api/v2",
        "--ws-url",
        "ws://127.0.0.1:9/trade-api/ws/v2",
        "--series",
        "KXETH15M",
        "--live",
    ])
    .unwrap();
    assert!(cli.live);
    assert_eq!(
        cli.config,
        CliOverrides {
            config: Some(PathBuf::from("config/sim.json")),
            environment: Some("sim".to_owned()),
            base_url: Some("http://127.0.0.1:9/trade-api/v2".to_owned()),
            ws_url: Some("ws://127.0.0.1:9/trade-api/ws/v2".to_owned()),
            series: Some("KXETH15M".to_owned()),
        }
    );
    assert_eq!(cli.config.config_path(), Path::new("config/sim.json"));
    let bare = TestCli::try_parse_from(["tool"]).unwrap();
    assert_eq!(bare.config, CliOverrides::default());
    assert_eq!(bare.config.config_path(), Path::new(DEFAULT_CONFIG_PATH));
    let help = TestCli::command().render_long_help().to_string();
    assert!(help.contains("Runtime configuration"), "{help}");
    assert!(help.contains("--base-url <URL>"), "{help}");
}

#[test]
fn shipped_runtime_json_loads_and_validates() {
    let path = shipped("runtime.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let cfg = resolve(Some((&path, &text)), &no_env, &CliOverrides::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.source.as_deref(), Some(path.as_path()));
    assert!(!cfg.is_loopback());
    // It also validates with every environment it defines.
    for env in ["prod", "demo"] {
        let cli = CliOverrides {
            environment: Some(env.to_owned()),
            ..Default::default()
        };
        resolve(Some((&path, &text)), &no_env, &cli).unwrap_or_else(|e| panic!("{env}: {e}"));
    }
}

#[test]
fn shipped_sim_json_stays_on_loopback_and_under_pipeline_data_sim() {
    let path = shipped("sim.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let cfg = resolve(Some((&path, &text)), &no_env, &CliOverrides::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.environment, "sim");
    assert!(cfg.is_loopback(), "{}", cfg.summary());
    assert_eq!(cfg.rest_base.as_str(), "http://127.0.0.1:8970/trade-api/v2");
    assert_eq!(cfg.ws_url.as_str(), "ws://127.0.0.1:8970/trade-api/ws/v2");
    for p in [
        &cfg.env_file,
        &cfg.pem_file,
        &cfg.data_dir,
        &cfg.labels_path,
        &cfg.unresolved_path,
        &cfg.strategy_path,
        &cfg.reports_dir,
        &cfg.live_dir,
    ] {
        assert!(p.starts_with("pipeline_data/sim"), "{}", p.display());
    }
    // The sim config cannot be pointed at the real exchange by name.
    let cli = CliOverrides {
        environment: Some("prod".to_owned()),
        ..Default::default()
    };
    assert!(resolve(Some((&path, &text)), &no_env, &cli).is_err());
}

#[test]
fn from_cli_in_reads_the_default_file_or_falls_back_to_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    // No config/runtime.json under base: the built-in defaults, paths made absolute.
    let cfg = RuntimeConfig::from_cli_in(&CliOverrides::default(), base, &no_env).unwrap();
    assert_eq!(cfg.source, None);
    assert_eq!(cfg.data_dir, base.join("pipeline_data/highres"));

    std::fs::create_dir_all(base.join("config")).unwrap();
    std::fs::write(
        base.join("config/runtime.json"),
        r#"{"series": "KXETH15M", "data_dir": "/abs/d"}"#,
    )
    .unwrap();
    let env = env_of(&[("KALSHI_DATA_DIR", "from/env")]);
    let cfg = RuntimeConfig::from_cli_in(&CliOverrides::default(), base, &env).unwrap();
    assert_eq!(
        cfg.source.as_deref(),
        Some(Path::new("config/runtime.json"))
    );
    assert_eq!(cfg.series.as_str(), "KXETH15M");
    assert_eq!(cfg.data_dir, base.join("from/env"));
    assert_eq!(cfg.labels_path, base.join("pipeline_data/labels.json"));

    // A broken default file is an error, not a silent fallback.
    std::fs::write(base.join("config/runtime.json"), "{").unwrap();
    let e = RuntimeConfig::from_cli_in(&CliOverrides::default(), base, &no_env).unwrap_err();
    assert!(matches!(e, ConfigError::Syntax { .. }), "{e}");
}

#[test]
fn load_reads_the_named_file_and_makes_paths_absolute() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rt.json");
    // Fields that no environment variable overrides, so the test holds whatever is exported.
    std::fs::write(
        &path,
        r#"{"snapshot_ms": 250, "labels_path": "/abs/labels.json"}"#,
    )
    .unwrap();
    let cli = CliOverrides {
        config: Some(PathBuf::from("ignored.json")),
        series: Some("KXSOL15M".to_owned()),
        ..Default::default()
    };
    let cfg = RuntimeConfig::load(&path, &cli).unwrap();
    assert_eq!(cfg.snapshot_ms, 250);
    assert_eq!(cfg.labels_path, PathBuf::from("/abs/labels.json"));
    assert_eq!(cfg.series.as_str(), "KXSOL15M");
    assert!(cfg.strategy_path.is_absolute());
    assert_eq!(cfg.source.as_deref(), Some(path.as_path()));
}

#[test]
fn an_explicit_missing_config_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let cli = CliOverrides {
        config: Some(PathBuf::from("config/nope.json")),
        ..Default::default()
    };
    let e = RuntimeConfig::from_cli_in(&cli, dir.path(), &no_env).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("config/nope.json: cannot read config file"),
        "{e}"
    );
}

#[test]
fn built_in_defaults_parse_cleanly() {
    let v = json::parse_strict(DEFAULT_RUNTIME_JSON).unwrap();
    let mut ps = Vec::new();
    let layer = file_layer(&v, &mut Sink::new(Origin::Default, &mut ps));
    assert!(ps.is_empty(), "{ps:?}");
    assert!(layer.exchange.is_some() && layer.series.is_some());
}
