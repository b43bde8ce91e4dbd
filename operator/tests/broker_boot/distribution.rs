//! The Kafka distribution the broker boot test stages: the layout of Apache
//! Kafka's `.tgz` (`kafka_2.13-<version>/bin`, `libs/kafka-clients-<version>.jar`),
//! with start and admin scripts (`kafka/bin/`) that run the test's broker.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha512};

use super::tools::fixture;

/// The Kafka admin and start scripts the boot script and the heartbeat run.
const SCRIPTS: [&str; 4] = [
    "kafka-server-start.sh",
    "kafka-storage.sh",
    "kafka-topics.sh",
    "kafka-metadata-quorum.sh",
];

/// `kafka_2.13-<version>`: the archive's top folder.
pub fn top_folder(version: &str) -> String {
    format!("kafka_2.13-{version}")
}

/// Writes the distribution's tree for `version` into `dir/<top folder>`.
pub fn unpacked(dir: &Path, version: &str) -> PathBuf {
    let top = dir.join(top_folder(version));
    fs::create_dir_all(top.join("bin")).unwrap();
    fs::create_dir_all(top.join("libs")).unwrap();
    for script in SCRIPTS {
        let target = top.join("bin").join(script);
        fs::copy(fixture(&format!("kafka/bin/{script}")), &target).unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o755)).unwrap();
    }
    // The one jar every Kafka distribution has; its name tells the version.
    fs::write(
        top.join(format!("libs/kafka-clients-{version}.jar")),
        b"test distribution",
    )
    .unwrap();
    top
}

/// A staged archive's bytes and their SHA-512 (lowercase hex).
pub struct Archive {
    pub bytes: Vec<u8>,
    pub sha512: String,
}

impl Archive {
    fn of(bytes: Vec<u8>) -> Archive {
        let sha512 = hex::encode(Sha512::digest(&bytes));
        Archive { bytes, sha512 }
    }
}

/// The `.tgz` of [`unpacked`], and the same archive after someone changed
/// its start script (what a refused download must be).
pub fn archives(version: &str) -> (Archive, Archive) {
    let dir = tempfile::tempdir().unwrap();
    let top = unpacked(dir.path(), version);
    let genuine = Archive::of(tgz(dir.path(), version));
    let start = top.join("bin/kafka-server-start.sh");
    let mut script = fs::read_to_string(&start).unwrap();
    script.push_str("# changed after staging\n");
    fs::write(&start, script).unwrap();
    let tampered = Archive::of(tgz(dir.path(), version));
    (genuine, tampered)
}

fn tgz(dir: &Path, version: &str) -> Vec<u8> {
    let archive = dir.join("kafka.tgz");
    let output = Command::new("tar")
        .args(["--owner=0", "--group=0", "-czf"])
        .arg(&archive)
        .arg("-C")
        .arg(dir)
        .arg(top_folder(version))
        .output()
        .expect("run tar");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    fs::read(&archive).unwrap()
}
