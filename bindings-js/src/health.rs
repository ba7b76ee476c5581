//! The health registry: the core plans which checks are due and their deadlines; the JS
//! `HealthChecker` runs them concurrently, reports, and serves the report.

use tripwire_core::error::Quoted;
use tripwire_core::health::{CheckConfig, CheckId, CheckResult, HealthConfig, HealthRegistry};
use tripwire_core::{BreakerState, UsageError};
use wasm_bindgen::prelude::*;

use crate::convert::{config_error, instant, ms, opt_ms, parse, to_js, type_error, Live};
use crate::events::{check_status_code, health_status_code, write_health_event};

/// The low-level health registry.
#[wasm_bindgen(js_name = RawHealth)]
#[derive(Debug)]
pub struct RawHealth {
    inner: HealthRegistry,
    _live: Live,
}

fn due_list(due: &[tripwire_core::DueCheck]) -> Vec<f64> {
    due.iter()
        .flat_map(|d| [f64::from(d.id.get()), ms(d.deadline)])
        .collect()
}

#[wasm_bindgen(js_class = RawHealth)]
impl RawHealth {
    /// A registry from `{checks: {name: checkConfig}}` (undefined: empty); throws the config
    /// error.
    #[wasm_bindgen(constructor)]
    pub fn new(config: JsValue) -> Result<RawHealth, JsValue> {
        let config: HealthConfig = if config.is_undefined() || config.is_null() {
            HealthConfig::default()
        } else {
            parse(config).map_err(|e| config_error(&e))?
        };
        let inner = HealthRegistry::from_config(config).map_err(|e| config_error(&e))?;
        Ok(RawHealth {
            inner,
            _live: Live::new(),
        })
    }

    /// Add a check (config undefined: the defaults); returns its id; throws the config error
    /// with paths under `checks.<name>`.
    pub fn register(&mut self, name: &str, config: JsValue) -> Result<u32, JsValue> {
        let config: CheckConfig = if config.is_undefined() || config.is_null() {
            CheckConfig::default()
        } else {
            parse(config).map_err(|e| config_error(&e.within(&format!("checks.{name}"))))?
        };
        self.inner
            .register(name, config)
            .map(CheckId::get)
            .map_err(|e| config_error(&e))
    }

    /// Remove a check; false when none has that name.
    pub fn unregister(&mut self, name: &str) -> bool {
        self.inner.unregister(name)
    }

    /// The id of the check named `name`, NaN for none.
    pub fn id(&self, name: &str) -> f64 {
        self.inner
            .id(name)
            .map_or(f64::NAN, |id| f64::from(id.get()))
    }

    /// The name of check `id`.
    pub fn name(&self, id: u32) -> Option<String> {
        self.inner.name(CheckId::from_raw(id)).map(str::to_owned)
    }

    /// Check `id`'s status code (see `checkStatusNames`), 0 when not registered.
    #[wasm_bindgen(js_name = checkStatus)]
    pub fn check_status(&self, id: u32) -> f64 {
        self.inner
            .check_status(CheckId::from_raw(id))
            .map_or(0.0, check_status_code)
    }

    /// Start the checks whose time has come: `[id, deadline, id, deadline, ...]`.
    pub fn due(&mut self, now: f64) -> Vec<f64> {
        due_list(&self.inner.due(instant(now)))
    }

    /// Start every idle check now: `[id, deadline, ...]`.
    #[wasm_bindgen(js_name = dueAll)]
    pub fn due_all(&mut self, now: f64) -> Vec<f64> {
        due_list(&self.inner.due_all(instant(now)))
    }

    /// Report a run: 0 recorded, 1 no such check (unregistered meanwhile).
    pub fn report(
        &mut self,
        id: u32,
        ok: bool,
        latency: f64,
        error: Option<String>,
        now: f64,
    ) -> Result<u32, JsValue> {
        let result = CheckResult {
            ok,
            latency: crate::convert::opt_duration(latency).unwrap_or_default(),
            error: error.as_deref(),
        };
        match self
            .inner
            .report(CheckId::from_raw(id), result, instant(now))
        {
            Ok(()) => Ok(0),
            Err(UsageError::UnknownCheck) => Ok(1),
            Err(e) => Err(type_error(e.as_str())),
        }
    }

    /// Fail every run past its deadline.
    pub fn expire(&mut self, now: f64) {
        self.inner.expire(instant(now));
    }

    /// The overall status's code (see `healthStatusNames`).
    pub fn status(&self) -> f64 {
        health_status_code(self.inner.status())
    }

    /// 200 or 503.
    #[wasm_bindgen(js_name = httpStatus)]
    pub fn http_status(&self) -> u16 {
        self.inner.status().http_status()
    }

    /// When to call back, NaN for never.
    #[wasm_bindgen(js_name = pollTimeout)]
    pub fn poll_timeout(&self) -> f64 {
        opt_ms(self.inner.poll_timeout())
    }

    /// Tell the registry a breaker's state (by its name, e.g. `"open"`).
    #[wasm_bindgen(js_name = setBreaker)]
    pub fn set_breaker(&mut self, name: &str, state: &str) -> Result<(), JsValue> {
        let state = BreakerState::from_name(state)
            .ok_or_else(|| type_error(&format!("unknown breaker state {}", Quoted(state))))?;
        self.inner.set_breaker(name, state);
        Ok(())
    }

    /// Stop listing a breaker; false when it was not listed.
    #[wasm_bindgen(js_name = removeBreaker)]
    pub fn remove_breaker(&mut self, name: &str) -> bool {
        self.inner.remove_breaker(name)
    }

    /// The report as a plain object, stamped with the host's `timestamp` text.
    #[wasm_bindgen(js_name = reportJson)]
    pub fn report_json(&self, timestamp: &str) -> JsValue {
        tripwire_js_serde::tree_to_js(self.inner.report_tree(timestamp))
    }

    /// Counters and gauges as a plain object.
    pub fn metrics(&self) -> JsValue {
        to_js(&self.inner.metrics())
    }

    /// Write the oldest event to the scratch buffer; its type code, 0 when none.
    #[wasm_bindgen(js_name = nextEvent)]
    pub fn next_event(&mut self) -> u32 {
        self.inner
            .poll_event()
            .map_or(0, |e| write_health_event(&e))
    }
}
