//! Request validation: JSON body -> feature rows, or one message per
//! offending field (HTTP 422), before anything reaches the model.
//!
//! Parsing is field by field over a `serde_json::Value` instead of a derived
//! struct, because a derived struct stops at the first problem; a client
//! fixing a form wants every problem at once, each with its location.

use serde_json::Value;

use super::types::FieldError;
use crate::models::ModelMetadata;
use crate::server::ServerError;

/// API field name -> the model's feature name, in model input order.
pub const FIELDS: [(&str, &str); 8] = [
    ("pregnancies", "Pregnancies"),
    ("glucose", "Glucose"),
    ("blood_pressure", "BloodPressure"),
    ("skin_thickness", "SkinThickness"),
    ("insulin", "Insulin"),
    ("bmi", "BMI"),
    ("diabetes_pedigree_function", "DiabetesPedigreeFunction"),
    ("age", "Age"),
];

/// The most rows one `/predict/batch` call may carry.
pub const MAX_BATCH: usize = 1000;

#[derive(Debug, Clone)]
struct FieldRule {
    api_name: &'static str,
    alias: &'static str,
    min: f64,
    max: f64,
    integer: bool,
}

/// The fields, ranges and integer rules, taken from the loaded model's
/// metadata so the API and the model can never disagree.
#[derive(Debug, Clone)]
pub struct FeatureRules {
    rules: Vec<FieldRule>,
}

impl FeatureRules {
    /// Refuses a model whose features are not the API's, in the same order.
    pub fn for_model(metadata: &ModelMetadata) -> Result<Self, ServerError> {
        let expected: Vec<&'static str> = FIELDS.iter().map(|(_, m)| *m).collect();
        if metadata.feature_names != expected {
            return Err(ServerError::ModelFeatures {
                found: metadata.feature_names.clone(),
                expected,
            });
        }
        let rules = FIELDS
            .iter()
            .zip(&metadata.feature_ranges)
            .map(|((api_name, alias), range)| FieldRule {
                api_name,
                alias,
                min: range.min,
                max: range.max,
                integer: range.integer,
            })
            .collect();
        Ok(Self { rules })
    }

    pub fn width(&self) -> usize {
        self.rules.len()
    }

    pub fn api_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.rules.iter().map(|r| r.api_name)
    }

    /// One patient object -> its feature row.
    pub fn parse_one(&self, body: &[u8]) -> Result<Vec<f64>, Vec<FieldError>> {
        let value = parse_json(body)?;
        let mut errors = Vec::new();
        let mut row = Vec::with_capacity(self.width());
        self.check_object(&value, &[Value::from("body")], &mut row, &mut errors);
        if errors.is_empty() {
            Ok(row)
        } else {
            Err(errors)
        }
    }

    /// `{"instances": [...]}` -> row-major features of every patient.
    pub fn parse_batch(&self, body: &[u8]) -> Result<(Vec<f64>, usize), Vec<FieldError>> {
        let value = parse_json(body)?;
        let body_loc = [Value::from("body")];
        let Some(object) = value.as_object() else {
            return Err(vec![error(
                &body_loc,
                "body must be a JSON object with `instances`",
                "model_type",
            )]);
        };
        let mut errors = Vec::new();
        for key in object.keys().filter(|k| *k != "instances") {
            errors.push(error(
                &[Value::from("body"), Value::from(key.as_str())],
                "unknown field",
                "extra_forbidden",
            ));
        }
        let instances_loc = [Value::from("body"), Value::from("instances")];
        let instances = match object.get("instances") {
            None => return Err(vec![error(&instances_loc, "field required", "missing")]),
            Some(Value::Array(items)) => items,
            Some(_) => {
                return Err(vec![error(
                    &instances_loc,
                    "must be a list of patients",
                    "list_type",
                )]);
            }
        };
        if instances.is_empty() {
            errors.push(error(
                &instances_loc,
                "must contain at least one patient",
                "too_short",
            ));
        }
        if instances.len() > MAX_BATCH {
            errors.push(error(
                &instances_loc,
                &format!("at most {MAX_BATCH} patients per request"),
                "too_long",
            ));
            return Err(errors);
        }
        let mut rows = Vec::with_capacity(instances.len() * self.width());
        for (index, item) in instances.iter().enumerate() {
            let loc = [
                Value::from("body"),
                Value::from("instances"),
                Value::from(index),
            ];
            self.check_object(item, &loc, &mut rows, &mut errors);
        }
        if errors.is_empty() {
            Ok((rows, instances.len()))
        } else {
            Err(errors)
        }
    }

    fn check_object(
        &self,
        value: &Value,
        loc: &[Value],
        row: &mut Vec<f64>,
        errors: &mut Vec<FieldError>,
    ) {
        let Some(object) = value.as_object() else {
            errors.push(error(
                loc,
                "must be a JSON object of the eight features",
                "model_type",
            ));
            return;
        };
        for key in object.keys() {
            if !self
                .rules
                .iter()
                .any(|r| r.api_name == key || r.alias == key)
            {
                errors.push(error(&child(loc, key), "unknown field", "extra_forbidden"));
            }
        }
        for rule in &self.rules {
            let field_loc = child(loc, rule.api_name);
            match (object.get(rule.api_name), object.get(rule.alias)) {
                (Some(_), Some(_)) => {
                    errors.push(error(
                        &field_loc,
                        &format!("given twice, as `{}` and `{}`", rule.api_name, rule.alias),
                        "duplicate",
                    ));
                }
                (None, None) => errors.push(error(&field_loc, "field required", "missing")),
                (Some(v), None) | (None, Some(v)) => match rule.check(v) {
                    Ok(x) => row.push(x),
                    Err((msg, kind)) => errors.push(error(&field_loc, &msg, kind)),
                },
            }
        }
    }
}

impl FieldRule {
    fn check(&self, value: &Value) -> Result<f64, (String, &'static str)> {
        let x = match value {
            Value::Number(n) => n
                .as_f64()
                .ok_or_else(|| ("must be a finite number".to_string(), "finite_number"))?,
            Value::Null => return Err(("must be a number, not null".into(), "float_type")),
            Value::String(s)
                if matches!(
                    s.trim().to_ascii_lowercase().as_str(),
                    "nan" | "inf" | "-inf" | "infinity" | "-infinity"
                ) =>
            {
                return Err(("must be a finite number".into(), "finite_number"));
            }
            other => {
                return Err((
                    format!("must be a number, got {}", kind_of(other)),
                    "float_type",
                ));
            }
        };
        if !x.is_finite() {
            return Err(("must be a finite number".into(), "finite_number"));
        }
        if x < self.min {
            return Err((
                format!("must be at least {} (got {x})", self.min),
                "greater_than_equal",
            ));
        }
        if x > self.max {
            return Err((
                format!("must be at most {} (got {x})", self.max),
                "less_than_equal",
            ));
        }
        if self.integer && x.fract() != 0.0 {
            return Err((format!("must be a whole number (got {x})"), "int_type"));
        }
        Ok(x)
    }
}

fn parse_json(body: &[u8]) -> Result<Value, Vec<FieldError>> {
    serde_json::from_slice(body).map_err(|e| {
        vec![error(
            &[Value::from("body")],
            &format!("invalid JSON: {e}"),
            "json_invalid",
        )]
    })
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn child(loc: &[Value], key: &str) -> Vec<Value> {
    let mut v = loc.to_vec();
    v.push(Value::from(key));
    v
}

fn error(loc: &[Value], msg: &str, kind: &str) -> FieldError {
    FieldError {
        loc: loc.to_vec(),
        msg: msg.to_string(),
        kind: kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rules() -> FeatureRules {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/diabetes_rf.json");
        FeatureRules::for_model(&ModelMetadata::from_file(&path).unwrap()).unwrap()
    }

    /// A value for a field: mostly numbers near the valid ranges, sometimes
    /// anything else JSON can hold.
    fn field_value() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            (-10.0f64..1000.0).prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            "[a-z0-9.]{0,8}".prop_map(serde_json::Value::from),
            Just(serde_json::json!([1, 2])),
            Just(serde_json::json!({"a": 1})),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, max_shrink_time: 10_000, ..Default::default() })]

        /// Any bytes: a parsed row of the model's width or field errors,
        /// never a panic.
        #[test]
        fn arbitrary_bodies_parse_or_explain(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let rules = rules();
            match rules.parse_one(&body) {
                Ok(row) => prop_assert_eq!(row.len(), rules.width()),
                Err(errors) => prop_assert!(!errors.is_empty()),
            }
            let _ = rules.parse_batch(&body);
        }

        /// Objects with the API's field names and arbitrary values: accepted
        /// rows hold exactly the values sent, in range.
        #[test]
        fn arbitrary_field_values_are_exact_or_refused(
            values in proptest::collection::vec(field_value(), 8)
        ) {
            let rules = rules();
            let body: serde_json::Map<String, serde_json::Value> = rules
                .api_names()
                .zip(values.iter().cloned())
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            let text = serde_json::Value::Object(body).to_string();
            match rules.parse_one(text.as_bytes()) {
                Ok(row) => {
                    for (got, sent) in row.iter().zip(&values) {
                        prop_assert_eq!(Some(*got), sent.as_f64());
                    }
                }
                Err(errors) => prop_assert!(!errors.is_empty()),
            }
            let batch = format!("{{\"instances\": [{text}, {text}]}}");
            if let Ok((rows, count)) = rules.parse_batch(batch.as_bytes()) {
                prop_assert_eq!(count, 2);
                prop_assert_eq!(rows.len(), 2 * rules.width());
            }
        }
    }
}
