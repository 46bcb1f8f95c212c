//! One reading of every source at an instant, and the samples that two consecutive readings
//! make: levels (memory, free space, GPUs) from the later one, rates (CPU, disk, network) from
//! the difference.

use std::path::PathBuf;
use std::time::Instant;

use super::native::{GpuReading, Nvml};
use super::{GIB, MIB, procfs};

/// The series of every machine, in the order of their positions in a sample.
pub(crate) const MACHINE_SERIES: [&str; 10] = [
    "system/cpu_percent",
    "system/process_cpu_percent",
    "system/memory_rss_mib",
    "system/memory_used_mib",
    "system/memory_used_percent",
    "system/disk_read_mib_per_s",
    "system/disk_write_mib_per_s",
    "system/disk_free_gib",
    "system/net_recv_mib_per_s",
    "system/net_sent_mib_per_s",
];

/// The series of each GPU, after `system/gpu<N>/`.
pub(crate) const GPU_SERIES: [&str; 4] = ["utilization_percent", "memory_used_mib", "temperature_c", "power_w"];

/// Every series name for a machine with `gpus` GPUs, by position.
pub(crate) fn series_names(gpus: usize) -> Vec<String> {
    let gpu_names = (0..gpus).flat_map(|gpu| GPU_SERIES.iter().map(move |name| format!("system/gpu{gpu}/{name}")));
    MACHINE_SERIES.iter().map(|name| (*name).to_string()).chain(gpu_names).collect()
}

/// Where readings come from, fixed when the run starts.
pub(crate) struct Sources {
    /// The run's directory, whose filesystem's free space is read.
    pub(crate) store_dir: PathBuf,
    pub(crate) disks: Vec<String>,
    pub(crate) ticks_per_second: u64,
    pub(crate) nvml: Option<Nvml>,
}

/// Every value read at one instant; one that could not be read is `None`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reading {
    pub(crate) at: Instant,
    pub(crate) machine_cpu: Option<procfs::CpuTicks>,
    pub(crate) process_ticks: Option<u64>,
    pub(crate) resident_kib: Option<u64>,
    pub(crate) memory_kib: Option<(u64, u64)>,
    pub(crate) disk_bytes: Option<(u64, u64)>,
    pub(crate) free_bytes: Option<u64>,
    pub(crate) network_bytes: Option<(u64, u64)>,
    pub(crate) gpus: Vec<GpuReading>,
}

impl Sources {
    /// Reads every source now. A file that cannot be read leaves its values out.
    pub(crate) fn read(&self) -> Reading {
        let file = |path: &str| std::fs::read_to_string(path).ok();
        let gpus =
            self.nvml.as_ref().map_or_else(Vec::new, |nvml| (0..nvml.gpus()).map(|gpu| nvml.read(gpu)).collect());
        Reading {
            at: Instant::now(),
            machine_cpu: file("/proc/stat").as_deref().and_then(procfs::machine_cpu),
            process_ticks: file("/proc/self/stat").as_deref().and_then(procfs::process_cpu),
            resident_kib: file("/proc/self/status").as_deref().and_then(procfs::resident_kib),
            memory_kib: file("/proc/meminfo").as_deref().and_then(procfs::machine_memory_kib),
            disk_bytes: file("/proc/diskstats").and_then(|text| procfs::disk_bytes(&text, &self.disks)),
            free_bytes: super::native::free_bytes(&self.store_dir).ok(),
            network_bytes: file("/proc/net/dev").as_deref().and_then(procfs::network_bytes),
            gpus,
        }
    }
}

/// The samples of the interval from `before` to `now`, as (position in [`series_names`],
/// value). A value missing from either reading (or a counter that went backwards) is left out.
#[allow(clippy::cast_precision_loss)]
pub(crate) fn samples(before: &Reading, now: &Reading, ticks_per_second: u64) -> Vec<(usize, f64)> {
    let seconds = now.at.duration_since(before.at).as_secs_f64();
    let mut out = Vec::with_capacity(MACHINE_SERIES.len() + 4 * now.gpus.len());
    let mut put = |position: usize, value: Option<f64>| {
        if let Some(value) = value.filter(|value| value.is_finite()) {
            out.push((position, value));
        }
    };
    // A counter's growth over the interval, if both readings have it.
    let growth = |before: Option<u64>, now: Option<u64>| now?.checked_sub(before?);
    let per_second = |bytes: Option<u64>| bytes.filter(|_| seconds > 0.0).map(|bytes| bytes as f64 / MIB / seconds);

    let cpu = before.machine_cpu.zip(now.machine_cpu);
    put(
        0,
        cpu.and_then(|(before, now)| {
            let total = now.total.checked_sub(before.total).filter(|&total| total > 0)?;
            Some(100.0 * now.busy.checked_sub(before.busy)? as f64 / total as f64)
        }),
    );
    put(
        1,
        growth(before.process_ticks, now.process_ticks)
            .filter(|_| seconds > 0.0)
            .map(|ticks| 100.0 * ticks as f64 / ticks_per_second as f64 / seconds),
    );
    put(2, now.resident_kib.map(|kib| kib as f64 / 1024.0));
    put(3, now.memory_kib.map(|(total, available)| total.saturating_sub(available) as f64 / 1024.0));
    put(
        4,
        now.memory_kib
            .filter(|&(total, _)| total > 0)
            .map(|(total, available)| 100.0 * total.saturating_sub(available) as f64 / total as f64),
    );
    put(5, per_second(growth(before.disk_bytes.map(|(read, _)| read), now.disk_bytes.map(|(read, _)| read))));
    put(6, per_second(growth(before.disk_bytes.map(|(_, wrote)| wrote), now.disk_bytes.map(|(_, wrote)| wrote))));
    put(7, now.free_bytes.map(|bytes| bytes as f64 / GIB));
    put(8, per_second(growth(before.network_bytes.map(|(rx, _)| rx), now.network_bytes.map(|(rx, _)| rx))));
    put(9, per_second(growth(before.network_bytes.map(|(_, tx)| tx), now.network_bytes.map(|(_, tx)| tx))));
    for (gpu, reading) in now.gpus.iter().enumerate() {
        let first = MACHINE_SERIES.len() + GPU_SERIES.len() * gpu;
        put(first, reading.utilization_percent);
        put(first + 1, reading.memory_used_mib);
        put(first + 2, reading.temperature_c);
        put(first + 3, reading.power_w);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn reading(at: Instant) -> Reading {
        Reading {
            at,
            machine_cpu: Some(procfs::CpuTicks { busy: 1000, total: 4000 }),
            process_ticks: Some(500),
            resident_kib: Some(2048),
            memory_kib: Some((8 << 20, 6 << 20)),
            disk_bytes: Some((0, 0)),
            free_bytes: Some(3 << 30),
            network_bytes: Some((1 << 20, 0)),
            gpus: vec![GpuReading {
                utilization_percent: Some(97.0),
                memory_used_mib: None,
                temperature_c: Some(71.0),
                power_w: Some(250.5),
            }],
        }
    }

    #[test]
    fn two_readings_make_levels_and_rates_per_second() {
        let start = Instant::now();
        let before = reading(start);
        let mut now = reading(start + Duration::from_secs(2));
        now.machine_cpu = Some(procfs::CpuTicks { busy: 1100, total: 4400 });
        now.process_ticks = Some(650); // 150 ticks of 1/100 s in 2 s: 75 % of one core
        now.disk_bytes = Some((4 << 20, 8 << 20));
        now.network_bytes = Some((5 << 20, 1 << 20));
        now.free_bytes = None; // statvfs failed: the series is left out of this tick
        let names = series_names(1);
        let got: Vec<(&str, f64)> =
            samples(&before, &now, 100).into_iter().map(|(at, value)| (names[at].as_str(), value)).collect();
        assert_eq!(
            got,
            [
                ("system/cpu_percent", 25.0),
                ("system/process_cpu_percent", 75.0),
                ("system/memory_rss_mib", 2.0),
                ("system/memory_used_mib", 2048.0),
                ("system/memory_used_percent", 25.0),
                ("system/disk_read_mib_per_s", 2.0),
                ("system/disk_write_mib_per_s", 4.0),
                ("system/net_recv_mib_per_s", 2.0),
                ("system/net_sent_mib_per_s", 0.5),
                ("system/gpu0/utilization_percent", 97.0),
                ("system/gpu0/temperature_c", 71.0),
                ("system/gpu0/power_w", 250.5),
            ]
        );
    }

    #[test]
    fn a_counter_that_went_backwards_or_a_missing_reading_gives_no_rate() {
        let start = Instant::now();
        let mut before = reading(start);
        before.process_ticks = None;
        let mut now = reading(start + Duration::from_secs(1));
        now.network_bytes = Some((0, 0)); // an interface went away
        let names = series_names(1);
        let got: Vec<&str> = samples(&before, &now, 100).into_iter().map(|(at, _)| names[at].as_str()).collect();
        assert!(!got.contains(&"system/process_cpu_percent"));
        assert!(!got.contains(&"system/net_recv_mib_per_s"));
        assert!(got.contains(&"system/disk_read_mib_per_s"));
        assert!(!got.contains(&"system/cpu_percent"), "no CPU tick passed between the readings");
    }

    #[test]
    fn every_name_is_a_valid_system_series() {
        for name in series_names(2) {
            assert!(name.starts_with(crate::SYSTEM_PREFIX));
            crate::validate_metric_name(&name).expect("valid");
        }
        assert_eq!(series_names(2).len(), 18);
    }
}
