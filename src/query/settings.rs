//! DataFusion settings from the environment, over vitalflow's own.
//!
//! Every DataFusion option `datafusion.a.b_c` can be set for the query
//! sessions (`vitalflow query`, the server's `/api/query`) by the variable
//! `DATAFUSION_A_B_C`, as DataFusion's own CLI reads them; unlike
//! `ConfigOptions::from_env`, a variable applies on top of the values
//! vitalflow chose rather than replacing them all with DataFusion's
//! defaults. A value that does not parse is an error naming the variable.

use datafusion::config::ConfigOptions;

use super::QueryError;

/// The variable that sets option `key` (`datafusion.execution.batch_size`
/// -> `DATAFUSION_EXECUTION_BATCH_SIZE`).
fn env_name(key: &str) -> String {
    key.to_uppercase().replace('.', "_")
}

/// Apply every option whose variable `lookup` finds; returns the
/// `(variable, value)` pairs applied, for the log.
pub fn apply_env(
    options: &mut ConfigOptions,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, QueryError> {
    let keys: Vec<String> = options.entries().into_iter().map(|e| e.key).collect();
    let mut applied = Vec::new();
    for key in keys {
        let variable = env_name(&key);
        if let Some(value) = lookup(&variable) {
            options.set(&key, &value).map_err(|e| QueryError::Setting {
                variable: variable.clone(),
                value: value.clone(),
                reason: e.to_string(),
            })?;
            applied.push((variable, value));
        }
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variable_overrides_one_option_and_leaves_the_others() {
        let mut options = ConfigOptions::new();
        options.execution.parquet.pushdown_filters = true;
        options.execution.sort_spill_reservation_bytes = 4096;
        let applied = apply_env(&mut options, |name| {
            (name == "DATAFUSION_EXECUTION_SORT_SPILL_RESERVATION_BYTES")
                .then(|| "1024".to_string())
        })
        .unwrap();
        assert_eq!(
            applied,
            vec![(
                "DATAFUSION_EXECUTION_SORT_SPILL_RESERVATION_BYTES".into(),
                "1024".into()
            )]
        );
        assert_eq!(options.execution.sort_spill_reservation_bytes, 1024);
        assert!(options.execution.parquet.pushdown_filters, "kept");
    }

    #[test]
    fn an_optional_setting_is_reachable_too() {
        let mut options = ConfigOptions::new();
        apply_env(&mut options, |name| {
            (name == "DATAFUSION_EXECUTION_PARQUET_METADATA_SIZE_HINT").then(|| "65536".into())
        })
        .unwrap();
        assert_eq!(options.execution.parquet.metadata_size_hint, Some(65536));
    }

    #[test]
    fn a_value_that_does_not_parse_names_its_variable() {
        let mut options = ConfigOptions::new();
        let err = apply_env(&mut options, |name| {
            (name == "DATAFUSION_EXECUTION_PARQUET_PUSHDOWN_FILTERS").then(|| "maybe".into())
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("DATAFUSION_EXECUTION_PARQUET_PUSHDOWN_FILTERS=\"maybe\""),
            "{err}"
        );
    }
}
