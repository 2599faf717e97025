//! The model's own worker threads. Single-row predictions and explanations
//! from concurrent requests queue here and run in batches, off the async
//! workers (which serve every other request, and in `up` the pipeline too),
//! on one thread per core but one.
//!
//! Why not one task per request on tokio's blocking pool: an explanation is
//! tens of microseconds of CPU, a prediction a few, and handing each to a
//! pooled thread and back (a wake-up, two context switches and a wake of
//! the awaiting task) cost about as much again; under load a third of the
//! server's CPU went to those switches (`perf` over `scripts/bench-api.sh`).
//! Here a worker that finds the queue non-empty takes everything waiting
//! (up to [`MAX_BATCH`] rows) and runs it as one batch: the explainer's
//! tables are read once for all of its rows, and a busy worker never
//! sleeps between requests. An idle one blocks on the queue, so a lone
//! request is not delayed by any batching window.
//!
//! Results do not depend on batching: a row's prediction and explanation
//! are computed in the same order whatever else is in its batch (equal to
//! the last bit; a unit test checks it).

use std::sync::{Arc, Mutex, OnceLock, mpsc};

use tokio::sync::oneshot;

use crate::models::{Explanation, ModelError, RiskModel};
use crate::telemetry::events::ModelBatched;

/// Rows one batch takes at most.
pub const MAX_BATCH: usize = 64;

/// What a queued row asks for, and where its answer goes.
enum Reply {
    Predict(Answer<f64>),
    Explain(Answer<Explanation>),
}

/// Where one row's result goes.
type Answer<T> = oneshot::Sender<Result<T, ModelError>>;

/// One queued row (raw features).
struct Job {
    row: Vec<f64>,
    reply: Reply,
}

/// Why a queued row got no answer.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("the model's worker threads are not running")]
    Stopped,
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// The queue and the threads that serve it, started on first use; they
/// stop when this is dropped (the queue closes).
pub struct ModelWorkers {
    model: Arc<RiskModel>,
    threads: usize,
    queue: OnceLock<mpsc::Sender<Job>>,
}

impl ModelWorkers {
    /// Workers for `model`: `threads` of them (at least one).
    pub fn new(model: Arc<RiskModel>, threads: usize) -> Self {
        Self {
            model,
            threads: threads.max(1),
            queue: OnceLock::new(),
        }
    }

    /// One worker per core but one (at least one): the async workers keep
    /// a core for the HTTP work around the model's.
    pub fn per_core(model: Arc<RiskModel>) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::new(model, cores.saturating_sub(1))
    }

    /// P(positive) for one raw row.
    pub async fn predict(&self, row: Vec<f64>) -> Result<f64, WorkerError> {
        let (tx, rx) = oneshot::channel();
        self.submit(row, Reply::Predict(tx))?;
        Ok(rx.await.map_err(|_| WorkerError::Stopped)??)
    }

    /// Prediction and SHAP contributions for one raw row.
    pub async fn explain(&self, row: Vec<f64>) -> Result<Explanation, WorkerError> {
        let (tx, rx) = oneshot::channel();
        self.submit(row, Reply::Explain(tx))?;
        Ok(rx.await.map_err(|_| WorkerError::Stopped)??)
    }

    fn submit(&self, row: Vec<f64>, reply: Reply) -> Result<(), WorkerError> {
        self.queue()
            .send(Job { row, reply })
            .map_err(|_| WorkerError::Stopped)
    }

    fn queue(&self) -> &mpsc::Sender<Job> {
        self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel();
            let rx = Arc::new(Mutex::new(rx));
            for i in 0..self.threads {
                let (model, rx) = (self.model.clone(), rx.clone());
                let spawned = std::thread::Builder::new()
                    .name(format!("vitalflow-model-{i}"))
                    .spawn(move || serve(&model, &rx));
                if let Err(e) = spawned {
                    // With none running the queue closes and requests get
                    // `Stopped` (500) rather than waiting forever.
                    tracing::error!(error = %e, "cannot start a model worker thread");
                }
            }
            tx
        })
    }
}

/// A worker's loop: wait for a row, take whatever else is queued, run it;
/// ends when the queue closes.
fn serve(model: &RiskModel, queue: &Mutex<mpsc::Receiver<Job>>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        {
            // The lock only hands rows out; a poisoned one (a panic while
            // receiving) cannot leave the queue inconsistent.
            let rx = queue.lock().unwrap_or_else(|p| p.into_inner());
            if !take_batch(&rx, &mut batch) {
                return;
            }
        }
        run(model, &mut batch);
    }
}

/// Wait for one job, then add every job already queued, up to
/// [`MAX_BATCH`] in all; false when the queue has closed.
fn take_batch<J>(rx: &mpsc::Receiver<J>, batch: &mut Vec<J>) -> bool {
    match rx.recv() {
        Ok(job) => batch.push(job),
        Err(_) => return false,
    }
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    true
}

/// Answer every job of `batch` (emptied): the predictions as one batch,
/// the explanations as another.
fn run(model: &RiskModel, batch: &mut Vec<Job>) {
    let (mut predict, mut explain) = (Vec::new(), Vec::new());
    for job in batch.drain(..) {
        match job.reply {
            Reply::Predict(tx) => predict.push((job.row, tx)),
            Reply::Explain(tx) => explain.push((job.row, tx)),
        }
    }
    if !predict.is_empty() {
        ModelBatched {
            operation: "predict",
            rows: predict.len(),
        }
        .emit();
        answer(
            predict,
            |rows| model.predict_trees(rows),
            |row| {
                model.predict_trees(row).and_then(|p| {
                    p.first()
                        .copied()
                        .ok_or_else(|| ModelError::InvalidInput("no prediction".into()))
                })
            },
        );
    }
    if !explain.is_empty() {
        ModelBatched {
            operation: "explain",
            rows: explain.len(),
        }
        .emit();
        answer(
            explain,
            |rows| model.explain_batch(rows),
            |row| model.explain(row),
        );
    }
}

/// Run `rows` through `all` in one call and send each its result; if the
/// batch fails (one row the model refuses), each row is run alone through
/// `one` so that only that row gets the error.
fn answer<T>(
    rows: Vec<(Vec<f64>, Answer<T>)>,
    all: impl Fn(&[f64]) -> Result<Vec<T>, ModelError>,
    one: impl Fn(&[f64]) -> Result<T, ModelError>,
) {
    let flat: Vec<f64> = rows
        .iter()
        .flat_map(|(row, _)| row.iter().copied())
        .collect();
    let widths_agree = rows.iter().all(|(row, _)| row.len() == rows[0].0.len());
    match all(&flat) {
        Ok(results) if widths_agree && results.len() == rows.len() => {
            for ((_, tx), result) in rows.into_iter().zip(results) {
                // The request may have gone (client away): nothing to do.
                let _ = tx.send(Ok(result));
            }
        }
        _ => {
            for (row, tx) in rows {
                let _ = tx.send(one(&row));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Arc<RiskModel> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
        Arc::new(RiskModel::load(&dir.join("diabetes_rf.onnx")).expect("shipped model"))
    }

    fn rows(n: usize) -> Vec<Vec<f64>> {
        (0..n)
            .map(|i| {
                let i = i as f64;
                vec![
                    i % 10.0,
                    90.0 + i,
                    60.0 + i % 30.0,
                    20.0,
                    (i * 7.0) % 200.0,
                    25.0 + i % 15.0,
                    0.3 + (i % 10.0) / 20.0,
                    21.0 + i % 50.0,
                ]
            })
            .collect()
    }

    #[tokio::test]
    async fn concurrent_rows_get_their_own_answers_bit_for_bit() {
        let model = shipped();
        let workers = Arc::new(ModelWorkers::new(model.clone(), 2));
        let mut tasks = tokio::task::JoinSet::new();
        for (i, row) in rows(200).into_iter().enumerate() {
            let workers = workers.clone();
            tasks.spawn(async move {
                if i % 2 == 0 {
                    (row.clone(), None, Some(workers.explain(row).await.unwrap()))
                } else {
                    (row.clone(), Some(workers.predict(row).await.unwrap()), None)
                }
            });
        }
        let mut answered = 0;
        while let Some(done) = tasks.join_next().await {
            let (row, p, e) = done.unwrap();
            if let Some(p) = p {
                assert_eq!(p.to_bits(), model.predict_trees(&row).unwrap()[0].to_bits());
            }
            if let Some(e) = e {
                let alone = model.explain(&row).unwrap();
                assert_eq!(e.probability.to_bits(), alone.probability.to_bits());
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&e.contributions),
                    bits(&alone.contributions),
                    "{row:?}"
                );
            }
            answered += 1;
        }
        assert_eq!(answered, 200);
    }

    #[test]
    fn a_batch_is_everything_queued_up_to_the_limit() {
        let (tx, rx) = mpsc::channel();
        for i in 0..MAX_BATCH + 6 {
            tx.send(i).unwrap();
        }
        let mut batch = Vec::new();
        assert!(take_batch(&rx, &mut batch));
        assert_eq!(batch, (0..MAX_BATCH).collect::<Vec<_>>());
        batch.clear();
        assert!(take_batch(&rx, &mut batch));
        assert_eq!(batch, (MAX_BATCH..MAX_BATCH + 6).collect::<Vec<_>>());
        drop(tx);
        batch.clear();
        assert!(
            !take_batch(&rx, &mut batch),
            "a closed queue ends the worker"
        );
        assert!(batch.is_empty());
    }

    #[test]
    fn a_refused_row_fails_alone_and_the_rest_of_its_batch_is_answered() {
        let model = shipped();
        let mut batch = Vec::new();
        let mut waiting = Vec::new();
        let mut all = rows(5);
        // A row of the wrong width: the model refuses it.
        all[2].pop();
        for row in all {
            let (reply, answer) = oneshot::channel();
            batch.push(Job {
                row,
                reply: Reply::Explain(reply),
            });
            waiting.push(answer);
        }
        run(&model, &mut batch);
        assert!(batch.is_empty());
        for (i, mut answer) in waiting.into_iter().enumerate() {
            let answer = answer.try_recv().expect("answered");
            assert_eq!(answer.is_ok(), i != 2, "{i}: {answer:?}");
        }
    }

    #[tokio::test]
    async fn a_stopped_pool_says_so() {
        let workers = ModelWorkers::new(shipped(), 1);
        // A queue whose receiving end is gone, as when no thread started.
        let (tx, rx) = mpsc::channel();
        drop(rx);
        workers.queue.set(tx).unwrap();
        let answer = workers.explain(rows(1).remove(0)).await;
        assert!(matches!(answer, Err(WorkerError::Stopped)), "{answer:?}");
    }
}
