//! `kind: fhir_server`: resources to a FHIR server's base URL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

use super::resources::{Encoder, FhirResourcesConfig};
use crate::common::{EnvString, HumanDuration, Spanned};
use crate::sinks::{ConfigError, Sink, SinkError, SinkMessage, SinkSummary};

/// `kind: fhir_server`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FhirServerSinkConfig {
    /// The table to send.
    pub input: Spanned<String>,
    /// The server's base URL (`https://fhir.hospital.example/fhir`); the
    /// Bundles are POSTed to it.
    pub url: EnvString,
    /// A bearer token, if the server wants one (`${FHIR_TOKEN}`).
    #[serde(default)]
    pub token: Option<EnvString>,
    /// Which resources, from which columns.
    #[serde(default)]
    pub fhir: FhirResourcesConfig,
    /// Resources per Bundle.
    #[serde(default = "default_bundle_size")]
    pub bundle_size: usize,
    /// How long one request may take.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// How long a Bundle is retried (network errors, 429, 5xx) before the
    /// checkpoint fails; the rows are then sent again after the restart.
    #[serde(default = "default_retry_for")]
    pub retry_for: HumanDuration,
    /// Resources wait at most this long for a checkpoint to send them.
    #[serde(default = "default_max_delay")]
    pub max_delay: HumanDuration,
}

fn default_bundle_size() -> usize {
    500
}
fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}
fn default_retry_for() -> HumanDuration {
    HumanDuration(Duration::from_secs(300))
}
fn default_max_delay() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}

impl FhirServerSinkConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let url = self.url.as_str();
        let parsed = url::Url::parse(url)
            .map_err(|e| ConfigError::Invalid(format!("`url` `{url}` is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ConfigError::Invalid(format!(
                "`url` `{url}` must be http or https"
            )));
        }
        if self.bundle_size == 0 || self.bundle_size > 10_000 {
            return Err(ConfigError::Invalid(format!(
                "`bundle_size` must be between 1 and 10000, got {}",
                self.bundle_size
            )));
        }
        if self.timeout.0.is_zero() || self.max_delay.0.is_zero() {
            return Err(ConfigError::Invalid(
                "`timeout` and `max_delay` must be greater than zero".into(),
            ));
        }
        Ok(())
    }

    pub fn check_schema(&self, schema: &arrow::datatypes::SchemaRef) -> Result<(), ConfigError> {
        self.fhir.encoder(schema).map(|_| ())
    }

    pub fn build(
        &self,
        name: &str,
        schema: arrow::datatypes::SchemaRef,
    ) -> Result<FhirServerSink, SinkError> {
        let encoder = self.fhir.encoder(&schema).map_err(SinkError::Config)?;
        let client = reqwest::Client::builder()
            .timeout(self.timeout.0)
            .build()
            .map_err(|e| {
                SinkError::Config(ConfigError::Invalid(format!(
                    "building the HTTP client: {e}"
                )))
            })?;
        Ok(FhirServerSink {
            name: name.to_string(),
            config: self.clone(),
            encoder,
            client,
        })
    }
}

pub struct FhirServerSink {
    name: String,
    config: FhirServerSinkConfig,
    encoder: Encoder,
    client: reqwest::Client,
}

/// Why a Bundle was not accepted: worth retrying, or not.
enum Refusal {
    Retry(String),
    Permanent(String),
}

impl FhirServerSink {
    /// One Bundle of `PUT`s by id: the server creates or updates each.
    fn bundle(resources: &[Value]) -> Value {
        let entries: Vec<Value> = resources
            .iter()
            .map(|r| {
                let url = format!(
                    "{}/{}",
                    r["resourceType"].as_str().unwrap_or("Observation"),
                    r["id"].as_str().unwrap_or("")
                );
                json!({"fullUrl": url, "resource": r, "request": {"method": "PUT", "url": url}})
            })
            .collect();
        json!({"resourceType": "Bundle", "type": "batch", "entry": entries})
    }

    async fn post(&self, bundle: &Value) -> Result<(), Refusal> {
        let mut request = self
            .client
            .post(self.config.url.as_str())
            .header("content-type", "application/fhir+json")
            .header("accept", "application/fhir+json")
            .body(bundle.to_string());
        if let Some(token) = &self.config.token {
            request = request.bearer_auth(token.as_str());
        }
        let response = request
            .send()
            .await
            .map_err(|e| Refusal::Retry(format!("{}: {e}", self.config.url.as_str())))?;
        let status = response.status();
        let body = bounded_body(response).await;
        if status.as_u16() == 429 || status.is_server_error() {
            return Err(Refusal::Retry(format!("the server answered {status}")));
        }
        if !status.is_success() {
            return Err(Refusal::Permanent(format!(
                "the server refused the Bundle with {status}: {}",
                body.chars().take(500).collect::<String>()
            )));
        }
        // A batch answers per entry: any entry not 2xx is refused.
        let answer: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let refused: Vec<String> = answer["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, e)| {
                let status = e["response"]["status"].as_str().unwrap_or("");
                (!status.starts_with('2')).then(|| format!("entry[{i}]: {status}"))
            })
            .collect();
        if refused.is_empty() {
            Ok(())
        } else if refused
            .iter()
            .all(|r| r.contains(": 5") || r.contains(": 429"))
        {
            Err(Refusal::Retry(format!(
                "entries failed: {}",
                refused.join(", ")
            )))
        } else {
            Err(Refusal::Permanent(format!(
                "the server refused entries: {}",
                refused.join(", ")
            )))
        }
    }

    /// Send everything pending, each Bundle retried with back-off.
    async fn deliver(&self, pending: &mut Vec<Value>) -> Result<u64, SinkError> {
        let mut sent = 0;
        for chunk in pending.chunks(self.config.bundle_size) {
            let bundle = Self::bundle(chunk);
            let started = Instant::now();
            let mut delays = crate::common::backoff::exponential(
                Duration::from_millis(200),
                Duration::from_secs(10),
            );
            loop {
                match self.post(&bundle).await {
                    Ok(()) => break,
                    Err(Refusal::Retry(why)) if started.elapsed() < self.config.retry_for.0 => {
                        let delay = delays.next().unwrap_or(Duration::from_secs(10));
                        tracing::warn!(sink = %self.name, reason = %why, retry_in_ms = delay.as_millis() as u64, "FHIR server not reached; retrying");
                        tokio::time::sleep(delay).await;
                    }
                    Err(Refusal::Retry(why)) | Err(Refusal::Permanent(why)) => {
                        return Err(SinkError::CheckpointFailed(format!(
                            "sink `{}`: {why}",
                            self.name
                        )));
                    }
                }
            }
            sent += chunk.len() as u64;
        }
        pending.clear();
        Ok(sent)
    }
}

/// The largest answer read from a FHIR server (a `batch-response` to 500
/// entries is ~100 KiB); beyond it the rest is not read.
const MAX_ANSWER_BYTES: usize = 4 << 20;

/// At most [`MAX_ANSWER_BYTES`] of the answer, as text.
async fn bounded_body(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_ANSWER_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == MAX_ANSWER_BYTES {
            break;
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

#[async_trait::async_trait]
impl Sink for FhirServerSink {
    async fn run(
        self: Box<Self>,
        mut input: mpsc::Receiver<SinkMessage>,
        checkpoint_wanted: Arc<Notify>,
    ) -> Result<SinkSummary, SinkError> {
        let mut summary = SinkSummary {
            location: self.config.url.as_str().to_string(),
            ..Default::default()
        };
        let mut pending: Vec<Value> = Vec::new();
        let mut oldest: Option<Instant> = None;
        while let Some(message) = input.recv().await {
            match message {
                SinkMessage::Data(batch) => {
                    let resources = self.encoder.encode(&batch)?;
                    if !resources.is_empty() {
                        oldest.get_or_insert_with(Instant::now);
                    }
                    pending.extend(resources.into_iter().map(|(_, r)| r));
                }
                SinkMessage::Checkpoint(reply) => {
                    let result = self.deliver(&mut pending).await;
                    oldest = None;
                    match result {
                        Ok(sent) => {
                            summary.rows += sent;
                            let _ = reply.send(Ok(Vec::new()));
                        }
                        Err(error) => {
                            let text = error.to_string();
                            let _ = reply.send(Err(error));
                            return Err(SinkError::CheckpointFailed(text));
                        }
                    }
                }
                SinkMessage::Tick => {
                    if oldest.is_some_and(|t| t.elapsed() >= self.config.max_delay.0) {
                        checkpoint_wanted.notify_one();
                    }
                }
            }
        }
        Ok(summary)
    }
}
