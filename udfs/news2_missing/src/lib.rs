//! Arroyo UDF: number of NEWS2 parameters that are missing (NULL), 0..=7.
//!
//! `news2_missing(respiratory_rate BIGINT, spo2 BIGINT, on_oxygen BIGINT, systolic_bp BIGINT,
//!        heart_rate BIGINT, consciousness TEXT, temperature DOUBLE) -> BIGINT NOT NULL`
//!
//! Same arguments as `news2`. 0 means `news2` is a full score; anything else means it is a
//! partial score. A blank consciousness string or a NaN temperature counts as missing, exactly
//! as `news2` treats them. The table lives in the `news2_table` crate.

use arroyo_udf_plugin::udf;

// `on_oxygen` is BIGINT (0 = air, any other value = supplemental oxygen), not BOOLEAN:
// arroyo-udf-plugin 0.2.0's #[udf] cannot compile `bool`/`Option<bool>` arguments (it
// generates `PrimitiveArray<BooleanType>`, and BooleanType is not a primitive type in arrow).
// From SQL pass `CAST(on_oxygen AS BIGINT)`, which maps true -> 1, false -> 0.

#[udf]
fn news2_missing(
    respiratory_rate: Option<i64>,
    spo2: Option<i64>,
    on_oxygen: Option<i64>,
    systolic_bp: Option<i64>,
    heart_rate: Option<i64>,
    consciousness: Option<&str>,
    temperature: Option<f64>,
) -> i64 {
    news2_table::Observations {
        respiratory_rate,
        spo2,
        on_oxygen: on_oxygen.map(|v| v != 0),
        systolic_bp,
        heart_rate,
        consciousness,
        temperature,
    }
    .missing_count()
}

#[cfg(test)]
mod tests {
    //! Calls the `#[udf]`-generated `__run` through the FFI structs, as a host would.
    use super::__run;
    use arroyo_udf_plugin::arrow::array::{Array, ArrayRef, Float64Array, Int64Array, StringArray};
    use arroyo_udf_plugin::arrow::ffi::from_ffi;
    use arroyo_udf_plugin::{FfiArraySchema, FfiArrays, RunResult};
    use std::sync::Arc;

    #[test]
    fn through_ffi() {
        // healthy; worst; all NULL; 4 missing (SpO2, SBP, blank consciousness, NaN temp);
        // only temperature missing with SpO2 92 -> 2.
        let rr = Int64Array::from(vec![Some(16), Some(30), None, Some(25), Some(16)]);
        let spo2 = Int64Array::from(vec![Some(98), Some(85), None, None, Some(92)]);
        let o2 = Int64Array::from(vec![Some(0), Some(1), None, Some(1), Some(0)]);
        let sbp = Int64Array::from(vec![Some(120), Some(80), None, None, Some(120)]);
        let hr = Int64Array::from(vec![Some(70), Some(140), None, Some(45), Some(70)]);
        let acvpu = StringArray::from(vec![Some("A"), Some("U"), None, Some(""), Some("A")]);
        let temp = Float64Array::from(vec![Some(37.0), Some(34.0), None, Some(f64::NAN), None]);
        let cols: Vec<ArrayRef> = vec![
            Arc::new(rr),
            Arc::new(spo2),
            Arc::new(o2),
            Arc::new(sbp),
            Arc::new(hr),
            Arc::new(acvpu),
            Arc::new(temp),
        ];
        let args = FfiArrays::from_vec(cols.iter().map(|c| c.to_data()).collect());
        let RunResult::Ok(FfiArraySchema(array, schema)) = __run(args) else {
            panic!("RunResult::Err");
        };
        let out = Int64Array::from(unsafe { from_ffi(array, &schema) }.unwrap());
        assert_eq!(out.null_count(), 0);
        assert_eq!(out.values().to_vec(), vec![0, 0, 7, 4, 1]);
    }
}
