//! `/proc/self/mountinfo`: which mount holds a path, its filesystem type and its options.
//!
//! A line (proc(5)) is `id parent major:minor root mount_point mount_options [optional...] -
//! fs_type source super_options`. Paths and sources escape space, tab, newline and backslash as
//! octal (`\040`, `\011`, `\012`, `\134`).

use std::path::{Component, Path, PathBuf};

/// One mount, as a line of mountinfo describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountEntry {
    pub(crate) mount_point: PathBuf,
    /// `nfs4`, `lustre`, `gpfs`, `fuse.sshfs`, `ext4`, ...
    pub(crate) fs_type: String,
    /// `server:/export`, `/dev/sda1`, ...
    pub(crate) source: String,
    /// The per-mount options, then the superblock's (where `local_lock=`, `vers=`, `flock` live).
    pub(crate) options: Vec<String>,
}

/// Parses one line; `None` for a line that is not one.
pub(crate) fn parse_line(line: &str) -> Option<MountEntry> {
    let (head, tail) = line.split_once(" - ")?;
    let mut head = head.split(' ');
    let mount_point = head.nth(4)?;
    let mount_options = head.next()?;
    let mut tail = tail.split(' ');
    let fs_type = tail.next()?;
    let source = tail.next()?;
    let super_options = tail.next().unwrap_or_default();
    let options = mount_options
        .split(',')
        .chain(super_options.split(','))
        .filter(|option| !option.is_empty())
        .map(unescape)
        .collect();
    Some(MountEntry {
        mount_point: PathBuf::from(unescape(mount_point)),
        fs_type: unescape(fs_type),
        source: unescape(source),
        options,
    })
}

/// Undoes the kernel's octal escapes (`\040` is a space); anything else is kept as it is.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|digits| bytes[i] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d)));
        match octal.and_then(|d| {
            u8::try_from(u32::from(d[0] - b'0') * 64 + u32::from(d[1] - b'0') * 8 + u32::from(d[2] - b'0')).ok()
        }) {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount holding `path` (absolute, symbolic links resolved): the longest mount point that is
/// a prefix of it, component by component; of equal ones the last listed, which is mounted over
/// the others.
pub(crate) fn mount_of(mountinfo: &str, path: &Path) -> Option<MountEntry> {
    let mut best: Option<(usize, MountEntry)> = None;
    for entry in mountinfo.lines().filter_map(parse_line) {
        if !path.starts_with(&entry.mount_point) {
            continue;
        }
        let depth = entry.mount_point.components().filter(|c| matches!(c, Component::Normal(_))).count();
        if best.as_ref().is_none_or(|(best_depth, _)| depth >= *best_depth) {
            best = Some((depth, entry));
        }
    }
    best.map(|(_, entry)| entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24684084k
30 25 0:27 / /dev/shm rw,nosuid - tmpfs shm rw,size=65536k
88 27 0:52 / /mnt/my\\040data rw,relatime shared:41 master:1 - nfs4 srv:/export/my\\040data rw,vers=4.2,local_lock=none
89 27 0:53 / /mnt/a rw - xfs /dev/sdb rw
";

    #[test]
    fn the_longest_mount_point_holding_the_path_wins() {
        let mount = |path: &str| mount_of(MOUNTINFO, Path::new(path)).map(|m| m.fs_type);
        assert_eq!(mount("/home/me/store").as_deref(), Some("ext4"));
        assert_eq!(mount("/mnt/a/store").as_deref(), Some("xfs"));
        // A prefix of a name is not a parent directory.
        assert_eq!(mount("/mnt/ab/store").as_deref(), Some("ext4"));
        assert_eq!(mount("/mnt/my data/runs").as_deref(), Some("nfs4"));
    }

    #[test]
    fn the_last_of_stacked_mounts_wins() {
        let mount = mount_of(MOUNTINFO, Path::new("/dev/shm/x")).unwrap();
        assert_eq!(mount.source, "shm");
        assert!(mount.options.contains(&"size=65536k".to_string()));
    }

    #[test]
    fn escapes_and_optional_fields_are_read() {
        let mount = mount_of(MOUNTINFO, Path::new("/mnt/my data")).unwrap();
        assert_eq!(mount.mount_point, Path::new("/mnt/my data"));
        assert_eq!(mount.source, "srv:/export/my data");
        assert_eq!(mount.options, ["rw", "relatime", "rw", "vers=4.2", "local_lock=none"]);
        assert_eq!(unescape(r"a\134b\011c\0"), "a\\b\tc\\0");
    }

    #[test]
    fn lines_that_are_not_mounts_are_skipped() {
        assert_eq!(parse_line(""), None);
        assert_eq!(parse_line("garbage without a separator"), None);
        assert_eq!(parse_line("1 2 - ext4"), None);
        assert!(mount_of("nonsense\n", Path::new("/x")).is_none());
    }
}
