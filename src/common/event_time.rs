//! Event time as the engine and the sources read it: a timestamp column as
//! epoch milliseconds.

use arrow::array::{Array, Int64Array, TimestampMillisecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

/// Why a batch's event times could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EventTimeError {
    #[error("the event-time column `{0}` is missing")]
    Missing(String),
    #[error("the event-time column `{column}` is {data_type}, not a timestamp")]
    NotATimestamp { column: String, data_type: DataType },
    #[error("casting the event-time column `{column}` to milliseconds: {source}")]
    Cast {
        column: String,
        #[source]
        source: ArrowError,
    },
}

/// The event times of `column` in `batch` as epoch milliseconds (nulls stay
/// null).
pub fn event_times_ms(batch: &RecordBatch, column: &str) -> Result<Int64Array, EventTimeError> {
    let array = batch
        .column_by_name(column)
        .ok_or_else(|| EventTimeError::Missing(column.to_string()))?;
    let as_millis = match array.data_type() {
        DataType::Timestamp(TimeUnit::Millisecond, _) => array.clone(),
        DataType::Timestamp(_, tz) => cast(
            array,
            &DataType::Timestamp(TimeUnit::Millisecond, tz.clone()),
        )
        .map_err(|source| EventTimeError::Cast {
            column: column.to_string(),
            source,
        })?,
        other => {
            return Err(EventTimeError::NotATimestamp {
                column: column.to_string(),
                data_type: other.clone(),
            });
        }
    };
    let millis = as_millis
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .expect("a cast to Timestamp(Millisecond) yields TimestampMillisecondArray");
    Ok(millis.reinterpret_cast::<arrow::datatypes::Int64Type>())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, TimestampSecondArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;

    #[test]
    fn seconds_become_milliseconds_and_other_types_are_refused() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Second, None), true),
            Field::new("n", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(TimestampSecondArray::from(vec![Some(2), None])),
                Arc::new(Int64Array::from(vec![1, 2])),
            ],
        )
        .unwrap();
        let ms = event_times_ms(&batch, "ts").unwrap();
        assert_eq!(ms.value(0), 2000);
        assert!(ms.is_null(1));
        assert!(matches!(
            event_times_ms(&batch, "n"),
            Err(EventTimeError::NotATimestamp { .. })
        ));
        assert!(matches!(
            event_times_ms(&batch, "missing"),
            Err(EventTimeError::Missing(_))
        ));
    }
}
