//! The private Redis of the test run (`TRIPWIRE_REDIS_URL`, started by
//! `scripts/ci/test-rust.sh`): a client and an admin connection, or `None` (with a note) when
//! there is none — unless `TRIPWIRE_REQUIRE_REDIS` is set, where a missing Redis fails.

/// The client and an admin connection, or `None` when no Redis was given.
pub fn redis() -> Option<(redis::Client, redis::Connection)> {
    let Some(url) = std::env::var("TRIPWIRE_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        #[allow(clippy::print_stdout)]
        {
            println!("TRIPWIRE_REDIS_URL unset: no Redis to run on");
        }
        assert!(
            std::env::var("TRIPWIRE_REQUIRE_REDIS").is_err(),
            "Redis is required here"
        );
        return None;
    };
    let client = redis::Client::open(url.as_str()).expect("a valid Redis URL");
    let admin = client.get_connection().expect("Redis is up");
    Some((client, admin))
}
