//! A build without the `store` feature (the npm package's browser module): a config asking for
//! a store or a shared breaker is refused by path, and everything else works as in a full
//! build. Run by `cargo test -p tripwire-core --no-default-features --test no_store`
//! (scripts/ci/test-rust.sh); in a full build this file is empty.
#![cfg(not(feature = "store"))]

use tripwire_core::pipeline::{Pipeline, PipelineConfig};

fn refusal(json: &str) -> String {
    PipelineConfig::from_json(json)
        .expect_err("refused")
        .to_string()
}

#[test]
fn a_store_is_refused_by_path() {
    let text = refusal(r#"{"rateLimit": {"rate": "10/s"}, "store": {"key": "k"}}"#);
    assert!(
        text.starts_with("store: is not in this build of tripwire"),
        "{text}"
    );
    let text = refusal(r#"{"circuitBreaker": {"share": {"mode": "signal"}}}"#);
    assert!(
        text.starts_with("circuitBreaker.share: is not in this build of tripwire"),
        "{text}"
    );
    // Even a store config that a full build would refuse for another reason names the build.
    let text = refusal(r#"{"store": {"kee": 1}}"#);
    assert!(text.starts_with("store: is not in this build"), "{text}");
}

#[test]
fn no_store_is_no_store_and_the_rest_works() {
    let config = PipelineConfig::from_json(
        r#"{"rateLimit": {"rate": "10/s"}, "store": null, "circuitBreaker": {"share": null}}"#,
    )
    .expect("null means none, as in a full build");
    assert!(config.store.is_none());
    let p = Pipeline::from_json(r#"{"retry": {"maxRetries": 2}}"#, 7).expect("pipeline");
    assert_eq!(p.stats().store, None);
    assert_eq!(p.stats().share, None);
}
