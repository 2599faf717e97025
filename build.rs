//! Link options for the `vitalflow` binary.
//!
//! On Linux with glibc (2.36 or later, as in the runtime image
//! `debian:bookworm-slim`), relative relocations are packed (`DT_RELR`):
//! the binary's ~330,000 of them took a 7.8 MB table that the dynamic loader
//! read at every start, a third of a `vitalflow query 'SELECT 1'`'s CPU time
//! (`perf record`), and its pages counted in every command's peak RSS.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
