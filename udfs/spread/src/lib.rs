//! Arroyo aggregate UDF: the spread (max - min) of a vital within a group,
//! e.g. how far a patient's heart rate swung within a minute.
//!
//! `spread(value DOUBLE) -> DOUBLE`, NULL for an empty group. A `Vec<T>`
//! argument makes `#[udf]` an aggregate: the function sees all of a group's
//! values at once.

use arroyo_udf_plugin::udf;

#[udf]
fn spread(values: Vec<f64>) -> Option<f64> {
    let min = values.iter().copied().reduce(f64::min)?;
    let max = values.iter().copied().reduce(f64::max)?;
    Some(max - min)
}
