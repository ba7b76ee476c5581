//! Loading the policy to simulate and validating policy files, with the core's own parser.

use std::fmt::Write as _;

use tripwire_core::pipeline::{PipelineConfig, PolicyFile};
use tripwire_core::ConfigError;

/// Why a policy could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// The JSON is not a valid policy file (or pipeline config).
    Invalid(ConfigError),
    /// `--name` is missing or wrong; the message lists the names there are.
    Name(String),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Invalid(e) => {
                for (i, issue) in e.issues().iter().enumerate() {
                    if i > 0 {
                        f.write_char('\n')?;
                    }
                    write!(f, "{issue}")?;
                }
                Ok(())
            }
            LoadError::Name(m) => f.write_str(m),
        }
    }
}

/// The pipeline `name` of a policy file (`{"policies": {...}}`), or a bare pipeline config.
/// Without a name, a file holding one pipeline gives that one. The pipeline inherits the
/// file's `seed` when it has none of its own. Returns the config and its name.
pub fn load_pipeline(
    text: &str,
    name: Option<&str>,
) -> Result<(PipelineConfig, String), LoadError> {
    let is_file = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .is_some_and(|v| v.get("policies").is_some());
    if !is_file {
        let config = PipelineConfig::from_json(text).map_err(LoadError::Invalid)?;
        return Ok((config, name.unwrap_or("pipeline").to_owned()));
    }
    let file = PolicyFile::from_json(text).map_err(LoadError::Invalid)?;
    let names: Vec<&str> = file.names().collect();
    let chosen = match name {
        Some(n) if names.contains(&n) => n.to_owned(),
        Some(n) => {
            return Err(LoadError::Name(format!(
                "no pipeline named {n:?} in the policy file; it defines: {}",
                names.join(", ")
            )))
        }
        None if names.len() == 1 => names[0].to_owned(),
        None => {
            return Err(LoadError::Name(format!(
                "the policy file defines {} pipelines ({}); pick one with --name",
                names.len(),
                names.join(", ")
            )))
        }
    };
    let mut config = file.policies[&chosen].clone();
    if config.seed.is_none() {
        config.seed = file.seed;
    }
    Ok((config, chosen))
}

/// The policies a pipeline config composes, in its order, e.g. `rateLimit → bulkhead → ...`.
#[must_use]
pub fn describe(config: &PipelineConfig) -> String {
    let order = config
        .order
        .clone()
        .unwrap_or_else(|| tripwire_core::pipeline::DEFAULT_ORDER.to_vec());
    let present: Vec<&str> = order
        .iter()
        .filter(|s| {
            use tripwire_core::pipeline::Stage;
            match s {
                Stage::RateLimit => config.rate_limit.is_some(),
                Stage::Bulkhead => config.bulkhead.is_some(),
                Stage::CircuitBreaker => config.circuit_breaker.is_some(),
                Stage::Retry => config.retry.is_some(),
                Stage::Timeout => config.timeout.is_some(),
                Stage::Fallback => config.fallback.is_some(),
                _ => false,
            }
        })
        .map(|s| s.as_str())
        .collect();
    if present.is_empty() {
        "no policies (calls pass straight through)".to_owned()
    } else {
        present.join(" → ")
    }
}

/// The outcome of `tripwire validate` on one file's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Validation {
    /// Valid: one line per pipeline, `name: policies`.
    Valid(Vec<String>),
    /// Refused: each issue as `path: reason`.
    Invalid(Vec<String>),
}

/// Validate a policy file with the core.
#[must_use]
pub fn validate(text: &str) -> Validation {
    match PolicyFile::from_json(text) {
        Ok(file) => Validation::Valid(
            file.policies
                .iter()
                .map(|(name, config)| format!("{name}: {}", describe(config)))
                .collect(),
        ),
        Err(e) => Validation::Invalid(e.issues().iter().map(ToString::to_string).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_only_pipeline_or_the_named_one() {
        let one = r#"{"seed": 9, "policies": {"api": {"retry": {}}}}"#;
        let (c, n) = load_pipeline(one, None).unwrap();
        assert_eq!(n, "api");
        assert_eq!(c.seed, Some(9));
        let two = r#"{"policies": {"a": {}, "b": {"timeout": {}}}}"#;
        let e = load_pipeline(two, None).unwrap_err().to_string();
        assert!(e.contains("pick one with --name"), "{e}");
        assert!(load_pipeline(two, Some("b")).unwrap().0.timeout.is_some());
        let e = load_pipeline(two, Some("c")).unwrap_err().to_string();
        assert!(e.contains("it defines: a, b"), "{e}");
        let (c, n) = load_pipeline(r#"{"timeout": {"perAttempt": "1s"}}"#, None).unwrap();
        assert_eq!(n, "pipeline");
        assert!(c.timeout.is_some());
    }

    #[test]
    fn describes_in_order() {
        let (c, _) = load_pipeline(
            r#"{"retry": {}, "circuitBreaker": {}, "timeout": {}, "order": ["retry", "circuitBreaker", "timeout"]}"#,
            None,
        )
        .unwrap();
        assert_eq!(describe(&c), "retry → circuitBreaker → timeout");
        assert_eq!(
            describe(&PipelineConfig::default()),
            "no policies (calls pass straight through)"
        );
    }
}
