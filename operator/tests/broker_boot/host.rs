//! What the broker boot would change on a host it ran on without a sandbox:
//! the test compares it before and after each boot.

use std::fs;

use sha2::{Digest, Sha256};

/// Paths the boot script and its stand-ins write.
const WATCHED: [&str; 14] = [
    "/etc/fstab",
    "/etc/passwd",
    "/etc/kafka",
    "/etc/systemd/system/kafka.service",
    "/etc/systemd/system/imagepipeline-kafka-heartbeat.timer",
    "/opt/kafka",
    "/usr/local/bin/imagepipeline-kafka-heartbeat",
    "/usr/bin/dnf",
    "/usr/lib/jvm/java-21-amazon-corretto",
    "/var/lib/imagepipeline-kafka",
    "/var/lib/kafka",
    "/var/log/dnf.log",
    "/var/lib/cloud/instance/scripts/part-001",
    "/dev/sdf",
];

/// Each watched path: absent, a folder, a link to where, or a file's SHA-256.
#[derive(Debug, PartialEq, Eq)]
pub struct HostSnapshot(Vec<(&'static str, Option<String>)>);

pub fn snapshot() -> HostSnapshot {
    HostSnapshot(
        WATCHED
            .iter()
            .map(|&path| {
                let seen = fs::symlink_metadata(path).ok().map(|meta| {
                    if meta.is_dir() {
                        "a folder".to_owned()
                    } else if meta.is_symlink() {
                        format!("a link to {:?}", fs::read_link(path).unwrap_or_default())
                    } else {
                        hex::encode(Sha256::digest(fs::read(path).unwrap_or_default()))
                    }
                });
                (path, seen)
            })
            .collect(),
    )
}
