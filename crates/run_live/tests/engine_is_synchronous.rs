//! ARCHITECTURE.md: the runner's engine is synchronous and reads no clock — the wall time is
//! passed in — so tests drive it on a virtual clock and replay and live share one code path.
//! A source check: the engine module names no async runtime, network client or clock.

#[test]
fn the_engine_uses_no_async_runtime_network_or_clock() {
    let src: String = include_str!("../src/engine.rs")
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    for banned in [
        "tokio",
        "reqwest",
        "SystemTime",
        "Instant::now",
        "market_data::rest",
        "std::net",
    ] {
        assert!(!src.contains(banned), "src/engine.rs mentions {banned}");
    }
    // And the features come from the one implementation, through the runtime.
    assert!(
        !src.contains("FeatureState"),
        "src/engine.rs must not compute features itself"
    );
}
