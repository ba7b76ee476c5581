//! Runs tripwire's store requests ([`tripwire_core::store`]) through Redis with the `redis`
//! crate, keeping the rules of SCALE-OUT.md:
//!
//! - `EVALSHA`; on `NOSCRIPT`, and only then, `EVAL` once.
//! - Never resend after a timeout or a dropped connection: report `Timeout` / `Unavailable`.
//!   The connection is then dropped (a late reply would answer the next request) and opened
//!   again, lazily, for the next request.
//! - The request's timeout is enforced on the socket (read and write); connecting is bounded
//!   by it too.
//! - Any other error reply is a deployment mistake (`Failed`), not unavailability.
//!
//! The user hands over their own [`redis::Client`]; nothing connects until a request is run.

use std::time::Duration;

use tripwire_core::store::{StoreReply, StoreRequest};

/// A Redis store for tripwire's store requests (one connection, used by one thread).
pub struct RedisStore {
    client: redis::Client,
    conn: Option<redis::Connection>,
    /// `EVAL`s sent after a `NOSCRIPT` (one per connection, per script, at most).
    pub evals: u64,
    /// Requests run (each sent at most once).
    pub sent: u64,
}

impl RedisStore {
    /// A store over `client`'s server.
    #[must_use]
    pub fn new(client: redis::Client) -> RedisStore {
        RedisStore {
            client,
            conn: None,
            evals: 0,
            sent: 0,
        }
    }

    /// Run `request` once and return its reply.
    pub fn run(&mut self, request: &StoreRequest) -> StoreReply {
        self.sent += 1;
        match self.eval(request, true) {
            Err(e) if is_no_script(&e) => {
                self.evals += 1;
                match self.eval(request, false) {
                    Ok(values) => StoreReply::Values(values),
                    Err(e) => self.fail(&e),
                }
            }
            Ok(values) => StoreReply::Values(values),
            Err(e) => self.fail(&e),
        }
    }

    fn eval(&mut self, request: &StoreRequest, by_sha: bool) -> redis::RedisResult<Vec<i64>> {
        let timeout = request.timeout.max(Duration::from_millis(1));
        if self.conn.is_none() {
            self.conn = Some(self.client.get_connection_with_timeout(timeout)?);
        }
        let conn = self.conn.as_mut().expect("connected above");
        conn.set_read_timeout(Some(timeout))?;
        conn.set_write_timeout(Some(timeout))?;
        let mut cmd = if by_sha {
            let mut c = redis::cmd("EVALSHA");
            c.arg(request.script.sha1);
            c
        } else {
            let mut c = redis::cmd("EVAL");
            c.arg(request.script.source);
            c
        };
        cmd.arg(request.keys.len())
            .arg(&request.keys)
            .arg(&request.args);
        cmd.query(conn)
    }

    fn fail(&mut self, e: &redis::RedisError) -> StoreReply {
        if e.is_timeout() {
            self.conn = None;
            StoreReply::Timeout
        } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
            self.conn = None;
            StoreReply::Unavailable
        } else {
            StoreReply::Failed(e.to_string())
        }
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("connected", &self.conn.is_some())
            .field("evals", &self.evals)
            .field("sent", &self.sent)
            .finish()
    }
}

fn is_no_script(e: &redis::RedisError) -> bool {
    e.code() == Some("NOSCRIPT")
}
