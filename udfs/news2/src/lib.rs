//! Arroyo UDF: aggregate NEWS2 score (RCP 2017, SpO2 scale 1).
//!
//! `news2(respiratory_rate BIGINT, spo2 BIGINT, on_oxygen BIGINT, systolic_bp BIGINT,
//!        heart_rate BIGINT, consciousness TEXT, temperature DOUBLE) -> BIGINT NOT NULL`
//!
//! Every argument is nullable; a NULL parameter contributes 0 (see `news2_missing` to tell a
//! full score from a partial one). The table lives in the `news2_table` crate.

use arroyo_udf_plugin::udf;

// `on_oxygen` is BIGINT (0 = air, any other value = supplemental oxygen), not BOOLEAN:
// arroyo-udf-plugin 0.2.0's #[udf] cannot compile `bool`/`Option<bool>` arguments (it
// generates `PrimitiveArray<BooleanType>`, and BooleanType is not a primitive type in arrow).
// From SQL pass `CAST(on_oxygen AS BIGINT)`, which maps true -> 1, false -> 0.

#[udf]
fn news2(
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
    .total_score()
}

#[cfg(test)]
mod tests {
    //! Calls the `#[udf]`-generated `__run` exactly as a host would: arrays in through
    //! `FfiArrays` (Arrow C Data Interface), result out through `RunResult`.
    use super::__run;
    use arroyo_udf_plugin::arrow::array::{
        Array, ArrayRef, Float64Array, Int32Array, Int64Array, StringArray,
    };
    use arroyo_udf_plugin::arrow::ffi::{from_ffi, FFI_ArrowArray, FFI_ArrowSchema};
    use arroyo_udf_plugin::{FfiArraySchema, FfiArrays, RunResult};
    use std::mem::{align_of, size_of};
    use std::sync::Arc;

    type Row = (
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<&'static str>,
        Option<f64>,
    );

    fn columns(rows: &[Row]) -> Vec<ArrayRef> {
        vec![
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.0))),
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.1))),
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.2))),
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.3))),
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.4))),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.5))),
            Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.6))),
        ]
    }

    /// A reading with every parameter present: respiratory rate, SpO2,
    /// on oxygen (0/1), systolic BP, heart rate, consciousness, temperature.
    fn reading(rr: i64, spo2: i64, o2: i64, sbp: i64, hr: i64, avpu: &'static str, t: f64) -> Row {
        (
            Some(rr),
            Some(spo2),
            Some(o2),
            Some(sbp),
            Some(hr),
            Some(avpu),
            Some(t),
        )
    }

    fn run(cols: Vec<ArrayRef>) -> Option<Int64Array> {
        let args = FfiArrays::from_vec(cols.iter().map(|c| c.to_data()).collect());
        match __run(args) {
            RunResult::Ok(FfiArraySchema(array, schema)) => {
                let data = unsafe { from_ffi(array, &schema) }.unwrap();
                Some(Int64Array::from(data))
            }
            RunResult::Err => None,
        }
    }

    #[test]
    fn scores_rows_through_ffi() {
        let rows: Vec<Row> = vec![
            reading(16, 98, 0, 120, 70, "A", 37.0),
            reading(30, 85, 1, 80, 140, "U", 34.0),
            reading(22, 95, 1, 105, 95, "A", 38.5),
            (None, None, None, None, None, None, None),
            (Some(25), None, Some(1), None, Some(45), Some(""), None),
            reading(16, 98, 0, 120, 35, "A", 37.0),
        ];
        let out = run(columns(&rows)).expect("RunResult::Ok");
        assert_eq!(out.len(), rows.len());
        assert_eq!(out.null_count(), 0, "return type i64 is NOT NULL");
        assert_eq!(out.values().to_vec(), vec![0, 20, 8, 0, 6, 3]);
    }

    #[test]
    fn sliced_inputs_and_empty_batch() {
        let rows: Vec<Row> = vec![
            reading(30, 85, 1, 80, 140, "U", 34.0),
            reading(16, 98, 0, 120, 70, "V", 37.0),
            reading(8, 98, 0, 120, 70, "A", 37.0),
        ];
        let sliced: Vec<ArrayRef> = columns(&rows).iter().map(|c| c.slice(1, 2)).collect();
        assert_eq!(run(sliced).unwrap().values().to_vec(), vec![3, 3]);

        let empty = run(columns(&[])).unwrap();
        assert_eq!(empty.len(), 0);
    }

    #[test]
    fn wrong_argument_type_is_reported_as_err() {
        // Arg 0 as Int32 instead of Int64: the generated code panics inside its catch_unwind
        // (PrimitiveArray::<Int64Type>::from asserts the type) and returns RunResult::Err.
        let rows: Vec<Row> = vec![reading(16, 98, 0, 120, 70, "A", 37.0)];
        let mut cols = columns(&rows);
        cols[0] = Arc::new(Int32Array::from(vec![16]));
        assert!(run(cols).is_none());
    }

    /// Pins the `#[repr(C)]` layouts that the host (arrow 59) mirrors; x86_64 / aarch64 Linux.
    #[test]
    fn abi_layouts() {
        assert_eq!(size_of::<FFI_ArrowArray>(), 80);
        assert_eq!(size_of::<FFI_ArrowSchema>(), 72);
        assert_eq!(size_of::<FfiArraySchema>(), 152);
        assert_eq!(align_of::<FfiArraySchema>(), 8);
        assert_eq!(size_of::<FfiArrays>(), 32);
        assert_eq!(align_of::<FfiArrays>(), 8);
        assert_eq!(size_of::<RunResult>(), 160);
        assert_eq!(align_of::<RunResult>(), 8);

        // FfiArrays { ptr, len, capacity, error }: read the fields back through raw offsets.
        let data = Int64Array::from(vec![1, 2, 3]).to_data();
        let arrays = FfiArrays::from_vec(vec![data.clone(), data]);
        let base = &arrays as *const FfiArrays as *const u8;
        unsafe {
            let ptr = *(base as *const *mut FfiArraySchema);
            let len = *(base.add(8) as *const usize);
            let cap = *(base.add(16) as *const usize);
            let error = *(base.add(24) as *const bool);
            assert!(!ptr.is_null());
            assert_eq!(len, 2);
            assert!(cap >= len);
            assert!(!error);
            // element 0: FFI_ArrowArray.length is its first field
            assert_eq!(*(ptr as *const i64), 3);
        }
        // Give the arrays back to Rust so they are released.
        assert_eq!(arrays.into_vec().len(), 2);

        // RunResult: C `int` tag at 0 (Ok = 0, Err = 1), payload at 8.
        let err = RunResult::Err;
        assert_eq!(unsafe { *(&err as *const RunResult as *const u32) }, 1);
        let data = Int64Array::from(vec![7]).to_data();
        let ok = RunResult::Ok(FfiArraySchema::from_data(data));
        let base = &ok as *const RunResult as *const u8;
        assert_eq!(unsafe { *(base as *const u32) }, 0);
        match &ok {
            RunResult::Ok(payload) => {
                let off = payload as *const FfiArraySchema as usize - base as usize;
                assert_eq!(off, 8);
                let schema_off = &payload.1 as *const FFI_ArrowSchema as usize
                    - payload as *const FfiArraySchema as usize;
                assert_eq!(schema_off, 80);
            }
            RunResult::Err => unreachable!(),
        }
        drop(ok);
    }
}
