//! [`RunOperators`]: the operators one run owns, started from the planned
//! transforms, and how batches, watermarks and checkpoints reach them.
//!
//! A stateless transform and a transform with state per instance have one
//! operator. A transform with state per source partition
//! ([`StateScope::Partition`]) has one operator per partition: started (and
//! restored from the checkpoint that matches the partition's offset) when
//! the partition is assigned or first seen, saved at every checkpoint, and
//! dropped when the partition is revoked, after the checkpoint that saved
//! it. Kafka Streams' tasks do the same with their state stores.

use std::collections::{BTreeMap, HashMap};

use arrow::record_batch::RecordBatch;

use super::checkpoint::tag_partition;
use super::error::EngineError;
use super::operator::Operator;
use super::plan::{PlannedPipeline, PlannedTransform, StateScope};
use crate::common::TopicPartition;

/// Which operator of a transform a batch belongs to: the source partition
/// its rows come from, or `None` for rows not processed per partition.
pub type StateKey = Option<TopicPartition>;

/// Batches of one table, each with the partition its rows come from.
pub type KeyedBatches = Vec<(StateKey, RecordBatch)>;

/// The watermarks operators advance to: per source, the source's
/// watermark and each partition's own.
#[derive(Debug, Default, Clone)]
pub struct WatermarkView {
    pub sources: HashMap<usize, SourceWatermarks>,
}

#[derive(Debug, Default, Clone)]
pub struct SourceWatermarks {
    pub current: Option<i64>,
    pub partitions: BTreeMap<TopicPartition, i64>,
}

impl WatermarkView {
    /// The watermark the operator of `transform` under `key` closes at.
    fn of(&self, transform: &PlannedTransform, key: &StateKey) -> Option<i64> {
        let source = self.sources.get(&transform.event_time_source?)?;
        match (transform.scope, key) {
            (StateScope::Partition, Some(partition)) => {
                source.partitions.get(partition).copied().or(source.current)
            }
            _ => source.current,
        }
    }
}

struct RunningTransform<'a> {
    planned: &'a PlannedTransform,
    /// One operator (key `None`), or one per partition.
    operators: BTreeMap<StateKey, Box<dyn Operator>>,
}

impl RunningTransform<'_> {
    /// The key of the operator that processes rows of `key`.
    fn owner(&self, key: &StateKey) -> StateKey {
        match self.planned.scope {
            StateScope::Partition => key.clone(),
            StateScope::Stateless | StateScope::Instance => None,
        }
    }

    /// The key the outputs of the operator for rows of `key` carry: rows
    /// stay with their partition unless the state spans partitions.
    fn output_key(&self, key: &StateKey) -> StateKey {
        match self.planned.scope {
            StateScope::Stateless | StateScope::Partition => key.clone(),
            StateScope::Instance => None,
        }
    }

    fn operator(&mut self, key: &StateKey) -> Result<&mut Box<dyn Operator>, EngineError> {
        let owner = self.owner(key);
        if !self.operators.contains_key(&owner) {
            let operator = self.start()?;
            self.operators.insert(owner.clone(), operator);
        }
        self.operators
            .get_mut(&owner)
            .ok_or_else(|| EngineError::Internal("operator vanished".to_string()))
    }

    fn start(&self) -> Result<Box<dyn Operator>, EngineError> {
        self.planned.plan.start().map_err(|e| self.failed(e))
    }

    fn failed(&self, error: super::OperatorError) -> EngineError {
        EngineError::component("transform", self.planned.name(), error)
    }

    fn is_stateful(&self) -> bool {
        self.planned.scope != StateScope::Stateless
    }
}

/// What [`RunOperators::checkpoint`] saved.
pub struct SavedOperators {
    /// Per stateful transform, its state with rows tagged by partition.
    pub state: Vec<(String, RecordBatch)>,
    /// State rows (window groups, alert keys) per partition.
    pub rows_per_partition: BTreeMap<TopicPartition, usize>,
}

/// The operators of one run, in dependency order.
pub struct RunOperators<'a> {
    transforms: Vec<RunningTransform<'a>>,
}

impl<'a> RunOperators<'a> {
    /// Fresh operators for a run of `planned` (per-partition ones start
    /// when their partition does).
    pub fn start(planned: &'a PlannedPipeline) -> Result<Self, EngineError> {
        let mut transforms = Vec::with_capacity(planned.transforms.len());
        for t in &planned.transforms {
            let mut running = RunningTransform {
                planned: t,
                operators: BTreeMap::new(),
            };
            if t.scope != StateScope::Partition {
                let operator = running.start()?;
                running.operators.insert(None, operator);
            }
            transforms.push(running);
        }
        Ok(Self { transforms })
    }

    /// Whether any transform keeps state (its state is checkpointed).
    pub fn any_stateful(&self) -> bool {
        self.transforms.iter().any(RunningTransform::is_stateful)
    }

    /// Run the batches of the `starts` tables through the operators
    /// downstream of them, then advance every stateful operator to its
    /// watermark (or, with `closing`, have each emit what it holds). Returns
    /// every table's new batches.
    pub async fn run(
        &mut self,
        starts: Vec<(String, KeyedBatches)>,
        watermarks: &WatermarkView,
        closing: bool,
    ) -> Result<HashMap<String, Vec<RecordBatch>>, EngineError> {
        let mut outputs: HashMap<String, KeyedBatches> = starts.into_iter().collect();
        for transform in &mut self.transforms {
            let mut produced: KeyedBatches = Vec::new();
            if let Some(inputs) = outputs.get(transform.planned.input()) {
                for (key, batch) in inputs.clone() {
                    let operator = transform.operator(&key)?;
                    let out = operator
                        .process(batch)
                        .await
                        .map_err(|e| transform.failed(e))?;
                    let output_key = transform.output_key(&key);
                    produced.extend(
                        out.into_iter()
                            .filter(|b| b.num_rows() > 0)
                            .map(|b| (output_key.clone(), b)),
                    );
                }
            }
            if transform.is_stateful() {
                let planned = transform.planned;
                for (key, operator) in transform.operators.iter_mut() {
                    let out = if closing {
                        operator.close().await
                    } else if let Some(watermark) = watermarks.of(planned, key) {
                        operator.advance(watermark).await
                    } else {
                        continue;
                    }
                    .map_err(|e| EngineError::component("transform", planned.name(), e))?;
                    produced.extend(
                        out.into_iter()
                            .filter(|b| b.num_rows() > 0)
                            .map(|b| (key.clone(), b)),
                    );
                }
            }
            if !produced.is_empty() {
                outputs
                    .entry(transform.planned.name().to_string())
                    .or_default()
                    .extend(produced);
            }
        }
        Ok(outputs
            .into_iter()
            .map(|(table, batches)| (table, batches.into_iter().map(|(_, b)| b).collect()))
            .collect())
    }

    /// Every stateful transform's state, rows tagged with their partition,
    /// and the state rows held per partition (for the metrics).
    pub async fn checkpoint(&mut self) -> Result<SavedOperators, EngineError> {
        let mut saved = Vec::new();
        let mut rows_per_partition: BTreeMap<TopicPartition, usize> = BTreeMap::new();
        for transform in self.transforms.iter_mut().filter(|t| t.is_stateful()) {
            let planned = transform.planned;
            let fail = |e| EngineError::component("transform", planned.name(), e);
            let mut parts = Vec::new();
            let mut schema = None;
            for (key, operator) in transform.operators.iter_mut() {
                if let Some(state) = operator.checkpoint().await.map_err(fail)? {
                    if let Some(partition) = key {
                        *rows_per_partition.entry(partition.clone()).or_default() +=
                            state.num_rows();
                    }
                    let tagged = tag_partition(&state, key.as_ref()).map_err(|e| fail(e.into()))?;
                    schema.get_or_insert_with(|| tagged.schema());
                    parts.push(tagged);
                }
            }
            if let Some(schema) = schema {
                let batch =
                    arrow::compute::concat_batches(&schema, &parts).map_err(|e| fail(e.into()))?;
                saved.push((planned.name().to_string(), batch));
            }
        }
        Ok(SavedOperators {
            state: saved,
            rows_per_partition,
        })
    }

    /// Restore state kept per instance (from a restarted run's checkpoint).
    /// Returns the rows restored; state of unknown transforms is reported.
    pub async fn restore_instance(
        &mut self,
        pipeline: &str,
        saved: BTreeMap<String, RecordBatch>,
    ) -> Result<usize, EngineError> {
        let mut rows = 0;
        for (name, batch) in saved {
            let Some(transform) = self
                .transforms
                .iter_mut()
                .find(|t| t.planned.name() == name && t.planned.scope == StateScope::Instance)
            else {
                if batch.num_rows() > 0 && !self.is_partitioned(&name) {
                    tracing::warn!(
                        pipeline = %pipeline,
                        transform = %name,
                        "the checkpoint holds state of a transform that no longer exists; it is dropped"
                    );
                }
                continue;
            };
            rows += batch.num_rows();
            let operator = transform.operator(&None)?;
            operator
                .restore(batch)
                .await
                .map_err(|e| EngineError::component("transform", &name, e))?;
        }
        Ok(rows)
    }

    fn is_partitioned(&self, name: &str) -> bool {
        self.transforms
            .iter()
            .any(|t| t.planned.name() == name && t.planned.scope == StateScope::Partition)
    }

    /// `partition` of `source` is now this run's: start its operators, with
    /// the state saved for it (`saved`, per transform, already reduced to
    /// the partition's rows) where there is some. Returns the rows restored.
    pub async fn assign(
        &mut self,
        source: usize,
        partition: &TopicPartition,
        saved: &BTreeMap<String, RecordBatch>,
    ) -> Result<usize, EngineError> {
        let mut rows = 0;
        let key = Some(partition.clone());
        for transform in self
            .transforms
            .iter_mut()
            .filter(|t| t.planned.scope == StateScope::Partition && t.planned.source == source)
        {
            let mut operator = transform.start()?;
            if let Some(state) = saved.get(transform.planned.name())
                && state.num_rows() > 0
            {
                rows += state.num_rows();
                operator
                    .restore(state.clone())
                    .await
                    .map_err(|e| transform.failed(e))?;
            }
            transform.operators.insert(key.clone(), operator);
        }
        Ok(rows)
    }

    /// `partitions` of `source` went to another instance (a checkpoint has
    /// just saved their state): drop their operators.
    pub fn revoke(&mut self, source: usize, partitions: &[TopicPartition]) {
        for transform in self
            .transforms
            .iter_mut()
            .filter(|t| t.planned.scope == StateScope::Partition && t.planned.source == source)
        {
            for partition in partitions {
                transform.operators.remove(&Some(partition.clone()));
            }
        }
    }

    /// Partitions of `source` with a running per-partition operator.
    pub fn partitions_of(&self, source: usize) -> Vec<TopicPartition> {
        let mut partitions: Vec<TopicPartition> = self
            .transforms
            .iter()
            .filter(|t| t.planned.scope == StateScope::Partition && t.planned.source == source)
            .flat_map(|t| t.operators.keys().flatten().cloned())
            .collect();
        partitions.sort();
        partitions.dedup();
        partitions
    }
}

/// `batch` cut into one batch per partition, given the partition of every
/// row as runs in row order (see `SourceBatch::row_partitions`). Rows keep
/// their order within a partition; partitions come in order of first
/// appearance.
pub fn split_by_partition(
    batch: &RecordBatch,
    runs: &[(TopicPartition, usize)],
) -> Result<Vec<(TopicPartition, RecordBatch)>, arrow::error::ArrowError> {
    let total: usize = runs.iter().map(|(_, n)| n).sum();
    if total != batch.num_rows() {
        return Err(arrow::error::ArrowError::InvalidArgumentError(format!(
            "row partitions cover {total} rows of a batch of {}",
            batch.num_rows()
        )));
    }
    let mut rows: Vec<(TopicPartition, Vec<(usize, usize)>)> = Vec::new();
    let mut offset = 0;
    for (partition, n) in runs {
        match rows.iter_mut().find(|(p, _)| p == partition) {
            Some((_, ranges)) => ranges.push((offset, *n)),
            None => rows.push((partition.clone(), vec![(offset, *n)])),
        }
        offset += n;
    }
    rows.into_iter()
        .map(|(partition, ranges)| {
            let part = if let [(start, n)] = ranges[..] {
                batch.slice(start, n)
            } else {
                let indices = arrow::array::UInt32Array::from_iter_values(
                    ranges
                        .iter()
                        .flat_map(|&(start, n)| (start as u32)..(start + n) as u32),
                );
                arrow::compute::take_record_batch(batch, &indices)?
            };
            Ok((partition, part))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::Int64Type;
    use std::sync::Arc;

    #[test]
    fn a_batch_splits_into_its_partitions_in_row_order() {
        let batch = RecordBatch::try_from_iter([(
            "v",
            Arc::new(Int64Array::from_iter_values(0..6)) as arrow::array::ArrayRef,
        )])
        .unwrap();
        let p = |n| TopicPartition::new("vitals", n);
        let parts =
            split_by_partition(&batch, &[(p(1), 2), (p(0), 1), (p(1), 1), (p(2), 2)]).unwrap();
        let values: Vec<(i32, Vec<i64>)> = parts
            .iter()
            .map(|(tp, b)| {
                let v = b.column(0).as_primitive::<Int64Type>().values().to_vec();
                (tp.partition, v)
            })
            .collect();
        assert_eq!(values, [(1, vec![0, 1, 3]), (0, vec![2]), (2, vec![4, 5])]);
        assert!(split_by_partition(&batch, &[(p(0), 5)]).is_err());
    }
}
