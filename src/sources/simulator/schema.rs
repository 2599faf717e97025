//! The vitals record schema produced by the simulator.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("patient_id", DataType::Utf8, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("heart_rate", DataType::Int32, false),
        Field::new("spo2", DataType::Int32, false),
        Field::new("systolic_bp", DataType::Int32, false),
        Field::new("diastolic_bp", DataType::Int32, false),
        Field::new("respiratory_rate", DataType::Int32, false),
        Field::new("temperature", DataType::Float64, false),
        Field::new("consciousness", DataType::Utf8, false),
        Field::new("on_oxygen", DataType::Boolean, false),
    ]))
});

/// `patient_id, ts (UTC ms), heart_rate, spo2, systolic_bp, diastolic_bp,
/// respiratory_rate, temperature, consciousness (A/C/V/P/U), on_oxygen`.
pub fn vitals_schema() -> SchemaRef {
    SCHEMA.clone()
}
