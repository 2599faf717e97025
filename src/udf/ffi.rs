//! The Arroyo UDF plugin ABI (arroyo-udf-plugin 0.2.0), host side.
//!
//! A plugin exports one symbol, `__run(FfiArrays) -> RunResult`, generated
//! by `#[udf]`. Arguments and the result cross as Arrow C Data Interface
//! structs. We define the three `repr(C)` types ourselves instead of
//! depending on `arroyo-udf-common`, which would pull arrow 51 into this
//! crate's lockfile.
//!
//! Who frees what:
//! - The argument *buffer* (`FfiArrays::ptr`) becomes the plugin's: it
//!   rebuilds a `Vec` over it and reallocates/frees it with its own global
//!   allocator, which is the system `malloc`. This binary uses mimalloc, so
//!   the buffer must come from [`System`], never from a Rust `Vec`.
//! - The argument *arrays* are released through their C Data `release`
//!   callbacks (ours) when the plugin drops them.
//! - The result arrays are ours after the call; their `release` callbacks
//!   are plugin code, so a plugin library is never unloaded.
//! - A panic inside the UDF comes back as `RunResult::Err` (no message).
//!   A panic *outside* the plugin's catch (an argument type arrow 51 cannot
//!   import, zero arguments) would abort the process, so [`call`] only ever
//!   passes one or more arrays of exactly the declared types.

use std::alloc::{GlobalAlloc, Layout, System};

use arrow::array::{ArrayRef, make_array};
use arrow::ffi::{FFI_ArrowArray, FFI_ArrowSchema, from_ffi, to_ffi};

#[repr(C)]
pub struct FfiArraySchema(pub FFI_ArrowArray, pub FFI_ArrowSchema);

#[repr(C)]
pub struct FfiArrays {
    pub ptr: *mut FfiArraySchema,
    pub len: usize,
    pub capacity: usize,
    /// Unused by `__run`; always false.
    pub error: bool,
}

#[repr(C)]
pub enum RunResult {
    Ok(FfiArraySchema),
    Err,
}

/// The `__run` symbol of a plugin.
pub type RunFn = unsafe extern "C-unwind" fn(FfiArrays) -> RunResult;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("the UDF panicked (its message, if any, went to stderr)")]
    Panicked,
    #[error("passing arrays to the UDF: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// Call `run` with `args`.
///
/// # Safety
/// `run` must be the `__run` of a loaded plugin whose declared argument
/// types are exactly the types of `args`, and `args` must be non-empty and
/// of equal length (the caller, [`super::plugin`], guarantees both).
pub unsafe fn call(run: RunFn, args: &[ArrayRef]) -> Result<ArrayRef, CallError> {
    assert!(!args.is_empty(), "a UDF call needs at least one argument");
    // Export first: if an array cannot be exported nothing is allocated.
    let exported = args
        .iter()
        .map(|a| to_ffi(&a.to_data()))
        .collect::<Result<Vec<_>, _>>()?;
    let n = exported.len();
    let layout = Layout::array::<FfiArraySchema>(n).map_err(|e| {
        arrow::error::ArrowError::ComputeError(format!("argument buffer layout: {e}"))
    })?;
    // SAFETY: layout has non-zero size (n >= 1); the plugin frees it with
    // the system allocator, which is what allocates it here.
    let ptr = unsafe { System.alloc(layout) } as *mut FfiArraySchema;
    if ptr.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    for (i, (array, schema)) in exported.into_iter().enumerate() {
        // SAFETY: i < n, within the allocation; ownership moves to the plugin.
        unsafe { ptr.add(i).write(FfiArraySchema(array, schema)) };
    }
    let arrays = FfiArrays {
        ptr,
        len: n,
        capacity: n,
        error: false,
    };
    // SAFETY: per this function's contract.
    match unsafe { run(arrays) } {
        RunResult::Ok(FfiArraySchema(array, schema)) => {
            // SAFETY: the plugin produced a valid C Data array and schema.
            let data = unsafe { from_ffi(array, &schema) }?;
            Ok(make_array(data))
        }
        RunResult::Err => Err(CallError::Panicked),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_plugin_side() {
        // Measured on the plugin side (arrow 51) by udfs/news2's tests.
        assert_eq!(std::mem::size_of::<FFI_ArrowArray>(), 80);
        assert_eq!(std::mem::size_of::<FFI_ArrowSchema>(), 72);
        assert_eq!(std::mem::size_of::<FfiArraySchema>(), 152);
        assert_eq!(std::mem::size_of::<FfiArrays>(), 32);
        assert_eq!(std::mem::size_of::<RunResult>(), 160);
    }
}
