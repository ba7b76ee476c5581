//! Configuration primitives shared by every policy: durations, rates, and JSON parsing that
//! names the field path of every problem.
//!
//! Durations: a JSON number is milliseconds; a string carries its unit (`"250ms"`, `"30s"`,
//! `"1.5m"`, `"2h"`, `"500us"`, `"1m30s"`). Rates: `"50/s"`, `"1000/m"`, `"5/10s"` or
//! `{"limit": 5, "period": "10s"}`. Each policy's own config struct lives beside the policy.

use core::fmt;
use core::time::Duration;

use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::decimal::Float;
use crate::error::{ConfigError, Quoted};

/// The longest duration a config may hold: 100 years. Longer is surely a unit mistake.
pub const MAX_CONFIG_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Parse a JSON document into `T`, naming the field path of the first problem. (tripwire's
/// own config types also read themselves, [`crate::FromTree::from_json_str`]: the same value
/// or the same error by a smaller route, the one every binding takes.)
pub fn from_json_str<T: DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    crate::tree::deserialize(json_tree(text)?)
}

/// JSON text as a tree; a syntax error has no path.
pub(crate) fn json_tree(text: &str) -> Result<crate::tree::Node, ConfigError> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| ConfigError::new("", format!("invalid JSON: {e}")))?;
    Ok(crate::tree::Node::from(value))
}

/// Deserialize an already-parsed JSON value into `T`, naming the field path of the first problem.
pub fn from_json_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ConfigError> {
    crate::tree::deserialize(crate::tree::Node::from(value))
}

/// Deserialize `T` from any serde deserializer (a YAML document, a TOML table...): read into
/// the JSON-like tree every binding's config goes through ([`crate::tree`]), then deserialized
/// as [`from_json_value`] does, naming the field path of the first problem. A problem the
/// source format itself reports (a syntax error, a non-string key, a NaN or infinite number)
/// has no path. (`T` must own its data: configs do.)
pub fn from_deserializer<'de, T, D>(deserializer: D) -> Result<T, ConfigError>
where
    T: DeserializeOwned,
    D: Deserializer<'de>,
    D::Error: fmt::Display,
{
    let node = crate::tree::Node::deserialize(deserializer)
        .map_err(|e| ConfigError::new("", e.to_string()))?;
    crate::tree::deserialize(node)
}

/// A duration from a config file, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ConfigDuration(pub Duration);

impl ConfigDuration {
    /// From milliseconds.
    #[must_use]
    pub const fn from_millis(ms: u64) -> ConfigDuration {
        ConfigDuration(Duration::from_millis(ms))
    }

    /// From seconds.
    #[must_use]
    pub const fn from_secs(s: u64) -> ConfigDuration {
        ConfigDuration(Duration::from_secs(s))
    }

    /// The duration.
    #[must_use]
    pub const fn get(self) -> Duration {
        self.0
    }

    /// Nanoseconds, saturating.
    #[must_use]
    pub fn nanos(self) -> u64 {
        crate::time::duration_nanos(self.0)
    }
}

impl From<Duration> for ConfigDuration {
    fn from(d: Duration) -> Self {
        ConfigDuration(d)
    }
}

fn millis_to_duration(ms: f64) -> Result<Duration, String> {
    if !ms.is_finite() {
        return Err(format!(
            "must be a finite number of milliseconds, got {}",
            Float(ms)
        ));
    }
    if ms < 0.0 {
        return Err(format!("must be >= 0, got {}", Float(ms)));
    }
    let d = Duration::try_from_secs_f64(ms / 1000.0)
        .map_err(|_| format!("too large: {}ms", Float(ms)))?;
    if d > MAX_CONFIG_DURATION {
        return Err(format!(
            "too large: {}ms (the limit is 100 years)",
            Float(ms)
        ));
    }
    Ok(d)
}

/// Parse `"250ms"`, `"1.5m"`, `"1m30s"`. Units: ns, us, µs, ms, s, m, h, d.
///
/// When every number is an integer the sum is exact to the nanosecond (`"9007199254740993ns"`
/// is that many nanoseconds); a fraction anywhere makes the whole sum go through float
/// milliseconds, as a JSON number does.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration string".into());
    }
    let mut total_ms = 0.0_f64;
    // The exact sum in ns while every number is an integer; `None` once one is not.
    let mut exact_ns: Option<u128> = Some(0);
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!(
                "invalid duration {}: expected a number before {}",
                Quoted(text),
                Quoted(rest)
            ));
        }
        let (num, tail) = rest.split_at(num_len);
        // As `num.parse::<f64>()` would, without linking `core`'s float parser (decimal.rs).
        let value = crate::decimal::parse(num).ok_or_else(|| {
            format!(
                "invalid duration {}: {} is not a number",
                Quoted(text),
                Quoted(num)
            )
        })?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let (scale_ms, scale_ns) = match unit.trim() {
            "ns" => (1e-6, 1),
            "us" | "µs" => (1e-3, 1_000),
            "ms" => (1.0, 1_000_000),
            "s" => (1e3, 1_000_000_000),
            "m" => (60e3, 60_000_000_000),
            "h" => (3600e3, 3_600_000_000_000),
            "d" => (86_400e3, 86_400_000_000_000_u128),
            "" => {
                return Err(format!(
                    "invalid duration {}: a string needs a unit (ns, us, ms, s, m, h, d); use a number for milliseconds",
                    Quoted(text)
                ))
            }
            other => return Err(format!("invalid duration {}: unknown unit {}", Quoted(text), Quoted(other))),
        };
        total_ms += value * scale_ms;
        exact_ns = exact_ns.and_then(|sum| {
            let n: u128 = num.parse().ok()?;
            sum.checked_add(n.checked_mul(scale_ns)?)
        });
        rest = next;
    }
    match exact_ns {
        Some(ns) if ns <= MAX_CONFIG_DURATION.as_nanos() => Ok(Duration::from_nanos(ns as u64)),
        Some(_) => Err(format!(
            "too large: {} (the limit is 100 years)",
            Quoted(text)
        )),
        None => millis_to_duration(total_ms),
    }
}

const DURATION_EXPECTING: &str =
    "a duration: milliseconds as a number, or a string with a unit like \"250ms\" or \"30s\"";

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = ConfigDuration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(DURATION_EXPECTING)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ConfigDuration, E> {
        millis_to_duration(v as f64)
            .map(ConfigDuration)
            .map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ConfigDuration, E> {
        millis_to_duration(v as f64)
            .map(ConfigDuration)
            .map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<ConfigDuration, E> {
        millis_to_duration(v).map(ConfigDuration).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<ConfigDuration, E> {
        parse_duration(v).map(ConfigDuration).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DurationVisitor)
    }
}

impl crate::read::FromTree for ConfigDuration {
    fn read(node: crate::tree::Node, at: &crate::tree::At<'_>) -> Result<Self, crate::tree::Error> {
        use crate::tree::Node;
        let duration = match &node {
            Node::PosInt(n) => millis_to_duration(*n as f64),
            Node::NegInt(n) => millis_to_duration(*n as f64),
            Node::Float(f) => millis_to_duration(*f),
            Node::Str(s) => parse_duration(s),
            other => return Err(crate::read::invalid_type(other, DURATION_EXPECTING, at)),
        };
        duration
            .map(ConfigDuration)
            .map_err(|e| crate::read::custom(&e, at))
    }
}

impl Serialize for ConfigDuration {
    /// Serialized as milliseconds: an integer when whole, else a float when that float reads
    /// back to the same nanosecond (always below about 11 days). Past that a float cannot hold
    /// every nanosecond, so the duration is written as an exact `"<n>ns"` string instead:
    /// every duration round-trips exactly (a breaker restores its own snapshot).
    ///
    /// The float is used only below 2^53 ns: there the shortest decimal of `ns / 10^6` has a
    /// significand under 2^53, which a JSON parser reads back exactly (one correctly rounded
    /// division); above it serde_json's default parser may land a bit away.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.json_form() {
            DurationForm::Millis(ms) => s.serialize_u64(ms),
            DurationForm::Float(ms) => s.serialize_f64(ms),
            DurationForm::Nanos(ns) => s.collect_str(&format_args!("{ns}ns")),
        }
    }
}

/// A duration's whole milliseconds as `as_millis()` prints them (that is a `u128`, whose
/// formatting is 1.3 KB of the browser module): seconds, then three digits of milliseconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WholeMillis(pub Duration);

impl fmt::Display for WholeMillis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (secs, millis) = (self.0.as_secs(), self.0.subsec_millis());
        if secs == 0 {
            write!(f, "{millis}")
        } else {
            write!(f, "{secs}{millis:03}")
        }
    }
}

/// How a duration is written (see `ConfigDuration`'s `Serialize`).
pub(crate) enum DurationForm {
    /// Whole milliseconds.
    Millis(u64),
    /// Milliseconds as a float that reads back to the same nanosecond.
    Float(f64),
    /// `"<n>ns"`.
    Nanos(u64),
}

impl ConfigDuration {
    pub(crate) fn json_form(self) -> DurationForm {
        let ns = self.nanos();
        if ns % 1_000_000 == 0 {
            return DurationForm::Millis(ns / 1_000_000);
        }
        let ms = crate::time::nanos_to_millis_f64(ns);
        if ns < 1 << 53 && millis_to_duration(ms).is_ok_and(|d| d.as_nanos() == u128::from(ns)) {
            DurationForm::Float(ms)
        } else {
            DurationForm::Nanos(ns)
        }
    }
}

/// A rate: `limit` events per `period`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rate {
    /// Events allowed per period (>= 1).
    pub limit: u64,
    /// The period, in nanoseconds (>= 1).
    pub period_nanos: u64,
}

impl Rate {
    /// `limit` per `period`; `None` when either is zero.
    #[must_use]
    pub fn new(limit: u64, period: Duration) -> Option<Rate> {
        let period_nanos = crate::time::duration_nanos(period);
        (limit > 0 && period_nanos > 0).then_some(Rate {
            limit,
            period_nanos,
        })
    }

    /// The emission interval `period / limit`, rounded up to whole nanoseconds (so the
    /// rounded rate never exceeds the configured one).
    #[must_use]
    pub fn interval_nanos(self) -> u64 {
        self.period_nanos.div_ceil(self.limit).max(1)
    }

    /// One second's worth of this rate, at least 1: the default burst.
    #[must_use]
    pub fn per_second(self) -> u64 {
        let per = u128::from(self.limit) * 1_000_000_000 / u128::from(self.period_nanos);
        u64::try_from(per).unwrap_or(u64::MAX).max(1)
    }
}

/// Parse `"50/s"`, `"1000/m"`, `"5/10s"`, `"1/1.5h"`.
pub fn parse_rate(text: &str) -> Result<Rate, String> {
    let (limit, period) = text.split_once('/').ok_or_else(|| {
        format!(
            "invalid rate {}: expected \"N/unit\" such as \"50/s\" or \"1000/m\"",
            Quoted(text)
        )
    })?;
    let limit: u64 = limit.trim().parse().map_err(|_| {
        format!(
            "invalid rate {}: {} is not a whole number",
            Quoted(text),
            Quoted(limit.trim())
        )
    })?;
    let period = period.trim();
    let period = if period.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        parse_duration(period)
    } else {
        parse_duration(&format!("1{period}"))
    }
    .map_err(|e| format!("invalid rate {}: {e}", Quoted(text)))?;
    if limit == 0 {
        return Err(format!(
            "invalid rate {}: the limit must be >= 1",
            Quoted(text)
        ));
    }
    Rate::new(limit, period)
        .ok_or_else(|| format!("invalid rate {}: the period must be > 0", Quoted(text)))
}

const RATE_EXPECTING: &str =
    "a rate: a string like \"50/s\" or an object {\"limit\": N, \"period\": duration}";

struct RateVisitor;

impl<'de> Visitor<'de> for RateVisitor {
    type Value = Rate;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(RATE_EXPECTING)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Rate, E> {
        parse_rate(v).map_err(E::custom)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Rate, A::Error> {
        let mut limit: Option<u64> = None;
        let mut period: Option<ConfigDuration> = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "limit" => limit = Some(map.next_value()?),
                "period" => period = Some(map.next_value()?),
                other => return Err(de::Error::unknown_field(other, &["limit", "period"])),
            }
        }
        let limit = limit.ok_or_else(|| de::Error::missing_field("limit"))?;
        let period = period.ok_or_else(|| de::Error::missing_field("period"))?;
        if limit == 0 {
            return Err(de::Error::custom("limit: must be >= 1, got 0"));
        }
        Rate::new(limit, period.0).ok_or_else(|| de::Error::custom("period: must be > 0"))
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RateVisitor)
    }
}

impl crate::read::FromTree for Rate {
    /// As `RateVisitor` reads one: its own refusals (an unknown or missing key, a zero) are
    /// named by the rate's path.
    fn read(node: crate::tree::Node, at: &crate::tree::At<'_>) -> Result<Self, crate::tree::Error> {
        use crate::read::{custom, invalid_type};
        use crate::tree::{At, Error, Node};
        let entries = match node {
            Node::Str(s) => return parse_rate(&s).map_err(|e| custom(&e, at)),
            Node::Map(entries) => entries,
            other => return Err(invalid_type(&other, RATE_EXPECTING, at)),
        };
        let mut limit: Option<u64> = None;
        let mut period: Option<ConfigDuration> = None;
        for (key, value) in entries {
            let here = At::Key(at, &key);
            match key.as_str() {
                "limit" => limit = Some(u64::read(value, &here)?),
                "period" => period = Some(ConfigDuration::read(value, &here)?),
                other => {
                    return Err(
                        <Error as de::Error>::unknown_field(other, &["limit", "period"]).at(at),
                    )
                }
            }
        }
        let limit = limit.ok_or_else(|| crate::read::missing("limit", at))?;
        let period = period.ok_or_else(|| crate::read::missing("period", at))?;
        if limit == 0 {
            return Err(custom("limit: must be >= 1, got 0", at));
        }
        Rate::new(limit, period.0).ok_or_else(|| custom("period: must be > 0", at))
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("limit", &self.limit)?;
        m.serialize_entry(
            "period",
            &ConfigDuration(Duration::from_nanos(self.period_nanos)),
        )?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_millis_are_written_as_as_millis_writes_them() {
        for d in [
            Duration::ZERO,
            Duration::from_nanos(999_999),
            Duration::from_millis(7),
            Duration::from_millis(1_000),
            Duration::from_millis(61_005),
            Duration::from_secs(10_u64.pow(12)),
            Duration::MAX,
        ] {
            assert_eq!(
                WholeMillis(d).to_string(),
                d.as_millis().to_string(),
                "{d:?}"
            );
        }
    }

    #[test]
    fn durations_parse_with_units() {
        let ms = |s: &str| parse_duration(s).unwrap().as_nanos();
        assert_eq!(ms("250ms"), 250_000_000);
        assert_eq!(ms("30s"), 30_000_000_000);
        assert_eq!(ms("1.5m"), 90_000_000_000);
        assert_eq!(ms("2h"), 7_200_000_000_000);
        assert_eq!(ms("500us"), 500_000);
        assert_eq!(ms("1m30s"), 90_000_000_000);
        assert!(parse_duration("250").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("5parsecs")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("1000000d")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn durations_deserialize_from_numbers_and_strings() {
        let d: ConfigDuration = serde_json::from_str("1500").unwrap();
        assert_eq!(d.get(), Duration::from_millis(1500));
        let d: ConfigDuration = serde_json::from_str("0.5").unwrap();
        assert_eq!(d.get(), Duration::from_micros(500));
        let d: ConfigDuration = serde_json::from_str("\"2s\"").unwrap();
        assert_eq!(d.get(), Duration::from_secs(2));
        let e = serde_json::from_str::<ConfigDuration>("-1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("must be >= 0"), "{e}");
        assert!(serde_json::from_str::<ConfigDuration>("true").is_err());
    }

    #[test]
    fn rates_parse_in_both_shapes() {
        assert_eq!(
            parse_rate("50/s").unwrap(),
            Rate {
                limit: 50,
                period_nanos: 1_000_000_000
            }
        );
        assert_eq!(parse_rate("1000/m").unwrap().period_nanos, 60_000_000_000);
        assert_eq!(parse_rate("5/10s").unwrap().period_nanos, 10_000_000_000);
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("x/s").is_err());
        assert!(parse_rate("5").is_err());
        let r: Rate = serde_json::from_str(r#"{"limit": 3, "period": "1s"}"#).unwrap();
        assert_eq!(r.interval_nanos(), 333_333_334);
        assert_eq!(r.per_second(), 3);
        assert_eq!(parse_rate("1/m").unwrap().per_second(), 1);
        assert!(serde_json::from_str::<Rate>(r#"{"limit": 3}"#).is_err());
        assert!(serde_json::from_str::<Rate>(r#"{"limit": 3, "period": "1s", "x": 1}"#).is_err());
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Outer {
        inner: Inner,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Inner {
        wait_time: ConfigDuration,
    }

    #[test]
    fn errors_name_the_field_path() {
        let e = from_json_str::<Outer>(r#"{"inner": {"waitTime": "5 parsecs"}}"#).unwrap_err();
        assert_eq!(e.issues()[0].path, "inner.waitTime");
        assert!(
            e.to_string()
                .starts_with("inner.waitTime: invalid duration"),
            "{e}"
        );
        let e = from_json_str::<Outer>(r#"{"inner": {"waitTime": 1, "extra": 2}}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `extra`"), "{e}");
        let e = from_json_str::<Outer>("{nope").unwrap_err();
        assert!(e.to_string().starts_with("invalid JSON"), "{e}");
    }
}
