//! JSON request and response types of the REST API (and their OpenAPI schemas).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The eight features of the diabetes risk model, as the original FastAPI
/// service took them. Dataset column names (`Glucose`, `BloodPressure`, ...)
/// are accepted as aliases. Ranges are inclusive; 0 means "not measured" for
/// glucose, blood pressure, skin thickness, insulin and BMI, as in the
/// training data.
#[derive(Debug, Clone, ToSchema)]
#[allow(dead_code)] // Documents the request body; parsing is field by field (validation.rs).
#[schema(example = json!({"pregnancies": 6, "glucose": 148, "blood_pressure": 72, "skin_thickness": 35, "insulin": 0, "bmi": 33.6, "diabetes_pedigree_function": 0.627, "age": 50}))]
pub struct PatientFeatures {
    /// Number of pregnancies (whole number).
    #[schema(minimum = 0, maximum = 20)]
    pub pregnancies: f64,
    /// Plasma glucose, 2-hour oral glucose tolerance test (mg/dL).
    #[schema(minimum = 0, maximum = 300)]
    pub glucose: f64,
    /// Diastolic blood pressure (mmHg).
    #[schema(minimum = 0, maximum = 200)]
    pub blood_pressure: f64,
    /// Triceps skin-fold thickness (mm).
    #[schema(minimum = 0, maximum = 100)]
    pub skin_thickness: f64,
    /// 2-hour serum insulin (µU/mL).
    #[schema(minimum = 0, maximum = 1000)]
    pub insulin: f64,
    /// Body-mass index (kg/m²).
    #[schema(minimum = 0, maximum = 80)]
    pub bmi: f64,
    /// Diabetes pedigree function.
    #[schema(minimum = 0, maximum = 3)]
    pub diabetes_pedigree_function: f64,
    /// Age in years (whole number).
    #[schema(minimum = 1, maximum = 120)]
    pub age: f64,
}

/// `POST /predict/batch` body.
#[derive(Debug, Clone, ToSchema)]
#[allow(dead_code)]
pub struct BatchRequest {
    /// Up to 1,000 patients.
    pub instances: Vec<PatientFeatures>,
}

/// A risk prediction.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Prediction {
    /// P(diabetes), 0..1.
    pub probability: f64,
    /// `low` (p < 0.3), `moderate` (0.3 ≤ p < 0.6) or `high` (p ≥ 0.6).
    pub risk_level: String,
    /// 1 if p > 0.5, else 0.
    pub label: u8,
    /// Probability of the predicted label: max(p, 1 - p).
    pub confidence: f64,
    pub model_version: String,
}

/// `POST /predict/batch` response, in request order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BatchPrediction {
    pub predictions: Vec<Prediction>,
}

/// One feature's SHAP contribution.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Contribution {
    /// API field name.
    pub feature: String,
    /// The value sent.
    pub value: f64,
    /// Contribution to the probability (positive raises the risk).
    pub shap_value: f64,
}

/// `POST /explain` response: `base_value + Σ shap_value = probability`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Explanation {
    #[serde(flatten)]
    pub prediction: Prediction,
    /// The model's average prediction over its training data.
    pub base_value: f64,
    /// Per feature, in request-field order.
    pub contributions: Vec<Contribution>,
}

/// Explanations of a batch, in request order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BatchExplanation {
    pub explanations: Vec<Explanation>,
}

/// `GET /health`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` when the model is not loaded or a remote store fails.
    pub status: String,
    pub model_loaded: bool,
    pub model_name: Option<String>,
    pub model_version: Option<String>,
    /// Why the model is not loaded, if it is not.
    pub model_error: Option<String>,
    pub version: String,
    pub uptime_seconds: f64,
    /// Remote datasets of the running pipeline: `degraded` while uploads
    /// fail and files wait in the local spool.
    pub storage: Vec<StorageHealth>,
    /// Source partitions the pipeline in this process owns now (empty
    /// without one, or before the consumer group assigned any).
    pub partitions: Vec<PartitionHealth>,
}

/// An owned source partition as `/health` shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PartitionHealth {
    pub source: String,
    pub topic: String,
    pub partition: i32,
    /// The next offset to read.
    pub next_offset: Option<i64>,
    /// Messages behind the partition's end (from the client's statistics).
    pub lag: Option<i64>,
    /// The partition's own watermark, RFC 3339.
    pub watermark: Option<String>,
    /// State rows (window groups, alert keys) at the last checkpoint.
    pub state_rows: usize,
    /// RFC 3339 time of the last checkpoint that saved it.
    pub last_checkpoint: Option<String>,
}

impl PartitionHealth {
    pub fn new(
        source: String,
        partition: crate::common::TopicPartition,
        status: crate::common::PartitionStatus,
    ) -> Self {
        Self {
            source,
            topic: partition.topic,
            partition: partition.partition,
            next_offset: status.next_offset,
            lag: status.lag,
            watermark: status
                .watermark_ms
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| t.to_rfc3339()),
            state_rows: status.state_rows,
            last_checkpoint: status.last_checkpoint.map(|t| t.to_rfc3339()),
        }
    }
}

/// A remote dataset as `/health` shows it: states and counts only. Local
/// paths and the store's error text stay in the log and the metrics.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StorageHealth {
    /// The sink writing the dataset.
    pub sink: String,
    /// `s3://bucket/prefix` or `hdfs://namenode:port/path`.
    pub target: String,
    /// `ok`, or `degraded` while uploads fail.
    pub state: String,
    /// The spool is full and the pipeline waits for uploads to free room.
    pub paused: bool,
    pub waiting_files: u64,
    pub waiting_bytes: u64,
    pub uploaded_files: u64,
    /// RFC 3339 time of the first failure of the current outage.
    pub degraded_since: Option<String>,
}

impl From<crate::storage::status::StoreStatus> for StorageHealth {
    fn from(s: crate::storage::status::StoreStatus) -> Self {
        Self {
            sink: s.sink,
            target: s.target,
            state: s.state,
            paused: s.paused,
            waiting_files: s.waiting_files,
            waiting_bytes: s.waiting_bytes,
            uploaded_files: s.uploaded_files,
            degraded_since: s.degraded_since,
        }
    }
}

/// `POST /api/query` request.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// One SQL query; tables are the pipeline's datasets (`vitals`, and
    /// every file sink by its name).
    pub sql: String,
    /// Rows returned at most (10,000 at most).
    pub max_rows: Option<usize>,
}

/// A column of a query result.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QueryColumn {
    pub name: String,
    /// Arrow type, e.g. `Int64`, `Timestamp(ms, "UTC")`.
    pub data_type: String,
}

/// `POST /api/query` response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QueryResult {
    pub columns: Vec<QueryColumn>,
    /// One JSON object per row (nulls omitted).
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<serde_json::Value>,
    pub row_count: usize,
    /// More rows matched than were returned.
    pub truncated: bool,
    /// Why the rows were cut: more than `max_rows` matched, or the JSON
    /// passed the server's byte cap (`--query-max-bytes`).
    pub truncated_reason: Option<String>,
    /// Why results may be partial: a remote store that could not be listed
    /// and whose locally spooled files alone were read.
    pub warnings: Vec<String>,
    pub elapsed_ms: f64,
}

/// One problem with a request, FastAPI-style.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    /// Where: `["body", "glucose"]` or `["body", "instances", 3, "age"]`.
    #[schema(value_type = Vec<Object>)]
    pub loc: Vec<serde_json::Value>,
    pub msg: String,
    /// Machine-readable kind: `missing`, `extra_forbidden`, `float_type`,
    /// `finite_number`, `greater_than_equal`, `less_than_equal`, `int_type`,
    /// `json_invalid`, `too_long`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// The body of every 4xx/5xx response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    pub detail: Vec<FieldError>,
}
