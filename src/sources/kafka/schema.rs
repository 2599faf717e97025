//! The record schema declared in the YAML: Arrow types for decoding, and the
//! value checks (ranges, allowed values) that separate plausible readings
//! from impossible ones.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef, TimeUnit};
use serde::Deserialize;

use super::error::{FieldProblem, SchemaError};
use crate::common::HumanDuration;

/// One field of a JSON record.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// A record without this field (or with `null`) is a dead letter.
    #[serde(default = "default_required")]
    pub required: bool,
    /// Smallest plausible value (numbers and timestamps as epoch ms).
    #[serde(default)]
    pub min: Option<f64>,
    /// Largest plausible value.
    #[serde(default)]
    pub max: Option<f64>,
    /// The only values a string field may take.
    #[serde(default)]
    pub values: Option<Vec<String>>,
    /// Timestamps only: how far ahead of the wall clock a value may be. A
    /// reading from the future (a wrong device clock, the year 9999) would
    /// otherwise move the event-time watermark for good and open a
    /// partition per distinct day.
    #[serde(default)]
    pub max_future: Option<HumanDuration>,
    /// Timestamps only: how far behind the wall clock a value may be.
    #[serde(default)]
    pub max_past: Option<HumanDuration>,
}

impl FieldSpec {
    /// A required field of `field_type` with no further checks.
    pub fn new(name: &str, field_type: FieldType) -> Self {
        FieldSpec {
            name: name.to_string(),
            field_type,
            required: true,
            min: None,
            max: None,
            values: None,
            max_future: None,
            max_past: None,
        }
    }
}

fn default_required() -> bool {
    true
}

/// Column types a JSON field can be decoded into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    String,
    #[serde(alias = "int")]
    Int32,
    #[serde(alias = "bigint", alias = "long")]
    Int64,
    #[serde(alias = "double", alias = "float")]
    Float64,
    #[serde(alias = "bool")]
    Boolean,
    /// RFC 3339 string or epoch milliseconds; stored as UTC milliseconds.
    Timestamp,
}

impl FieldType {
    pub fn data_type(self) -> DataType {
        match self {
            FieldType::String => DataType::Utf8,
            FieldType::Int32 => DataType::Int32,
            FieldType::Int64 => DataType::Int64,
            FieldType::Float64 => DataType::Float64,
            FieldType::Boolean => DataType::Boolean,
            FieldType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        }
    }

    fn is_numeric(self) -> bool {
        matches!(
            self,
            FieldType::Int32 | FieldType::Int64 | FieldType::Float64 | FieldType::Timestamp
        )
    }
}

/// The validated schema: Arrow schema plus checks.
#[derive(Debug, Clone)]
pub struct RecordSchema {
    fields: Vec<FieldSpec>,
    arrow: SchemaRef,
}

/// Why one row failed a value check.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub row: usize,
    pub reason: String,
}

impl RecordSchema {
    pub fn try_new(fields: &[FieldSpec]) -> Result<Self, SchemaError> {
        if fields.is_empty() {
            return Err(SchemaError::NoFields);
        }
        let mut seen = std::collections::HashSet::new();
        for (index, field) in fields.iter().enumerate() {
            let refuse = |problem: FieldProblem| SchemaError::Field {
                index,
                name: field.name.clone(),
                problem,
            };
            if field.name.trim().is_empty() {
                return Err(SchemaError::EmptyName { index });
            }
            if !seen.insert(field.name.as_str()) {
                return Err(refuse(FieldProblem::DeclaredTwice));
            }
            if (field.min.is_some() || field.max.is_some()) && !field.field_type.is_numeric() {
                return Err(refuse(FieldProblem::RangeNotNumeric));
            }
            if let (Some(min), Some(max)) = (field.min, field.max)
                && min > max
            {
                return Err(refuse(FieldProblem::MinAboveMax { min, max }));
            }
            if (field.max_future.is_some() || field.max_past.is_some())
                && field.field_type != FieldType::Timestamp
            {
                return Err(refuse(FieldProblem::AgeNotTimestamp));
            }
            if field.values.is_some() && field.field_type != FieldType::String {
                return Err(refuse(FieldProblem::ValuesNotString));
            }
            if field.values.as_ref().is_some_and(Vec::is_empty) {
                return Err(refuse(FieldProblem::NoValues));
            }
        }
        let arrow = Arc::new(Schema::new(
            fields
                .iter()
                .map(|f| Field::new(&f.name, f.field_type.data_type(), !f.required))
                .collect::<Vec<_>>(),
        ));
        Ok(Self {
            fields: fields.to_vec(),
            arrow,
        })
    }

    /// A placeholder for configs that failed validation (never run).
    pub fn empty() -> Self {
        Self {
            fields: Vec::new(),
            arrow: Arc::new(Schema::empty()),
        }
    }

    pub fn arrow_schema(&self) -> SchemaRef {
        self.arrow.clone()
    }

    pub fn fields(&self) -> &[FieldSpec] {
        &self.fields
    }

    /// Rows of `columns` (decoded with [`Self::arrow_schema`]) that break a
    /// range or allowed-values rule; the first broken rule per row.
    pub fn violations(&self, columns: &[ArrayRef]) -> Vec<Violation> {
        let mut reasons: Vec<Option<String>> = Vec::new();
        for (spec, column) in self.fields.iter().zip(columns) {
            if spec.min.is_some() || spec.max.is_some() {
                check_range(spec, column, &mut reasons);
            }
            if let Some(allowed) = &spec.values {
                check_values(spec, allowed, column, &mut reasons);
            }
        }
        reasons
            .into_iter()
            .enumerate()
            .filter_map(|(row, reason)| reason.map(|reason| Violation { row, reason }))
            .collect()
    }

    /// Rows whose timestamps lie outside `max_future`/`max_past` of `now_ms`
    /// (wall-clock epoch milliseconds); the first broken rule per row.
    pub fn implausible_times(&self, columns: &[ArrayRef], now_ms: i64) -> Vec<Violation> {
        let mut reasons: Vec<Option<String>> = Vec::new();
        for (spec, column) in self.fields.iter().zip(columns) {
            if spec.max_future.is_none() && spec.max_past.is_none() {
                continue;
            }
            let ms = |d: Option<HumanDuration>| {
                d.map(|d| i64::try_from(d.0.as_millis()).unwrap_or(i64::MAX))
            };
            let latest = ms(spec.max_future).map_or(i64::MAX, |f| now_ms.saturating_add(f));
            let earliest = ms(spec.max_past).map_or(i64::MIN, |p| now_ms.saturating_sub(p));
            let Ok(values) = cast(column, &DataType::Int64) else {
                continue;
            };
            let values = values.as_primitive::<arrow::datatypes::Int64Type>();
            for (row, value) in values.iter().enumerate() {
                let Some(v) = value else { continue };
                if v > latest || v < earliest {
                    note(&mut reasons, row, || {
                        let when = chrono::DateTime::from_timestamp_millis(v)
                            .map_or_else(|| format!("{v} ms"), |t| t.to_rfc3339());
                        let rule = if v > latest {
                            format!("more than {} ahead of", fmt_duration(spec.max_future))
                        } else {
                            format!("more than {} behind", fmt_duration(spec.max_past))
                        };
                        format!("`{}` = {when} is {rule} the clock", spec.name)
                    });
                }
            }
        }
        reasons
            .into_iter()
            .enumerate()
            .filter_map(|(row, reason)| reason.map(|reason| Violation { row, reason }))
            .collect()
    }
}

fn fmt_duration(d: Option<HumanDuration>) -> String {
    d.map_or_else(String::new, |d| humantime::format_duration(d.0).to_string())
}

fn note(reasons: &mut Vec<Option<String>>, row: usize, reason: impl FnOnce() -> String) {
    if reasons.len() <= row {
        reasons.resize(row + 1, None);
    }
    if reasons[row].is_none() {
        reasons[row] = Some(reason());
    }
}

fn check_range(spec: &FieldSpec, column: &ArrayRef, reasons: &mut Vec<Option<String>>) {
    let values = match column.data_type() {
        DataType::Timestamp(..) => {
            cast(column, &DataType::Int64).and_then(|c| cast(&c, &DataType::Float64))
        }
        _ => cast(column, &DataType::Float64),
    };
    let Ok(values) = values else { return };
    let values = values.as_primitive::<Float64Type>();
    let min = spec.min.unwrap_or(f64::NEG_INFINITY);
    let max = spec.max.unwrap_or(f64::INFINITY);
    for (row, value) in values.iter().enumerate() {
        if let Some(v) = value
            && !(min..=max).contains(&v)
        {
            note(reasons, row, || {
                format!(
                    "`{}` = {v} is outside the plausible range {}..={}",
                    spec.name,
                    display_bound(spec.min),
                    display_bound(spec.max)
                )
            });
        }
    }
}

fn display_bound(bound: Option<f64>) -> String {
    bound.map_or_else(|| "unbounded".into(), |b| b.to_string())
}

fn check_values(
    spec: &FieldSpec,
    allowed: &[String],
    column: &ArrayRef,
    reasons: &mut Vec<Option<String>>,
) {
    let Some(strings) = column.as_string_opt::<i32>() else {
        return;
    };
    for (row, value) in strings.iter().enumerate() {
        if let Some(v) = value
            && !allowed.iter().any(|a| a == v)
        {
            note(reasons, row, || {
                format!(
                    "`{}` = {v:?} is not one of {}",
                    spec.name,
                    allowed.join(", ")
                )
            });
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use arrow::array::{Int32Array, StringArray};

    /// A required field with no value rules (tests of this module and of
    /// the decoder build on it).
    pub(crate) fn field(name: &str, field_type: FieldType) -> FieldSpec {
        FieldSpec::new(name, field_type)
    }

    #[test]
    fn timestamps_outside_the_plausibility_window_are_named() {
        let schema = RecordSchema::try_new(&[FieldSpec {
            max_future: Some(HumanDuration(std::time::Duration::from_secs(300))),
            max_past: Some(HumanDuration(std::time::Duration::from_secs(86_400))),
            ..field("ts", FieldType::Timestamp)
        }])
        .unwrap();
        let now = 1_800_000_000_000;
        let column: ArrayRef = Arc::new(
            arrow::array::TimestampMillisecondArray::from(vec![
                Some(now),
                Some(now + 299_000),
                Some(now + 301_000),
                Some(253_402_300_799_000), // 9999-12-31T23:59:59Z
                Some(now - 86_401_000),
                None,
            ])
            .with_timezone("UTC"),
        );
        let violations = schema.implausible_times(&[column], now);
        let rows: Vec<usize> = violations.iter().map(|v| v.row).collect();
        assert_eq!(rows, vec![2, 3, 4], "{violations:?}");
        assert!(
            violations[1].reason.contains("9999-12-31"),
            "{violations:?}"
        );
        assert!(violations[1].reason.contains("5m ahead"), "{violations:?}");
        assert!(
            violations[2].reason.contains("1day behind"),
            "{violations:?}"
        );
        let on_int = [FieldSpec {
            max_past: Some(HumanDuration(std::time::Duration::from_secs(1))),
            ..field("n", FieldType::Int32)
        }];
        assert!(
            RecordSchema::try_new(&on_int)
                .unwrap_err()
                .to_string()
                .contains("timestamps only")
        );
    }

    #[test]
    fn ranges_and_values_name_the_field_and_the_rule() {
        let schema = RecordSchema::try_new(&[
            FieldSpec {
                min: Some(0.0),
                max: Some(100.0),
                ..field("spo2", FieldType::Int32)
            },
            FieldSpec {
                values: Some(vec!["A".into(), "V".into()]),
                ..field("consciousness", FieldType::String)
            },
        ])
        .unwrap();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from(vec![97, 140, 95])),
            Arc::new(StringArray::from(vec!["A", "A", "Z"])),
        ];
        let violations = schema.violations(&columns);
        assert_eq!(violations.len(), 2);
        assert_eq!(violations[0].row, 1);
        assert!(
            violations[0].reason.contains("`spo2` = 140"),
            "{violations:?}"
        );
        assert_eq!(violations[1].row, 2);
        assert!(
            violations[1].reason.contains("\"Z\" is not one of A, V"),
            "{violations:?}"
        );
    }

    #[test]
    fn bad_declarations_are_refused() {
        let twice = [field("a", FieldType::Int32), field("a", FieldType::Int32)];
        assert!(
            RecordSchema::try_new(&twice)
                .unwrap_err()
                .to_string()
                .contains("declared twice")
        );
        let range_on_string = [FieldSpec {
            min: Some(1.0),
            ..field("s", FieldType::String)
        }];
        assert!(
            RecordSchema::try_new(&range_on_string)
                .unwrap_err()
                .to_string()
                .contains("numbers")
        );
        let inverted = [FieldSpec {
            min: Some(5.0),
            max: Some(1.0),
            ..field("n", FieldType::Float64)
        }];
        assert!(
            RecordSchema::try_new(&inverted)
                .unwrap_err()
                .to_string()
                .contains("greater")
        );
    }
}
