//! Memory figures of this process (or a child) from `/proc/*/status`
//! (Linux only; `None` elsewhere).

/// Peak resident set size (`VmHWM`).
pub fn peak_rss_bytes() -> Option<u64> {
    status_bytes("VmHWM:")
}

/// The file-backed part of RSS now (`RssFile`: the binary's code, shared
/// libraries): resident memory the pipeline's data does not explain.
pub fn mapped_files_rss_bytes() -> Option<u64> {
    status_bytes("RssFile:")
}

/// Resident set size now (`VmRSS`).
pub fn resident_bytes() -> Option<u64> {
    status_bytes("VmRSS:")
}

/// Peak resident set size of another process (`VmHWM` of `/proc/PID`).
pub fn peak_rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_kb_field(&status, "VmHWM:")
}

/// Private resident memory of another process now (`RssAnon` of
/// `/proc/PID/status`: heap and stacks, not its binary's mapped code);
/// `None` once it has exited (a zombie's status has no memory lines).
pub fn private_rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_kb_field(&status, "RssAnon:")
}

/// A `kB` field of `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_kb_field(&status, field)
}

fn parse_kb_field(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_in_kib() {
        let status = "VmPeak:\t  200 kB\nVmHWM:\t   120 kB\nVmRSS:\t   100 kB\nRssFile:\t 40 kB\n";
        assert_eq!(parse_kb_field(status, "VmHWM:"), Some(120 * 1024));
        assert_eq!(parse_kb_field(status, "RssFile:"), Some(40 * 1024));
        assert_eq!(parse_kb_field(status, "RssShmem:"), None);
    }

    #[test]
    fn private_memory_is_read_from_rss_anon() {
        let status = "Name:\tvitalflow\nVmHWM:\t  120000 kB\nRssAnon:\t   12544 kB\n\
                      RssFile:\t  107456 kB\n";
        assert_eq!(parse_kb_field(status, "RssAnon:"), Some(12_544 * 1024));
        let zombie = "Name:\tvitalflow\nState:\tZ (zombie)\n";
        assert_eq!(parse_kb_field(zombie, "RssAnon:"), None);
    }

    #[test]
    fn this_process_has_a_peak_at_least_its_current_rss() {
        if cfg!(target_os = "linux") {
            // Current first: the peak read after it covers it, even while
            // other test threads allocate in between.
            let now = resident_bytes().unwrap();
            let peak = peak_rss_bytes().unwrap();
            assert!(peak >= now && now > 0, "peak {peak}, now {now}");
        }
    }
}
