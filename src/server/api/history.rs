//! Trends from the lake, for the dashboard: one patient's vitals over a
//! time range, and every patient's NEWS2 over the last hour (the ward
//! table's sparklines). Both read the stored `vitals` dataset through the
//! bounded query session of `/api/query` and downsample in SQL with
//! `date_bin`, so a 24 h chart is a few hundred points, not 86,400
//! readings. Live readings are appended by the page as they arrive.
//!
//! The patient id reaches the SQL as a parameter (`$1`), never as text;
//! the time range also prunes the dataset's `date=` directories.

use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use datafusion::execution::context::SQLOptions;
use datafusion::scalar::ScalarValue;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::types::FieldError;
use crate::query::{Collector, QueryError, QuerySession};
use crate::server::auth::AuditDetail;
use crate::server::error::ApiError;
use crate::server::state::AppState;

/// The table trends are read from.
pub const TABLE: &str = "vitals";
/// The columns a patient's trend shows, as the scoring SQL names them.
pub const VITALS: [&str; 7] = [
    "heart_rate",
    "spo2",
    "systolic_bp",
    "diastolic_bp",
    "respiratory_rate",
    "temperature",
    "news2_score",
];
/// Points a trend aims at when no `step` is given.
pub const TARGET_POINTS: i64 = 500;
/// Points a trend may have at most (a smaller `step` is refused).
pub const MAX_POINTS: i64 = 2000;
/// The longest range one request may cover.
pub const MAX_SPAN_MS: i64 = 31 * DAY_MS;
/// The range when `from` is not given.
pub const DEFAULT_SPAN_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;
/// Buckets a sparkline has.
const SPARK_POINTS: i64 = 30;
/// Rows a ward trend returns at most (patients x buckets).
const MAX_WARD_ROWS: usize = 200_000;

/// Step sizes people read easily; an automatic step is the smallest of
/// these that keeps a range within [`TARGET_POINTS`].
const NICE_STEPS_MS: [i64; 18] = [
    1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000,
    1_800_000, 3_600_000, 7_200_000, 10_800_000, 21_600_000, 43_200_000, DAY_MS,
];

/// `from`, `to` (epoch milliseconds or RFC 3339) and `step` (`30s`, `5m`,
/// or milliseconds) of a trend.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeQuery {
    /// Start (inclusive): epoch ms or RFC 3339; default `to` minus one hour.
    pub from: Option<String>,
    /// End (exclusive): epoch ms or RFC 3339; default now.
    pub to: Option<String>,
    /// Bucket width: a duration (`30s`, `5m`) or milliseconds; default the
    /// smallest readable step giving at most 500 points.
    pub step: Option<String>,
}

/// A resolved time range and bucket width, in epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from_ms: i64,
    pub to_ms: i64,
    pub step_ms: i64,
}

impl Window {
    /// The window a request asks for; `now_ms` is the default end.
    pub fn resolve(query: &RangeQuery, now_ms: i64) -> Result<Self, FieldError> {
        let to_ms = match &query.to {
            Some(to) => parse_instant("to", to)?,
            None => now_ms,
        };
        let from_ms = match &query.from {
            Some(from) => parse_instant("from", from)?,
            None => to_ms - DEFAULT_SPAN_MS,
        };
        let span = to_ms - from_ms;
        if span <= 0 {
            return Err(invalid("from", "`from` must be before `to`".into()));
        }
        if span > MAX_SPAN_MS {
            return Err(invalid(
                "from",
                format!(
                    "a trend covers at most 31 days; this range is {}",
                    days(span)
                ),
            ));
        }
        let step_ms = match &query.step {
            Some(step) => {
                let step_ms = parse_step(step)?;
                let points = div_ceil(span, step_ms);
                if points > MAX_POINTS {
                    return Err(invalid(
                        "step",
                        format!(
                            "step {step} over this range makes {points} points, more than \
                             {MAX_POINTS}; use a step of at least {} ms",
                            div_ceil(span, MAX_POINTS)
                        ),
                    ));
                }
                step_ms
            }
            None => nice_step(div_ceil(span, TARGET_POINTS)),
        };
        Ok(Self {
            from_ms,
            to_ms,
            step_ms,
        })
    }

    /// The `date=` partitions the range touches, first and last.
    fn days(&self) -> (String, String) {
        let day = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .map(|t| t.format("%Y-%m-%d").to_string())
                .unwrap_or_default()
        };
        (day(self.from_ms), day(self.to_ms - 1))
    }
}

/// `a / b` rounded up, for positive `a` and `b` (`i64::div_ceil` is not
/// stable).
fn div_ceil(a: i64, b: i64) -> i64 {
    (a + b - 1) / b
}

fn days(ms: i64) -> String {
    format!("{:.1} days", ms as f64 / DAY_MS as f64)
}

fn invalid(field: &str, msg: String) -> FieldError {
    FieldError {
        loc: vec![Value::from("query"), Value::from(field)],
        msg,
        kind: "value_error".into(),
    }
}

/// Epoch milliseconds, or an RFC 3339 time (`2026-11-30T08:00:00Z`).
fn parse_instant(field: &str, value: &str) -> Result<i64, FieldError> {
    if let Ok(ms) = value.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            invalid(
                field,
                format!("`{value}` is neither epoch milliseconds nor an RFC 3339 time ({e})"),
            )
        })
}

/// A duration (`30s`, `5m`) or milliseconds; at least one second.
fn parse_step(value: &str) -> Result<i64, FieldError> {
    let ms = match value.parse::<i64>() {
        Ok(ms) => ms,
        Err(_) => humantime::parse_duration(value)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .map_err(|e| {
                invalid(
                    "step",
                    format!("`{value}` is not a duration (`30s`, `5m`) or milliseconds: {e}"),
                )
            })?,
    };
    if ms < 1_000 {
        return Err(invalid(
            "step",
            format!("step must be at least 1s (got {value})"),
        ));
    }
    Ok(ms)
}

/// The smallest readable step of at least `min_ms`.
fn nice_step(min_ms: i64) -> i64 {
    NICE_STEPS_MS
        .iter()
        .copied()
        .find(|&s| s >= min_ms)
        .unwrap_or_else(|| div_ceil(min_ms, DAY_MS) * DAY_MS)
}

/// Min, mean and max of one vital per bucket (null where the bucket had no
/// value of it).
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Series {
    pub min: Vec<Option<f64>>,
    pub avg: Vec<Option<f64>>,
    pub max: Vec<Option<f64>>,
}

/// One patient's downsampled history, column-wise (as charts take it).
#[derive(Debug, Serialize, ToSchema)]
pub struct History {
    pub patient_id: String,
    pub from: i64,
    pub to: i64,
    pub step_ms: i64,
    /// Start of each bucket, epoch ms; only buckets with readings.
    pub t: Vec<i64>,
    /// Readings in each bucket.
    pub readings: Vec<i64>,
    /// Per vital (`heart_rate`, `spo2`, `systolic_bp`, `diastolic_bp`,
    /// `respiratory_rate`, `temperature`, `news2_score`).
    #[schema(value_type = Object)]
    pub series: std::collections::BTreeMap<String, Series>,
}

/// `GET /api/patients/{id}/history`: one patient's vitals from the stored
/// dataset, downsampled to at most 500 points unless `step` asks otherwise.
#[utoipa::path(get, path = "/api/patients/{id}/history", tag = "data",
    params(("id" = String, Path, description = "Patient id"), RangeQuery),
    responses(
        (status = 200, description = "Buckets with readings, oldest first: min, mean and max of each vital", body = History),
        (status = 422, description = "A range or step that cannot be read or is too fine", body = super::types::ErrorBody),
        (status = 503, description = "No datasets loaded, or the query timed out", body = super::types::ErrorBody),
    ))]
pub async fn history(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(range): Query<RangeQuery>,
) -> Result<(Extension<AuditDetail>, Json<History>), ApiError> {
    let window = Window::resolve(&range, chrono::Utc::now().timestamp_millis())
        .map_err(|e| ApiError::Validation(vec![e]))?;
    let session = session(&state)?;
    let history = patient_history(session, &id, window, state.limits.query_timeout)
        .await
        .map_err(super::query::refusal)?;
    let detail = AuditDetail {
        patient_id: Some(id),
        rows: Some(history.t.len() as u64),
        ..AuditDetail::default()
    };
    Ok((Extension(detail), Json(history)))
}

fn session(state: &AppState) -> Result<&Arc<QuerySession>, ApiError> {
    state
        .datasets
        .as_ref()
        .map_err(|e| ApiError::Unavailable("datasets".into(), e.clone()))
}

/// The rows of `table` in `window` (and, when partitioned by date, only
/// its days): a `WHERE` clause over `$first..` parameters, and the values.
async fn range_filter(
    session: &QuerySession,
    table: &str,
    window: Window,
    first: usize,
) -> (String, Vec<ScalarValue>) {
    let at = |ms: i64| ScalarValue::TimestampMillisecond(Some(ms), Some("UTC".into()));
    let mut sql = format!("ts >= ${} AND ts < ${}", first, first + 1);
    let mut values = vec![at(window.from_ms), at(window.to_ms)];
    if has_column(session, table, "date").await {
        let (first_day, last_day) = window.days();
        sql += &format!(" AND date >= ${} AND date <= ${}", first + 2, first + 3);
        values.push(ScalarValue::Utf8(Some(first_day)));
        values.push(ScalarValue::Utf8(Some(last_day)));
    }
    (sql, values)
}

async fn has_column(session: &QuerySession, table: &str, column: &str) -> bool {
    match session.ctx.table_provider(table).await {
        Ok(table) => table.schema().column_with_name(column).is_some(),
        Err(_) => false,
    }
}

fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// The per-minute rollup of [`TABLE`] the shipped pipeline writes
/// (`sql/vitals_trend_1m.sql`): per patient and minute, the count, minimum,
/// sum and maximum of each vital.
pub const ROLLUP_TABLE: &str = "vitals_trend_1m";
const MINUTE_MS: i64 = 60_000;

/// One vital in one bucket, mergeable: minutes from the rollup and the
/// readings after it add up to what the readings alone would give.
#[derive(Debug, Clone, Copy, Default)]
struct Partial {
    n: f64,
    sum: f64,
    min: Option<f64>,
    max: Option<f64>,
}

impl Partial {
    fn merge(&mut self, other: Partial) {
        self.n += other.n;
        self.sum += other.sum;
        self.min = match (self.min, other.min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max = match (self.max, other.max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Buckets by start (epoch ms): readings, and a [`Partial`] per vital.
type Buckets = std::collections::BTreeMap<i64, (i64, [Partial; VITALS.len()])>;

/// [`History`] of `patient` in `window`. Whole minutes come from the
/// rollup ([`ROLLUP_TABLE`]) when the pipeline writes one and `step` is
/// whole minutes; the readings after the newest rolled-up minute (not
/// closed yet) come from [`TABLE`], and both merge exactly (counts and
/// sums, not means). Without a rollup, everything comes from [`TABLE`].
pub async fn patient_history(
    session: &QuerySession,
    patient: &str,
    window: Window,
    timeout: std::time::Duration,
) -> Result<History, QueryError> {
    let mut buckets = Buckets::new();
    let mut raw_from = window.from_ms;
    if window.step_ms % MINUTE_MS == 0 && has_column(session, ROLLUP_TABLE, "ts").await {
        let newest = read_buckets(
            session,
            ROLLUP_TABLE,
            patient,
            window,
            timeout,
            &mut buckets,
        )
        .await?;
        if let Some(newest) = newest {
            raw_from = raw_from.max(newest + MINUTE_MS);
        }
    }
    if raw_from < window.to_ms {
        let tail = Window {
            from_ms: raw_from,
            ..window
        };
        read_buckets(session, TABLE, patient, tail, timeout, &mut buckets).await?;
    }
    let mut history = History {
        patient_id: patient.to_string(),
        from: window.from_ms,
        to: window.to_ms,
        step_ms: window.step_ms,
        t: Vec::with_capacity(buckets.len()),
        readings: Vec::with_capacity(buckets.len()),
        series: VITALS
            .iter()
            .map(|c| (c.to_string(), Series::default()))
            .collect(),
    };
    // Means print with two decimals at most: a chart needs no more, and
    // the JSON stays small.
    let round = |v: f64| (v * 100.0).round() / 100.0;
    for (t, (readings, partials)) in buckets {
        history.t.push(t);
        history.readings.push(readings);
        for (name, partial) in VITALS.iter().zip(partials) {
            let series = history.series.get_mut(*name).expect("a series per vital");
            series.min.push(partial.min.map(round));
            series.max.push(partial.max.map(round));
            series
                .avg
                .push((partial.n > 0.0).then(|| round(partial.sum / partial.n)));
        }
    }
    Ok(history)
}

/// Add `patient`'s buckets in `window` from `table` (the readings, or the
/// rollup) to `buckets`; returns the newest row's time (the rollup's
/// newest minute).
async fn read_buckets(
    session: &QuerySession,
    table: &str,
    patient: &str,
    window: Window,
    timeout: std::time::Duration,
    buckets: &mut Buckets,
) -> Result<Option<i64>, QueryError> {
    let rollup = table == ROLLUP_TABLE;
    let (filter, mut params) = range_filter(session, table, window, 2).await;
    params.insert(0, ScalarValue::Utf8(Some(patient.to_string())));
    let aggregates: Vec<String> = VITALS
        .iter()
        .map(|c| {
            if rollup {
                format!(
                    "CAST(sum({c}_n) AS DOUBLE) AS {c}_n, sum({c}_sum) AS {c}_sum, \
                     min({c}_min) AS {c}_min, max({c}_max) AS {c}_max"
                )
            } else {
                format!(
                    "CAST(count({c}) AS DOUBLE) AS {c}_n, sum(CAST({c} AS DOUBLE)) AS {c}_sum, \
                     CAST(min({c}) AS DOUBLE) AS {c}_min, CAST(max({c}) AS DOUBLE) AS {c}_max"
                )
            }
        })
        .collect();
    let readings = if rollup { "sum(readings)" } else { "count(*)" };
    let sql = format!(
        "SELECT date_bin(INTERVAL '{step} milliseconds', ts) AS t, {readings} AS readings, \
         max(ts) AS newest, {aggregates} \
         FROM {table} WHERE patient_id = $1 AND {filter} GROUP BY 1 ORDER BY 1",
        step = window.step_ms,
        aggregates = aggregates.join(", "),
    );
    let finished = session
        .run_with_params(
            &sql,
            params,
            read_only(),
            &[],
            None,
            timeout,
            Batches::new(MAX_POINTS as usize + 1),
        )
        .await?;
    let mut newest = None;
    for batch in &finished.collector.batches {
        let starts = epoch_ms(batch, "t")?;
        let counts = int64s(batch, "readings")?;
        newest = newest.max(epoch_ms(batch, "newest")?.into_iter().flatten().max());
        let columns = VITALS
            .iter()
            .map(|c| {
                Ok([
                    floats_exact(batch, &format!("{c}_n"))?,
                    floats_exact(batch, &format!("{c}_sum"))?,
                    floats_exact(batch, &format!("{c}_min"))?,
                    floats_exact(batch, &format!("{c}_max"))?,
                ])
            })
            .collect::<Result<Vec<_>, QueryError>>()?;
        for (row, (start, count)) in starts.into_iter().zip(counts).enumerate() {
            let Some(start) = start else { continue };
            let bucket = buckets
                .entry(start)
                .or_insert((0, [Partial::default(); VITALS.len()]));
            bucket.0 += count;
            for (partial, [n, sum, min, max]) in bucket.1.iter_mut().zip(&columns) {
                partial.merge(Partial {
                    n: n[row].unwrap_or(0.0),
                    sum: sum[row].unwrap_or(0.0),
                    min: min[row],
                    max: max[row],
                });
            }
        }
    }
    Ok(newest)
}

/// Every patient's NEWS2 over the last `minutes`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WardTrend {
    pub from: i64,
    pub to: i64,
    pub step_ms: i64,
    /// Per patient: bucket starts (epoch ms) and the highest NEWS2 in each.
    #[schema(value_type = Object)]
    pub patients: std::collections::BTreeMap<String, Spark>,
}

/// One patient's sparkline.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Spark {
    pub t: Vec<i64>,
    pub news2: Vec<Option<f64>>,
}

/// `minutes` of a ward trend (default 60, at most a day).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WardTrendQuery {
    pub minutes: Option<i64>,
}

/// `GET /api/ward/trend`: the highest NEWS2 of every patient per bucket
/// over the last `minutes` (30 buckets), for the ward table's sparklines.
pub async fn ward_trend(
    State(state): State<AppState>,
    Query(query): Query<WardTrendQuery>,
) -> Result<(Extension<AuditDetail>, Json<WardTrend>), ApiError> {
    let minutes = query.minutes.unwrap_or(60);
    if !(1..=1440).contains(&minutes) {
        return Err(ApiError::Validation(vec![invalid(
            "minutes",
            format!("minutes must be between 1 and 1440 (got {minutes})"),
        )]));
    }
    let to_ms = chrono::Utc::now().timestamp_millis();
    let span = minutes * 60_000;
    let window = Window {
        from_ms: to_ms - span,
        to_ms,
        step_ms: span / SPARK_POINTS,
    };
    let session = session(&state)?;
    let trend = ward_news2(session, window, state.limits.query_timeout)
        .await
        .map_err(super::query::refusal)?;
    Ok((
        Extension(AuditDetail::rows(trend.patients.len())),
        Json(trend),
    ))
}

/// [`WardTrend`] over `window`.
pub async fn ward_news2(
    session: &QuerySession,
    window: Window,
    timeout: std::time::Duration,
) -> Result<WardTrend, QueryError> {
    let (filter, params) = range_filter(session, TABLE, window, 1).await;
    let sql = format!(
        "SELECT patient_id, date_bin(INTERVAL '{step} milliseconds', ts) AS t, \
         CAST(max(news2_score) AS DOUBLE) AS news2 \
         FROM {TABLE} WHERE {filter} GROUP BY 1, 2 ORDER BY 1, 2",
        step = window.step_ms,
    );
    let finished = session
        .run_with_params(
            &sql,
            params,
            read_only(),
            &[],
            Some(MAX_WARD_ROWS),
            timeout,
            Batches::new(MAX_WARD_ROWS),
        )
        .await?;
    let mut patients: std::collections::BTreeMap<String, Spark> = Default::default();
    for batch in &finished.collector.batches {
        let ids = batch
            .column_by_name("patient_id")
            .map(|c| arrow::compute::cast(c, &DataType::Utf8))
            .transpose()?
            .ok_or_else(|| QueryError::Internal("no patient_id column".into()))?;
        let ids = ids.as_string::<i32>();
        let times = epoch_ms(batch, "t")?;
        let scores = floats(batch, "news2")?;
        for ((i, t), score) in times.into_iter().enumerate().zip(scores) {
            if ids.is_null(i) {
                continue;
            }
            let Some(t) = t else { continue };
            let spark = patients.entry(ids.value(i).to_string()).or_default();
            spark.t.push(t);
            spark.news2.push(score);
        }
    }
    Ok(WardTrend {
        from: window.from_ms,
        to: window.to_ms,
        step_ms: window.step_ms,
        patients,
    })
}

/// Result batches, up to a number of rows.
struct Batches {
    batches: Vec<RecordBatch>,
    rows: usize,
    max_rows: usize,
}

impl Batches {
    fn new(max_rows: usize) -> Self {
        Self {
            batches: Vec::new(),
            rows: 0,
            max_rows,
        }
    }
}

impl Collector for Batches {
    fn take(&mut self, batch: RecordBatch) -> ControlFlow<()> {
        self.rows += batch.num_rows();
        self.batches.push(batch);
        if self.rows >= self.max_rows {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a Arc<dyn Array>, QueryError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| QueryError::Internal(format!("trend query: no column `{name}`")))
}

/// A timestamp column as epoch milliseconds.
fn epoch_ms(batch: &RecordBatch, name: &str) -> Result<Vec<Option<i64>>, QueryError> {
    let column = column(batch, name)?;
    let ms = arrow::compute::cast(
        column,
        &DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
    )?;
    let ms = arrow::compute::cast(&ms, &DataType::Int64)?;
    Ok(ms.as_primitive::<Int64Type>().iter().collect())
}

fn int64s(batch: &RecordBatch, name: &str) -> Result<Vec<i64>, QueryError> {
    let values = arrow::compute::cast(column(batch, name)?, &DataType::Int64)?;
    Ok(values
        .as_primitive::<Int64Type>()
        .iter()
        .map(|v| v.unwrap_or(0))
        .collect())
}

fn floats_exact(batch: &RecordBatch, name: &str) -> Result<Vec<Option<f64>>, QueryError> {
    let values = arrow::compute::cast(column(batch, name)?, &DataType::Float64)?;
    Ok(values.as_primitive::<Float64Type>().iter().collect())
}

fn floats(batch: &RecordBatch, name: &str) -> Result<Vec<Option<f64>>, QueryError> {
    // Two decimals at most: a chart needs no more, and the JSON stays small.
    Ok(floats_exact(batch, name)?
        .into_iter()
        .map(|v| v.map(|v| (v * 100.0).round() / 100.0))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(from: Option<&str>, to: Option<&str>, step: Option<&str>) -> RangeQuery {
        RangeQuery {
            from: from.map(String::from),
            to: to.map(String::from),
            step: step.map(String::from),
        }
    }

    #[test]
    fn the_default_window_is_the_last_hour_in_readable_steps() {
        let now = 1_800_000_000_000;
        let w = Window::resolve(&RangeQuery::default(), now).unwrap();
        assert_eq!((w.from_ms, w.to_ms), (now - 3_600_000, now));
        // 3,600 s / 500 = 7.2 s: the next readable step is 10 s.
        assert_eq!(w.step_ms, 10_000);
    }

    #[test]
    fn a_day_is_at_most_500_points() {
        let w = Window::resolve(
            &query(
                Some("2026-11-29T00:00:00Z"),
                Some("2026-11-30T00:00:00Z"),
                None,
            ),
            0,
        )
        .unwrap();
        assert_eq!(w.step_ms, 300_000);
        assert!((w.to_ms - w.from_ms) / w.step_ms <= TARGET_POINTS);
        assert_eq!(
            w.days(),
            ("2026-11-29".to_string(), "2026-11-29".to_string())
        );
    }

    #[test]
    fn steps_read_as_durations_or_milliseconds() {
        let q = |step: &str| Window::resolve(&query(Some("0"), Some("3600000"), Some(step)), 0);
        assert_eq!(q("30s").unwrap().step_ms, 30_000);
        assert_eq!(q("5m").unwrap().step_ms, 300_000);
        assert_eq!(q("60000").unwrap().step_ms, 60_000);
        let too_fine = q("1s").unwrap_err();
        assert!(too_fine.msg.contains("3600 points"), "{}", too_fine.msg);
        assert!(q("500ms").unwrap_err().msg.contains("at least 1s"));
        assert!(q("soon").unwrap_err().msg.contains("not a duration"));
    }

    #[test]
    fn bad_ranges_say_which_field_and_why() {
        let e = Window::resolve(&query(Some("yesterday"), None, None), 0).unwrap_err();
        assert_eq!(e.loc, vec![Value::from("query"), Value::from("from")]);
        assert!(e.msg.contains("RFC 3339"), "{}", e.msg);
        let e = Window::resolve(&query(Some("10"), Some("5"), None), 0).unwrap_err();
        assert!(e.msg.contains("before"));
        let e = Window::resolve(&query(Some("0"), Some(&(40 * DAY_MS).to_string()), None), 0)
            .unwrap_err();
        assert!(e.msg.contains("31 days"), "{}", e.msg);
    }
}
