//! The detection rules: from a filesystem type, its mount options and what the lock call did, to
//! what runstore's locks promise there. Pure functions, tested as tables.

use std::time::Duration;

use super::{Linger, LockCall, LockSupport};

/// The lease of a Linux NFS server (`/proc/fs/nfsd/nfsv4leasetime`): how long a dead client's
/// NFS version 4 locks outlive it, by default.
pub(crate) const NFS_LEASE: Duration = Duration::from_secs(90);

/// Filesystems whose locks the kernel of this machine keeps, and that no other machine mounts.
const LOCAL: &[&str] = &[
    "ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "bcachefs", "jfs", "reiserfs", "tmpfs", "ramfs", "overlay",
    "vfat", "exfat", "ntfs3", "hfsplus", "fuseblk",
];

/// FUSE filesystems that reach remote storage but keep `flock` in this machine's kernel: another
/// machine mounting the same bucket or share never sees the lock.
const FUSE_NODE_LOCAL: &[&str] =
    &["sshfs", "s3fs", "gcsfuse", "rclone", "goofys", "blobfuse", "blobfuse2", "mountpoint-s3"];

/// `statfs` magic numbers (`linux/magic.h` and the filesystems' own headers) of the filesystems
/// the rules know, with the type name mountinfo gives them.
const MAGIC: &[(u32, &str)] = &[
    (0x6969, "nfs"),
    (0x0BD0_0BD0, "lustre"),
    (0x4750_4653, "gpfs"),
    (0xFF53_4D42, "cifs"),
    (0xFE53_4D42, "smb3"),
    (0x0000_517B, "smbfs"),
    (0x00C3_6400, "ceph"),
    (0x1983_0326, "beegfs"),
    (0x6573_5546, "fuse"),
    (0xEF53, "ext4"),
    (0x5846_5342, "xfs"),
    (0x9123_683E, "btrfs"),
    (0x2FC1_2FC1, "zfs"),
    (0xF2F5_2010, "f2fs"),
    (0x0102_1994, "tmpfs"),
    (0x8584_58F6, "ramfs"),
    (0x794C_7630, "overlay"),
];

/// The filesystem type a `statfs` magic number names (ext2, ext3 and ext4 share one: `ext4`).
pub(crate) fn fs_type_of_magic(magic: u64) -> Option<&'static str> {
    // f_type is a signed long on some targets: the magic is its low 32 bits.
    let magic = u32::try_from(magic & 0xFFFF_FFFF).ok()?;
    MAGIC.iter().find(|(known, _)| *known == magic).map(|(_, name)| *name)
}

/// The mount options the rules read, as given: shown by `runstore doctor`.
pub(crate) fn options_that_matter(options: &[String]) -> Vec<String> {
    let mut kept: Vec<String> = Vec::new();
    for option in options {
        let key = option.split('=').next().unwrap_or_default();
        let matters = matches!(
            key,
            "ro" | "local_lock" | "nolock" | "lock" | "vers" | "nfsvers" | "flock" | "localflock" | "noflock" | "nobrl"
        );
        if matters && !kept.contains(option) {
            kept.push(option.clone());
        }
    }
    kept
}

/// The name of an errno that means "this filesystem does not lock", if `errno` is one.
pub(crate) fn unsupported_errno(errno: i32) -> Option<&'static str> {
    match errno {
        libc::ENOSYS => Some("ENOSYS"),
        libc::ENOLCK => Some("ENOLCK"),
        libc::EBADF => Some("EBADF"),
        libc::EOPNOTSUPP => Some("EOPNOTSUPP"),
        _ => None,
    }
}

/// What locks promise on a filesystem of type `fs_type` mounted from `source` with `options`,
/// given what the lock call did there.
pub(crate) fn judge(fs_type: &str, source: &str, options: &[String], call: LockCall) -> LockSupport {
    let has = |name: &str| options.iter().any(|option| option == name);
    let value = |key: &str| {
        options.iter().rev().find_map(|option| option.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
    };
    if let LockCall::Failed(errno) = call
        && let Some(name) = unsupported_errno(errno)
    {
        let remedy = match fs_type {
            "lustre" => "remount with -o flock",
            "nfs" | "nfs4" => {
                "check that the NFS lock service runs on this node (rpc-statd for NFSv3), or remount without nolock"
            }
            _ => "ask for a mount whose flock works",
        };
        let text = std::io::Error::from_raw_os_error(errno).to_string();
        // "Function not implemented (os error 38)": the name already says which errno.
        let text = text.split(" (os error").next().unwrap_or_default().to_lowercase();
        return LockSupport::Unsupported { reason: format!("flock fails here with {name} ({text}); {remedy}") };
    }
    let node_local = |option: &str, remedy: &str| LockSupport::NodeLocal {
        reason: format!(
            "it is mounted with {option}, so locks are seen by this node only and a process on another node could \
             write the same run; {remedy}"
        ),
    };
    match fs_type {
        "nfs" | "nfs4" => match value("local_lock") {
            // nolock implies local_lock=all, which mountinfo then shows: nolock is what to undo.
            _ if has("nolock") => node_local("nolock", "remount without nolock"),
            Some(mode @ ("flock" | "all")) => {
                node_local(&format!("local_lock={mode}"), "remount with local_lock=none (the default)")
            }
            _ => {
                let version =
                    value("vers").or_else(|| value("nfsvers")).unwrap_or(if fs_type == "nfs4" { "4" } else { "3" });
                let linger = if version.starts_with('4') { Linger::Lease(NFS_LEASE) } else { Linger::UntilReboot };
                LockSupport::Shared { linger }
            }
        },
        "lustre" => {
            if has("noflock") {
                LockSupport::Unsupported {
                    reason: "it is mounted with noflock, so flock fails with ENOSYS; remount with -o flock".into(),
                }
            } else if has("localflock") {
                node_local("localflock", "remount with -o flock")
            } else if has("flock") || call == LockCall::Worked {
                LockSupport::Shared { linger: Linger::UntilEvicted }
            } else {
                LockSupport::Unknown {
                    note: "Lustre mounted without flock or localflock: `runstore doctor` tries a lock".into(),
                }
            }
        }
        "cifs" | "smb3" | "smbfs" if has("nobrl") => node_local("nobrl", "remount without nobrl"),
        "gpfs" | "cifs" | "smb3" | "smbfs" | "ceph" => LockSupport::Shared { linger: Linger::UntilEvicted },
        "beegfs" => LockSupport::Unknown {
            note: "BeeGFS keeps flock on each node unless its clients set tuneUseGlobalFileLocks=true \
                   (beegfs-client.conf): check that before two nodes write one store"
                .into(),
        },
        _ if LOCAL.contains(&fs_type) => LockSupport::Local,
        _ if fs_type == "fuse" || fs_type.starts_with("fuse.") => {
            let subtype = fs_type.strip_prefix("fuse.").unwrap_or(source);
            if FUSE_NODE_LOCAL.contains(&subtype) {
                LockSupport::NodeLocal {
                    reason: format!(
                        "{subtype} keeps locks in this machine's kernel, so a process on another machine that \
                         mounts the same files could write the same run"
                    ),
                }
            } else {
                LockSupport::Unknown {
                    note: format!(
                        "{fs_type} is a FUSE filesystem: its locks are this machine's unless it forwards them"
                    ),
                }
            }
        }
        _ => LockSupport::Unknown { note: format!("runstore does not know how {fs_type} keeps locks") },
    }
}

#[cfg(test)]
mod tests {
    use super::super::mountinfo::parse_line;
    use super::*;

    /// What the rules say of a real mountinfo line, as a short word.
    fn verdict_of(line: &str, call: LockCall) -> String {
        let mount = parse_line(line).expect("a mountinfo line");
        match judge(&mount.fs_type, &mount.source, &mount.options, call) {
            LockSupport::Local => "local".into(),
            LockSupport::Shared { linger: Linger::Lease(lease) } => format!("shared, lease {}s", lease.as_secs()),
            LockSupport::Shared { linger: Linger::UntilReboot } => "shared, until reboot".into(),
            LockSupport::Shared { linger: Linger::UntilEvicted } => "shared, until evicted".into(),
            LockSupport::NodeLocal { .. } => "node-local".into(),
            LockSupport::Unsupported { .. } => "unsupported".into(),
            LockSupport::Unknown { .. } => "unknown".into(),
        }
    }

    use LockCall::{NotTried, Worked};

    /// mountinfo lines as these filesystems' clients write them (options in the kernel's order and
    /// spelling; servers, paths and addresses made up), what the lock call did, the verdict.
    const TABLE: &[(&str, LockCall, &str)] = &[
        // NFS: the server arbitrates unless local_lock or nolock keep locks on the client.
        (
            "120 27 0:52 / /home rw,relatime shared:60 - nfs4 fs1:/home rw,vers=4.2,rsize=1048576,wsize=1048576,namlen=255,hard,proto=tcp,timeo=600,retrans=2,sec=sys,clientaddr=10.0.0.7,local_lock=none,addr=10.0.0.2",
            Worked,
            "shared, lease 90s",
        ),
        (
            "121 27 0:53 / /scratch rw,noatime - nfs4 fs2:/scratch rw,vers=4.1,hard,proto=tcp,local_lock=flock,addr=10.0.0.3",
            Worked,
            "node-local",
        ),
        ("122 27 0:54 / /data rw - nfs4 fs2:/data rw,vers=4.0,local_lock=all,addr=10.0.0.3", NotTried, "node-local"),
        (
            "123 27 0:55 / /proj rw,relatime - nfs fs3:/proj rw,vers=3,rsize=65536,wsize=65536,namlen=255,hard,proto=tcp,timeo=600,retrans=2,sec=sys,mountaddr=10.0.0.4,mountvers=3,mountport=20048,mountproto=udp,local_lock=none,addr=10.0.0.4",
            Worked,
            "shared, until reboot",
        ),
        (
            "124 27 0:56 / /old rw,relatime - nfs fs3:/old rw,vers=3,nolock,proto=tcp,local_lock=all,addr=10.0.0.4",
            Worked,
            "node-local",
        ),
        ("125 27 0:57 / /v3 rw - nfs fs3:/v3 rw,vers=3,hard,local_lock=flock,addr=10.0.0.4", Worked, "node-local"),
        (
            "126 27 0:58 / /v3p rw - nfs fs3:/v3p rw,vers=3,hard,local_lock=posix,addr=10.0.0.4",
            Worked,
            "shared, until reboot",
        ),
        // Lustre: flock coherent, localflock per node, noflock fails.
        (
            "130 27 0:60 / /lustre/work rw,flock,lazystatfs - lustre 10.1.0.1@o2ib:/work rw,flock,lazystatfs,encrypt",
            Worked,
            "shared, until evicted",
        ),
        (
            "131 27 0:61 / /lustre/scratch rw,localflock,lazystatfs - lustre 10.1.0.1@o2ib:/scratch rw,localflock,lazystatfs",
            Worked,
            "node-local",
        ),
        (
            "132 27 0:62 / /lustre/home rw,noflock - lustre 10.1.0.1@tcp:/home rw,noflock,lazystatfs",
            NotTried,
            "unsupported",
        ),
        ("133 27 0:63 / /lustre/x rw,lazystatfs - lustre 10.1.0.1@tcp:/x rw,lazystatfs", NotTried, "unknown"),
        (
            "133 27 0:63 / /lustre/x rw,lazystatfs - lustre 10.1.0.1@tcp:/x rw,lazystatfs",
            Worked,
            "shared, until evicted",
        ),
        // GPFS arbitrates locks across the cluster.
        ("140 27 0:70 / /gpfs/fs1 rw,relatime - gpfs fs1 rw", Worked, "shared, until evicted"),
        // SMB: locks go to the server unless nobrl.
        (
            "150 27 0:80 / /mnt/share rw,relatime - cifs //nas/share rw,vers=3.1.1,cache=strict,username=me,uid=1000,noforceuid,addr=10.0.0.9,file_mode=0755,dir_mode=0755,soft,nounix,serverino,mapposix,rsize=4194304,wsize=4194304,actimeo=1",
            Worked,
            "shared, until evicted",
        ),
        ("151 27 0:81 / /mnt/nobrl rw - cifs //nas/share rw,vers=3.0,nobrl,addr=10.0.0.9", Worked, "node-local"),
        // FUSE: sshfs and s3fs keep locks in this kernel; an unknown one is unknown.
        (
            "160 27 0:90 / /mnt/remote rw,nosuid,nodev,relatime - fuse.sshfs me@login1:/home/me rw,user_id=1000,group_id=1000",
            Worked,
            "node-local",
        ),
        (
            "161 27 0:91 / /mnt/bucket rw,nosuid,nodev,relatime - fuse.s3fs s3fs rw,user_id=0,group_id=0,allow_other",
            Worked,
            "node-local",
        ),
        ("162 27 0:92 / /mnt/s3 rw,nosuid,nodev - fuse mountpoint-s3 rw,user_id=0,group_id=0", Worked, "node-local"),
        ("163 27 0:93 / /mnt/other rw,nosuid,nodev - fuse.myfs myfs rw,user_id=0,group_id=0", Worked, "unknown"),
        // Local filesystems.
        ("27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard", Worked, "local"),
        (
            "60 27 8:17 / /data rw,noatime - xfs /dev/sdb1 rw,attr2,inode64,logbufs=8,logbsize=32k,noquota",
            Worked,
            "local",
        ),
        ("25 24 0:23 / /dev/shm rw,nosuid,nodev - tmpfs tmpfs rw,size=24684084k", Worked, "local"),
        (
            "300 299 0:120 / / rw,relatime - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/A:/var/lib/docker/overlay2/l/B,upperdir=/var/lib/docker/overlay2/x/diff,workdir=/var/lib/docker/overlay2/x/work",
            Worked,
            "local",
        ),
        // Others.
        (
            "170 27 0:100 / /mnt/beegfs rw,relatime - beegfs beegfs_nodev rw,cfgFile=/etc/beegfs/beegfs-client.conf",
            Worked,
            "unknown",
        ),
        (
            "171 27 0:101 / /mnt/ceph rw,relatime - ceph 10.0.0.1:6789:/ rw,name=admin,acl",
            Worked,
            "shared, until evicted",
        ),
        ("172 27 0:102 / /mnt/9p rw - 9p hostshare rw,trans=virtio", Worked, "unknown"),
    ];

    #[test]
    fn each_filesystem_gets_the_lock_semantics_its_mount_implies() {
        for (line, call, expected) in TABLE {
            assert_eq!(&verdict_of(line, *call), expected, "{line} ({call:?})");
        }
    }

    #[test]
    fn a_lock_call_that_fails_as_unsupported_overrides_the_mount() {
        let nfs = "120 27 0:52 / /home rw - nfs4 fs1:/home rw,vers=4.2,local_lock=none";
        let ext4 = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw";
        let lustre = "133 27 0:63 / /lustre/x rw - lustre 10.1.0.1@tcp:/x rw,lazystatfs";
        for errno in [libc::ENOSYS, libc::ENOLCK, libc::EBADF, libc::EOPNOTSUPP] {
            for line in [nfs, ext4, lustre] {
                assert_eq!(verdict_of(line, LockCall::Failed(errno)), "unsupported", "{line} errno {errno}");
            }
        }
        // Another error (a permission, say) says nothing about the filesystem's locks.
        assert_eq!(verdict_of(ext4, LockCall::Failed(libc::EACCES)), "local");
        let mount = parse_line(lustre).unwrap();
        let LockSupport::Unsupported { reason } =
            judge(&mount.fs_type, "", &mount.options, LockCall::Failed(libc::ENOSYS))
        else {
            panic!("unsupported")
        };
        assert!(reason.starts_with("flock fails here with ENOSYS (function not implemented)"), "{reason}");
        assert!(reason.ends_with("remount with -o flock"), "{reason}");
    }

    #[test]
    fn statfs_magic_numbers_name_their_filesystems() {
        let table: &[(u64, Option<&str>)] = &[
            (0x6969, Some("nfs")),
            (0x0BD0_0BD0, Some("lustre")),
            (0x4750_4653, Some("gpfs")),
            (0xFF53_4D42, Some("cifs")),
            (0xFE53_4D42, Some("smb3")),
            (0x6573_5546, Some("fuse")),
            (0xEF53, Some("ext4")),
            (0x5846_5342, Some("xfs")),
            (0x0102_1994, Some("tmpfs")),
            (0x794C_7630, Some("overlay")),
            (0x00C3_6400, Some("ceph")),
            // A signed 64-bit f_type holding a magic with the top bit set.
            (0xFFFF_FFFF_FF53_4D42, Some("cifs")),
            (0x1234_5678, None),
        ];
        for (magic, name) in table {
            assert_eq!(fs_type_of_magic(*magic), *name, "{magic:#x}");
        }
        // Every magic maps to a type the rules judge as the mountinfo name would be judged.
        for (_, name) in MAGIC {
            let support = judge(name, "", &[], LockCall::Worked);
            assert!(
                !matches!(support, LockSupport::Unknown { ref note } if note.starts_with("runstore does not know")),
                "{name}"
            );
        }
    }

    #[test]
    fn only_the_options_that_matter_are_kept() {
        let options: Vec<String> =
            ["rw", "relatime", "rw", "vers=4.2", "hard", "local_lock=none", "addr=1.2.3.4"].map(String::from).into();
        assert_eq!(options_that_matter(&options), ["vers=4.2", "local_lock=none"]);
    }
}
