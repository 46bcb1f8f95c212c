//! System metrics: the machine and the training process, sampled against time by a background
//! thread while a run is live ([`crate::RunOptions::system_metrics`], `RUNSTORE_SYSTEM_METRICS`),
//! stored as the run's time-indexed series (see [`crate::Run::log_system`]).
//!
//! | series | what | source |
//! |---|---|---|
//! | `system/cpu_percent` | the machine's CPU use, % of all its cores (0–100) | `/proc/stat` |
//! | `system/process_cpu_percent` | this process's CPU use, % of one core (200 = two cores) | `/proc/self/stat` |
//! | `system/memory_rss_mib` | this process's resident memory, MiB | `/proc/self/status` |
//! | `system/memory_used_mib` | the machine's memory in use (total − available), MiB | `/proc/meminfo` |
//! | `system/memory_used_percent` | the same, % of the total | `/proc/meminfo` |
//! | `system/disk_read_mib_per_s` | bytes read from the machine's physical disks, MiB/s | `/proc/diskstats` |
//! | `system/disk_write_mib_per_s` | bytes written to them, MiB/s | `/proc/diskstats` |
//! | `system/disk_free_gib` | free space (for unprivileged users) of the run's filesystem, GiB | `statvfs` |
//! | `system/net_recv_mib_per_s` | bytes received over every interface but `lo`, MiB/s | `/proc/net/dev` |
//! | `system/net_sent_mib_per_s` | bytes sent, MiB/s | `/proc/net/dev` |
//! | `system/gpu<N>/utilization_percent` | NVIDIA GPU N's utilisation, % | NVML |
//! | `system/gpu<N>/memory_used_mib` | its memory in use, MiB | NVML |
//! | `system/gpu<N>/temperature_c` | its temperature, °C | NVML |
//! | `system/gpu<N>/power_w` | its power draw, W | NVML |
//!
//! Rates are means over the interval since the previous sample; levels are read at the sample's
//! time. Disk traffic is the machine's (`/proc/diskstats`, whole physical disks only, so that
//! a partition or an LVM volume is not counted twice) rather than the process's
//! (`/proc/self/io`): a data loader's worker processes read the training data, and their reads
//! are what a starved GPU waits on. A value that cannot be read at a tick (a file missing, a
//! counter that went backwards) is left out of that tick; it never fails the run.
//!
//! NVML (`libnvidia-ml.so.1`) is loaded when the run starts, with `dlopen`: a machine without
//! the driver builds and runs, and records no GPU series and one note saying why.

mod native;
mod procfs;
mod reading;
mod sampler;

use std::path::Path;
use std::time::Duration;

pub(crate) use reading::series_names;
pub(crate) use sampler::{Sampler, Samples};

/// Bytes in a MiB and a GiB.
const MIB: f64 = 1_048_576.0;
const GIB: f64 = 1_073_741_824.0;

/// The NVML library loaded at run time.
const NVML_LIBRARY: &str = "libnvidia-ml.so.1";

/// What `init` prepares for a run that records system metrics, before its record is written:
/// the interval, and NVML with its GPUs counted, or the note saying why there are none.
pub(crate) struct Setup {
    interval: Duration,
    nvml: Option<native::Nvml>,
    note: Option<String>,
}

impl Setup {
    /// Loads NVML and counts the GPUs, if there is an interval to sample at.
    pub(crate) fn probe(interval: Option<Duration>) -> Option<Setup> {
        let interval = interval?;
        Some(match native::Nvml::open(NVML_LIBRARY) {
            Ok(nvml) => Setup { interval, nvml: Some(nvml), note: None },
            Err(reason) => {
                Setup { interval, nvml: None, note: Some(format!("system metrics: no GPU metrics ({reason})")) }
            }
        })
    }

    /// What the run records about its system metrics: empty, or why there are no GPU series.
    pub(crate) fn notes(&self) -> Vec<String> {
        self.note.iter().cloned().collect()
    }

    /// The sampler's plan, with the free space of `run_dir`'s filesystem among the sources.
    pub(crate) fn plan(self, run_dir: &Path) -> Plan {
        let notes = self.notes();
        let sources = reading::Sources {
            store_dir: run_dir.to_path_buf(),
            disks: procfs::physical_disks(),
            ticks_per_second: native::clock_ticks_per_second(),
            nvml: self.nvml,
        };
        Plan { interval: self.interval, sources, notes }
    }
}

/// What a sampler needs: the interval, and the sources fixed at the run's start.
pub(crate) struct Plan {
    interval: Duration,
    sources: reading::Sources,
    notes: Vec<String>,
}

impl Plan {
    /// What the run's warnings say about its system metrics ([`Setup::notes`]).
    pub(crate) fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The names of the series this plan samples, by position.
    pub(crate) fn series_names(&self) -> Vec<String> {
        series_names(self.sources.nvml.as_ref().map_or(0, native::Nvml::gpus))
    }
}

/// The CPU time the system-metrics samplers of this process have used, and the readings they
/// took (each sample of every series is one reading): the sampler's own cost, for
/// `examples/bench.rs`. Not a stable API.
#[doc(hidden)]
pub fn sampler_cpu_time() -> (Duration, u64) {
    sampler::cost()
}
