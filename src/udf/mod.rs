//! Arroyo UDF plugins: Rust functions written with `arroyo-udf-plugin`'s
//! `#[udf]`, built as dylibs in the separate `udfs/` workspace, loaded here
//! and registered as DataFusion functions.
//!
//! - [`compile`]: build the plugin crate if stale, find its dylib.
//! - [`signature`]: the SQL signature, from the crate's Rust source.
//! - [`ffi`]: the `__run` ABI over the Arrow C Data Interface.
//! - [`plugin`]: scalar and aggregate DataFusion functions calling it.
//!
//! Plugins are loaded once per process and never unloaded: arrays a plugin
//! returned are released by plugin code.

pub mod compile;
mod events;
pub mod ffi;
pub mod plugin;
pub mod signature;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use datafusion::logical_expr::{AggregateUDF, ScalarUDF};
use datafusion::prelude::SessionContext;

pub use compile::PluginCrate;
use ffi::RunFn;
use plugin::{PluginAggregate, PluginFunction, PluginScalar};
pub use signature::{SignatureError, TypeError, UdfSignature, UdfType, parse_signature};

/// Why a plugin could not be used.
#[derive(Debug, thiserror::Error)]
pub enum UdfError {
    #[error("UDF crate {dir}: {reason}")]
    Crate { dir: PathBuf, reason: String },
    #[error("building UDF `{package}` failed:\n{output}")]
    Build { package: String, output: String },
    #[error(
        "UDF `{package}` is not built ({dylib} is missing) and cargo is not available to build it"
    )]
    Missing { package: String, dylib: PathBuf },
    #[error(
        "UDF `{package}`: {dylib} is older than its sources and cargo is not available to rebuild it"
    )]
    Stale { package: String, dylib: PathBuf },
    #[error("UDF `{package}`: {reason}")]
    Load { package: String, reason: String },
    #[error(transparent)]
    Signature(#[from] signature::SignatureError),
}

/// A plugin ready to register.
#[derive(Debug, Clone)]
pub enum LoadedUdf {
    Scalar(Arc<ScalarUDF>),
    Aggregate(Arc<AggregateUDF>),
}

impl LoadedUdf {
    pub fn name(&self) -> &str {
        match self {
            LoadedUdf::Scalar(f) => f.name(),
            LoadedUdf::Aggregate(f) => f.name(),
        }
    }

    pub fn register(&self, ctx: &SessionContext) {
        match self {
            LoadedUdf::Scalar(f) => ctx.register_udf(f.as_ref().clone()),
            LoadedUdf::Aggregate(f) => ctx.register_udaf(f.as_ref().clone()),
        }
    }
}

/// Libraries stay loaded for the life of the process, keyed by the copy
/// that was loaded (a rebuilt plugin is a new copy, so a long-lived process
/// such as a test run picks up the new code).
fn libraries() -> &'static Mutex<HashMap<PathBuf, &'static libloading::Library>> {
    static LIBRARIES: OnceLock<Mutex<HashMap<PathBuf, &'static libloading::Library>>> =
        OnceLock::new();
    LIBRARIES.get_or_init(Default::default)
}

/// Build (if stale), load and wrap the plugin crate in `dir`.
pub fn load_plugin(dir: &Path) -> Result<LoadedUdf, UdfError> {
    let krate = PluginCrate::open(dir)?;
    let source_path = krate.source();
    let source = std::fs::read_to_string(&source_path).map_err(|e| UdfError::Crate {
        dir: dir.to_path_buf(),
        reason: format!("cannot read {}: {e}", source_path.display()),
    })?;
    let signature = parse_signature(&source, &source_path)?;
    let dylib = krate.ensure_built()?;
    let run = load_run(&krate.package, &dylib)?;
    let function = PluginFunction::new(signature.clone(), dylib.display().to_string(), run);
    Ok(if signature.aggregate {
        LoadedUdf::Aggregate(Arc::new(AggregateUDF::new_from_impl(PluginAggregate(
            function,
        ))))
    } else {
        LoadedUdf::Scalar(Arc::new(ScalarUDF::new_from_impl(PluginScalar(function))))
    })
}

fn load_run(package: &str, dylib: &Path) -> Result<RunFn, UdfError> {
    let load_error = |reason: String| UdfError::Load {
        package: package.to_string(),
        reason,
    };
    let metadata =
        std::fs::metadata(dylib).map_err(|e| load_error(format!("{}: {e}", dylib.display())))?;
    let stamp = metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    // dlopen caches by path: load a copy named after this build.
    let copies = dylib.with_file_name("vitalflow-loaded");
    std::fs::create_dir_all(&copies)
        .map_err(|e| load_error(format!("creating {}: {e}", copies.display())))?;
    let file_name = dylib
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let copy = copies.join(format!("{stamp}-{}-{file_name}", metadata.len()));
    let mut loaded = libraries().lock().unwrap_or_else(|p| p.into_inner());
    let library = match loaded.get(&copy) {
        Some(library) => *library,
        None => {
            if !copy.exists() {
                let partial = copy.with_extension("partial");
                std::fs::copy(dylib, &partial)
                    .and_then(|_| std::fs::rename(&partial, &copy))
                    .map_err(|e| load_error(format!("copying {}: {e}", dylib.display())))?;
            }
            // SAFETY: loading runs the library's initialisers; plugin crates
            // are built from the user's own UDF sources by `ensure_built`.
            let library = unsafe { libloading::Library::new(&copy) }
                .map_err(|e| load_error(format!("cannot load {}: {e}", dylib.display())))?;
            let library: &'static libloading::Library = Box::leak(Box::new(library));
            loaded.insert(copy.clone(), library);
            library
        }
    };
    // SAFETY: `__run` is generated by `#[udf]` with exactly this signature.
    let run = unsafe { library.get::<RunFn>(b"__run\0") }.map_err(|_| {
        load_error(format!(
            "{} exports no `__run`: it is not an arroyo-udf-plugin crate built with #[udf]",
            dylib.display()
        ))
    })?;
    Ok(*run)
}
