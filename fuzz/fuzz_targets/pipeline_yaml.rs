//! Pipeline YAML: any text is a pipeline or a clear error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = vitalflow::spec::parse(text, std::path::Path::new("fuzz.yaml"));
    }
});
