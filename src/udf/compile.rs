//! Keeping a plugin's dylib in step with its source: the user's loop is
//! "edit the UDF, rerun the pipeline".
//!
//! Before loading, the plugin crate is built with `cargo build --release`
//! in its own workspace; cargo knows exactly what is stale (including path
//! dependencies such as the shared NEWS2 table) and does nothing when all is
//! fresh. Where no cargo is installed (a deployed image), an existing dylib
//! is used as long as it is newer than every source file of its crate.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use super::UdfError;

/// A plugin crate on disk.
#[derive(Debug, Clone)]
pub struct PluginCrate {
    /// The crate directory (holds `Cargo.toml` and `src/lib.rs`).
    pub dir: PathBuf,
    /// `[package] name`.
    pub package: String,
    /// The Cargo workspace it belongs to (or the crate itself).
    pub workspace: PathBuf,
}

impl PluginCrate {
    pub fn open(dir: &Path) -> Result<Self, UdfError> {
        let manifest = dir.join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).map_err(|e| UdfError::Crate {
            dir: dir.to_path_buf(),
            reason: format!("cannot read {}: {e}", manifest.display()),
        })?;
        let package = package_name(&text).ok_or_else(|| UdfError::Crate {
            dir: dir.to_path_buf(),
            reason: format!("{} has no `[package] name`", manifest.display()),
        })?;
        let workspace = dir
            .ancestors()
            .skip(1)
            .find(|d| {
                std::fs::read_to_string(d.join("Cargo.toml"))
                    .is_ok_and(|t| t.lines().any(|l| l.trim() == "[workspace]"))
            })
            .unwrap_or(dir)
            .to_path_buf();
        Ok(Self {
            dir: dir.to_path_buf(),
            package,
            workspace,
        })
    }

    /// `VITALFLOW_UDF_TARGET_DIR`, else the workspace's own `target/`.
    pub fn target_dir(&self) -> PathBuf {
        std::env::var_os("VITALFLOW_UDF_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.workspace.join("target"))
    }

    pub fn dylib(&self) -> PathBuf {
        self.target_dir().join("release").join(format!(
            "{}{}{}",
            std::env::consts::DLL_PREFIX,
            self.package.replace('-', "_"),
            std::env::consts::DLL_SUFFIX
        ))
    }

    pub fn source(&self) -> PathBuf {
        self.dir.join("src").join("lib.rs")
    }

    /// Build the dylib if it is stale; return its path.
    pub fn ensure_built(&self) -> Result<PathBuf, UdfError> {
        let dylib = self.dylib();
        let manifest = self.workspace.join("Cargo.toml");
        let output = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args([
                "build",
                "--release",
                "--quiet",
                "-p",
                &self.package,
                "--manifest-path",
            ])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(self.target_dir())
            // Our own build settings must not leak into the plugin's.
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET_DIR")
            .output();
        match output {
            Ok(out) if out.status.success() => Ok(dylib),
            Ok(out) => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
                Err(UdfError::Build {
                    package: self.package.clone(),
                    output: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.check_fresh(&dylib)?;
                tracing::warn!(udf = %self.package, dylib = %dylib.display(), "cargo not found: using the existing plugin build");
                Ok(dylib)
            }
            Err(e) => Err(UdfError::Build {
                package: self.package.clone(),
                output: format!("cannot run cargo: {e}"),
            }),
        }
    }

    /// Without cargo: the dylib must exist and be newer than the sources.
    fn check_fresh(&self, dylib: &Path) -> Result<(), UdfError> {
        let built = modified(dylib).ok_or_else(|| UdfError::Missing {
            package: self.package.clone(),
            dylib: dylib.to_path_buf(),
        })?;
        let newest_source = newest_below(&self.dir);
        if newest_source.is_some_and(|s| s > built) {
            return Err(UdfError::Stale {
                package: self.package.clone(),
                dylib: dylib.to_path_buf(),
            });
        }
        Ok(())
    }
}

fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
            continue;
        }
        if in_package
            && let Some(value) = line.strip_prefix("name")
            && let Some(value) = value.trim_start().strip_prefix('=')
        {
            return Some(value.trim().trim_matches('"').to_string());
        }
    }
    None
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time of the crate's sources (skipping `target`).
fn newest_below(dir: &Path) -> Option<SystemTime> {
    let sources = walkdir::WalkDir::new(dir.join("src"))
        .into_iter()
        .flatten()
        .filter(|e| !e.file_type().is_dir())
        .filter_map(|e| modified(e.path()));
    modified(&dir.join("Cargo.toml"))
        .into_iter()
        .chain(sources)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_name_is_read_from_the_package_table() {
        let manifest = "[workspace]\nmembers = []\n\n[package]\nname = \"news2\"\nversion = \"0.1.0\"\n[dependencies]\nname = \"x\"\n";
        assert_eq!(package_name(manifest).as_deref(), Some("news2"));
        assert_eq!(package_name("[dependencies]\nname = \"x\"\n"), None);
    }
}
