//! A standalone retry policy and its PRNG, for the conformance vectors and hosts that drive
//! retries themselves (a pipeline owns its own retry policy).

use tripwire_core::{FailureInfo, GiveUp, Retry, RetryConfig, RetryDecision, RetryState, Rng};
use wasm_bindgen::prelude::*;

use crate::convert::{
    config_error, dur_ms, instant, opt_duration, opt_instant, parse, seed, type_error, Live,
};
use crate::out::{put, ATTEMPTS, KIND, TIME};

/// Give-up reason names, indexed by the code `failure` writes.
const GIVE_UP_NAMES: [&str; 5] = [
    "",
    "exhausted",
    "notRetryable",
    "budgetExhausted",
    "deadlineExceeded",
];

fn give_up_code(reason: GiveUp) -> f64 {
    GIVE_UP_NAMES
        .iter()
        .position(|n| *n == reason.as_str())
        .unwrap_or(0) as f64
}

/// Give-up reason names by code.
#[wasm_bindgen(js_name = giveUpNames)]
#[must_use]
pub fn give_up_names() -> Vec<String> {
    GIVE_UP_NAMES.iter().map(|s| (*s).to_owned()).collect()
}

/// The low-level retry policy: calls are numbered from 0 in `begin` order.
#[wasm_bindgen(js_name = RawRetry)]
#[derive(Debug)]
pub struct RawRetry {
    inner: Retry,
    rng: Rng,
    calls: Vec<RetryState>,
    _live: Live,
}

#[wasm_bindgen(js_class = RawRetry)]
impl RawRetry {
    /// A retry policy with its PRNG seeded from `seed_hi:seed_lo`; throws the config error.
    #[wasm_bindgen(constructor)]
    pub fn new(config: JsValue, seed_hi: u32, seed_lo: u32) -> Result<RawRetry, JsValue> {
        let config: RetryConfig = parse(config).map_err(|e| config_error(&e))?;
        let inner = Retry::new(config).map_err(|e| config_error(&e))?;
        Ok(RawRetry {
            inner,
            rng: Rng::new(seed(seed_hi, seed_lo)),
            calls: Vec::new(),
            _live: Live::new(),
        })
    }

    fn call(&mut self, call: u32) -> Result<&mut RetryState, JsValue> {
        self.calls
            .get_mut(call as usize)
            .ok_or_else(|| type_error("unknown retry call"))
    }

    /// Start a call at `now`; returns its number.
    pub fn begin(&mut self, now: f64) -> u32 {
        self.calls.push(self.inner.start(instant(now)));
        u32::try_from(self.calls.len() - 1).unwrap_or(u32::MAX)
    }

    /// The attempt number now starting (1 for the first).
    pub fn attempt(&mut self, call: u32) -> Result<u32, JsValue> {
        let retry = &self.inner;
        let state = self
            .calls
            .get_mut(call as usize)
            .ok_or_else(|| type_error("unknown retry call"))?;
        Ok(retry.begin_attempt(state))
    }

    /// Decide after a failed attempt. Returns 0 "retry" (attempt and delay in the scratch
    /// buffer), 1 "give up" (the reason's code, see `giveUpNames`), 2 a decision this glue
    /// does not know.
    pub fn failure(
        &mut self,
        call: u32,
        retryable: bool,
        retry_after: f64,
        now: f64,
        deadline: f64,
    ) -> Result<u32, JsValue> {
        let info = FailureInfo {
            retryable,
            retry_after: opt_duration(retry_after),
        };
        self.call(call)?;
        let state = &mut self.calls[call as usize];
        let decision = self.inner.on_failure(
            state,
            info,
            instant(now),
            opt_instant(deadline),
            &mut self.rng,
        );
        Ok(match decision {
            RetryDecision::Retry { attempt, delay } => {
                put(ATTEMPTS, f64::from(attempt));
                put(TIME, dur_ms(delay));
                0
            }
            RetryDecision::GiveUp { reason } => {
                put(KIND, give_up_code(reason));
                1
            }
            // Non-exhaustive in the core.
            _ => 2,
        })
    }

    /// A successful attempt (refills the budget).
    pub fn success(&mut self, call: u32) -> Result<(), JsValue> {
        let state = *self.call(call)?;
        self.inner.on_success(&state);
        Ok(())
    }

    /// Budget tokens left, NaN without a budget.
    pub fn budget(&self) -> f64 {
        self.inner.budget_tokens().unwrap_or(f64::NAN)
    }
}
