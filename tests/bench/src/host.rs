//! What the figures were measured on: cores, memory, kernel, compiler and the pinned tools.

use std::{collections::BTreeMap, process::Command};

use serde::Serialize;

/// The machine and the versions of everything that ran.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Host {
    /// Cores this process may run on.
    pub cores: usize,
    /// `MemTotal` of `/proc/meminfo`.
    pub memory_bytes: u64,
    /// `uname -r`.
    pub kernel: String,
    /// `rustc --version`.
    pub rustc: String,
    /// Pinned versions of the tools the cluster runs, by tool.
    pub tools: BTreeMap<String, String>,
}

/// The versions in `scripts/versions.env`, by the name printed for them.
const TOOLS: [(&str, &str); 3] = [
    ("kubernetes", "KUBERNETES_VERSION"),
    ("etcd", "ETCD_VERSION"),
    ("kwok", "KWOK_VERSION"),
];

impl Host {
    /// Reads this machine.
    pub fn read() -> Self {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Host {
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            memory_bytes: mem_total(&meminfo).unwrap_or(0),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
            rustc: output("rustc", &["--version"]),
            tools: TOOLS
                .iter()
                .map(|(name, key)| {
                    let version = kaito_testenv::version(key).unwrap_or("unknown");
                    ((*name).to_owned(), version.to_owned())
                })
                .collect(),
        }
    }
}

/// `MemTotal` in bytes.
pub fn mem_total(meminfo: &str) -> Option<u64> {
    let kib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kib * 1024)
}

fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_memory_is_read_in_bytes() {
        let meminfo = "MemTotal:       24576000 kB\nMemFree:        1 kB\n";
        assert_eq!(mem_total(meminfo), Some(24_576_000 * 1024));
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
    }
}
