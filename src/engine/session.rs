//! The DataFusion session every streaming operator plans in.

use datafusion::execution::context::SessionConfig;
use datafusion::prelude::SessionContext;

/// Rows per batch inside operator plans; matches the simulator's unpaced
/// batch so a batch is rarely split or merged on the way through.
pub const OPERATOR_BATCH_ROWS: usize = 16_384;

/// One partition: parallelism comes from running sources, operators and
/// sinks on separate tasks, not from repartitioning each micro-batch (which
/// would cost more than it saves at micro-batch sizes).
pub fn streaming_session() -> SessionContext {
    let ctx = SessionContext::new_with_config(streaming_session_config());
    // Known to every planner so windowed SQL resolves; only the window
    // operator gives them meaning.
    for udf in super::window::window_udfs() {
        ctx.register_udf(udf.as_ref().clone());
    }
    ctx
}

/// The settings of [`streaming_session`].
pub fn streaming_session_config() -> SessionConfig {
    let mut config = SessionConfig::new()
        .with_target_partitions(1)
        .with_batch_size(OPERATOR_BATCH_ROWS)
        .with_information_schema(false);
    // Plans are executed again and again (once per micro-batch or emitted
    // window); a dynamic filter from one execution would wrongly prune the
    // next. See [`super::micro_batch::RepeatedPlan`].
    let optimizer = &mut config.options_mut().optimizer;
    optimizer.enable_dynamic_filter_pushdown = false;
    optimizer.enable_join_dynamic_filter_pushdown = false;
    optimizer.enable_topk_dynamic_filter_pushdown = false;
    optimizer.enable_aggregate_dynamic_filter_pushdown = false;
    config
}
