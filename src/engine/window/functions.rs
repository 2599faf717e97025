//! `tumble`, `hop` and `session`: the window functions of a windowed GROUP
//! BY, with Arroyo's names and argument order so that pipelines stay
//! portable to an Arroyo cluster.
//!
//! They are registered as ordinary scalar functions so DataFusion can plan
//! the SQL (types, names, the struct column a query selects), but they are
//! never evaluated row by row: the window planner takes them out of the
//! GROUP BY and the window operator assigns rows to windows itself. Called
//! anywhere else they fail with an explanation.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, IntervalMonthDayNano, TimeUnit};
use datafusion::common::{Result as DfResult, ScalarValue, plan_err};

use crate::engine::EngineError;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// Which windows a row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// Fixed, non-overlapping windows of `width` ms aligned to the epoch.
    Tumble { width: i64 },
    /// Windows of `width` ms starting every `slide` ms (`width` a multiple
    /// of `slide`): each row is in `width / slide` windows.
    Hop { slide: i64, width: i64 },
    /// Per key, rows closer than `gap` ms to each other share a window,
    /// which ends `gap` after its last row.
    Session { gap: i64 },
}

impl std::fmt::Display for WindowKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WindowKind::Tumble { width } => write!(f, "tumble({width} ms)"),
            WindowKind::Hop { slide, width } => write!(f, "hop({slide} ms, {width} ms)"),
            WindowKind::Session { gap } => write!(f, "session({gap} ms)"),
        }
    }
}

/// The type of the window column: `{start, end}` in UTC milliseconds.
pub fn window_type() -> DataType {
    DataType::Struct(window_fields())
}

pub fn window_fields() -> Fields {
    let time = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    Fields::from(vec![
        Field::new("start", time.clone(), false),
        Field::new("end", time, false),
    ])
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct WindowFunction {
    name: &'static str,
    signature: Signature,
}

impl ScalarUDFImpl for WindowFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(window_type())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        plan_err!(
            "{}() only works as a GROUP BY key of a windowed aggregate \
             (e.g. GROUP BY patient_id, {}(...))",
            self.name,
            self.name
        )
    }
}

fn udf(name: &'static str, arguments: usize) -> ScalarUDF {
    ScalarUDF::new_from_impl(WindowFunction {
        name,
        // Volatile: the optimizer must never try to fold a call away.
        signature: Signature::any(arguments, Volatility::Volatile),
    })
}

/// The three window functions, to register in a planning session.
pub fn window_udfs() -> Vec<Arc<ScalarUDF>> {
    vec![
        Arc::new(udf("tumble", 1)),
        Arc::new(udf("hop", 2)),
        Arc::new(udf("session", 1)),
    ]
}

/// Whether `expr` is (an alias of) a call of a window function.
pub fn is_window_call(expr: &Expr) -> bool {
    matches!(expr.clone().unalias_nested().data, Expr::ScalarFunction(f) if ["tumble", "hop", "session"].contains(&f.name()))
}

/// The window a GROUP BY key describes; `Ok(None)` if it is not a window
/// call, an error if it is one with bad arguments.
pub fn window_kind(expr: &Expr) -> Result<Option<WindowKind>, EngineError> {
    let Expr::ScalarFunction(call) = expr.clone().unalias_nested().data else {
        return Ok(None);
    };
    let name = call.name().to_string();
    let millis = |i: usize| -> Result<i64, EngineError> {
        let argument = &call.args[i];
        let ms = interval_millis(argument).ok_or_else(|| {
            EngineError::Plan(format!("{name}(): argument {} must be an interval literal such as interval '1 minute', got {argument}", i + 1))
        })?;
        if ms <= 0 {
            return Err(EngineError::Plan(format!(
                "{name}(): argument {} must be a positive interval, got {argument}",
                i + 1
            )));
        }
        Ok(ms)
    };
    let kind = match name.as_str() {
        "tumble" => WindowKind::Tumble { width: millis(0)? },
        "session" => WindowKind::Session { gap: millis(0)? },
        "hop" => {
            let (slide, width) = (millis(0)?, millis(1)?);
            if width < slide || width % slide != 0 {
                return Err(EngineError::Plan(format!(
                    "hop(slide, width): the width ({width} ms) must be a multiple of the slide ({slide} ms)"
                )));
            }
            WindowKind::Hop { slide, width }
        }
        _ => return Ok(None),
    };
    Ok(Some(kind))
}

/// The length of an interval literal in milliseconds; months are refused
/// (their length varies).
fn interval_millis(expr: &Expr) -> Option<i64> {
    let Expr::Literal(value, _) = expr.clone().unalias_nested().data else {
        return None;
    };
    match value {
        ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano {
            months: 0,
            days,
            nanoseconds,
        })) => Some(i64::from(days) * 86_400_000 + nanoseconds / 1_000_000),
        ScalarValue::IntervalDayTime(Some(v)) => {
            Some(i64::from(v.days) * 86_400_000 + i64::from(v.milliseconds))
        }
        _ => None,
    }
}
