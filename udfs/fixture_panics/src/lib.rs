//! Test fixture: a UDF that panics on 13, to check that a panicking plugin
//! gives the pipeline a clear error instead of taking the process down.

use arroyo_udf_plugin::udf;

#[udf]
fn panics_on_13(value: i64) -> i64 {
    assert!(value != 13, "unlucky number");
    value
}
