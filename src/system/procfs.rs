//! Linux's `/proc` (and `/sys/block`) files as numbers: one parser per file, on its text, so
//! that each is tested on fixed text; the sampler reads the files.

/// The machine's CPU time in clock ticks, from the first line of `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CpuTicks {
    /// Ticks spent on anything but idling or waiting for I/O.
    pub(crate) busy: u64,
    /// All ticks, of every CPU.
    pub(crate) total: u64,
}

/// `cpu  user nice system idle iowait irq softirq steal guest guest_nice`: `guest` and
/// `guest_nice` are already counted in `user` and `nice`, so the total is of the first eight.
pub(crate) fn machine_cpu(stat: &str) -> Option<CpuTicks> {
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let ticks: Vec<u64> = line.split_whitespace().skip(1).take(8).map(str::parse).collect::<Result<_, _>>().ok()?;
    if ticks.len() < 4 {
        return None;
    }
    let total = ticks.iter().sum();
    let idle = ticks[3] + ticks.get(4).copied().unwrap_or(0);
    Some(CpuTicks { busy: total - idle, total })
}

/// This process's CPU time in clock ticks (user + system), from `/proc/self/stat`. The command
/// name (field 2) may hold spaces and parentheses, so fields are counted after its last `)`.
pub(crate) fn process_cpu(stat: &str) -> Option<u64> {
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().collect();
    // Field 3 (state) is fields[0]: utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The value of a `Key:   1234 kB` line (`/proc/self/status`, `/proc/meminfo`), in KiB.
fn kib(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix(':')?.split_whitespace().next()?.parse().ok())
}

/// The resident memory of this process in KiB (`VmRSS` of `/proc/self/status`).
pub(crate) fn resident_kib(status: &str) -> Option<u64> {
    kib(status, "VmRSS")
}

/// The machine's memory in KiB: (total, available), from `/proc/meminfo`. "Used" is total minus
/// available, as `free` and psutil count it: page cache that can be dropped is not used.
pub(crate) fn machine_memory_kib(meminfo: &str) -> Option<(u64, u64)> {
    Some((kib(meminfo, "MemTotal")?, kib(meminfo, "MemAvailable")?))
}

/// Bytes (read, written) since boot by the disks named in `disks`, from `/proc/diskstats`,
/// whose sector counts are of 512 bytes whatever the device's sector size.
pub(crate) fn disk_bytes(diskstats: &str, disks: &[String]) -> Option<(u64, u64)> {
    let mut total = None;
    for line in diskstats.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 10 || !disks.iter().any(|disk| disk == fields[2]) {
            continue;
        }
        let (Ok(read), Ok(written)) = (fields[5].parse::<u64>(), fields[9].parse::<u64>()) else { continue };
        let (r, w) = total.unwrap_or((0, 0));
        total = Some((r + read * 512, w + written * 512));
    }
    total
}

/// Bytes (received, sent) since boot over every network interface but loopback, from
/// `/proc/net/dev` (of this process's network namespace: a container's own interfaces).
pub(crate) fn network_bytes(dev: &str) -> Option<(u64, u64)> {
    let mut total = None;
    for line in dev.lines().skip(2) {
        let Some((name, counters)) = line.split_once(':') else { continue };
        if name.trim() == "lo" {
            continue;
        }
        let fields: Vec<&str> = counters.split_whitespace().collect();
        let (Some(Ok(received)), Some(Ok(sent))) =
            (fields.first().map(|f| f.parse::<u64>()), fields.get(8).map(|f| f.parse::<u64>()))
        else {
            continue;
        };
        let (r, s) = total.unwrap_or((0, 0));
        total = Some((r + received, s + sent));
    }
    total
}

/// The machine's physical disks: the devices of `/sys/block` backed by a device (`sda`,
/// `nvme0n1`, `vda`), not partitions, loop, RAM, device-mapper or RAID devices, which count
/// the same bytes again.
pub(crate) fn physical_disks() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/sys/block") else { return Vec::new() };
    let mut disks: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.path().join("device").exists())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    disks.sort();
    disks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_cpu_counts_idle_and_iowait_as_not_busy() {
        let stat = "cpu  100 5 50 800 20 3 2 10 7 0\ncpu0 50 2 25 400 10 1 1 5 3 0\nintr 1 2 3\n";
        assert_eq!(machine_cpu(stat), Some(CpuTicks { busy: 170, total: 990 }));
        // An old kernel's four columns.
        assert_eq!(machine_cpu("cpu 1 2 3 4\n"), Some(CpuTicks { busy: 6, total: 10 }));
        assert_eq!(machine_cpu("cpu0 1 2 3 4\n"), None);
        assert_eq!(machine_cpu("cpu 1 x 3 4\n"), None);
    }

    #[test]
    fn process_cpu_skips_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (python3 (train) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    731 269 0 0 20 0 12 0 12345 1000000 2500 18446744073709551615";
        assert_eq!(process_cpu(stat), Some(1000));
        assert_eq!(process_cpu("4242 (short) S 1 2"), None);
        assert_eq!(process_cpu("no parenthesis"), None);
    }

    #[test]
    fn memory_lines_are_read_in_kib() {
        let status = "Name:\ttrain\nVmPeak:\t  900000 kB\nVmRSS:\t  524288 kB\nRssAnon:\t1 kB\n";
        assert_eq!(resident_kib(status), Some(524_288));
        assert_eq!(resident_kib("Name:\tkthread\n"), None);
        let meminfo = "MemTotal:       16318480 kB\nMemFree:         1000000 kB\nMemAvailable:    8159240 kB\n";
        assert_eq!(machine_memory_kib(meminfo), Some((16_318_480, 8_159_240)));
        assert_eq!(machine_memory_kib("MemTotal: 5 kB\n"), None);
    }

    #[test]
    fn disk_bytes_sum_the_named_disks_in_512_byte_sectors() {
        let diskstats = "   8       0 sda 100 0 2000 50 200 0 4000 90 0 100 140 0 0 0 0\n\
                         \x20  8       1 sda1 90 0 1800 40 190 0 3900 80 0 90 120 0 0 0 0\n\
                         \x20259       0 nvme0n1 10 0 10 1 20 0 20 2 0 3 3\n\
                         \x20  7       0 loop0 5 0 5000 1 0 0 0 0 0 1 1\n";
        let disks = ["nvme0n1".to_string(), "sda".to_string()];
        assert_eq!(disk_bytes(diskstats, &disks), Some((2010 * 512, 4020 * 512)));
        assert_eq!(disk_bytes(diskstats, &[]), None);
    }

    #[test]
    fn network_bytes_leave_out_loopback() {
        let dev = "Inter-|   Receive                                                |  Transmit\n \
                   face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
                   lo: 9999999 100 0 0 0 0 0 0 9999999 100 0 0 0 0 0 0\n  \
                   eth0: 1000 10 0 0 0 0 0 0 300 3 0 0 0 0 0 0\n\
                   wlan0:24 1 0 0 0 0 0 0 6 1 0 0 0 0 0 0\n";
        assert_eq!(network_bytes(dev), Some((1024, 306)));
        assert_eq!(network_bytes("h1\nh2\n    lo: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n"), None);
    }

    #[test]
    fn this_machine_s_files_parse() {
        let read = |path| std::fs::read_to_string(path).expect(path);
        assert!(machine_cpu(&read("/proc/stat")).is_some_and(|cpu| cpu.total > 0));
        assert!(process_cpu(&read("/proc/self/stat")).is_some());
        assert!(resident_kib(&read("/proc/self/status")).is_some_and(|kib| kib > 0));
        assert!(machine_memory_kib(&read("/proc/meminfo")).is_some_and(|(total, available)| available <= total));
    }
}
