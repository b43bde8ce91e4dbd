//! One broker "instance" of the broker boot test: a mount and PID namespace
//! whose PID 1 is `machine.sh`, with overlays over the directories the boot
//! writes (so the host never changes), a loop device as its EBS data volume,
//! and the stand-ins for what exists only on EC2 in its image.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::time::{Duration, Instant};

use imagepipeline_e2e::{AwsEmulator, Tool};
use tempfile::TempDir;

use super::tools::{CachedTool, fixture};

/// The directories the boot writes: each is an overlay in the machine.
const LAYERS: [&str; 6] = ["etc", "opt", "usr", "var", "tmp", "dev"];
/// Large enough for mkfs.xfs (300 MiB at least); sparse, so it costs no disk.
const DATA_DISK_BYTES: u64 = 512 * 1024 * 1024;
/// Where cloud-init keeps a user-data script it runs.
const USER_DATA_PATH: &str = "var/lib/cloud/instance/scripts/part-001";
/// The machine image's test data, read by the stand-ins and machine.sh.
const TEST_DATA_DIR: &str = "usr/share/imagepipeline-test";

/// What the instance boots from, besides the host's own files.
pub struct MachineImage {
    /// What the `ec2-metadata` stand-in answers.
    pub instance_id: String,
    /// A custom AMI: Java at /usr/bin/java and this Kafka tree at /opt/kafka.
    pub preinstalled_kafka: Option<PathBuf>,
}

/// A running instance; dropping it ends every process in it and frees its disk.
pub struct Machine {
    /// `unshare`; its child, the namespace's PID 1, is `init_pid`.
    unshare: Child,
    init_pid: u32,
    /// Closing it ends the machine.
    stdin: Option<ChildStdin>,
    /// Detached once the machine is gone (fields drop after `Drop::drop`).
    data_disk: LoopDevice,
    /// The layers, the disk's file and the logs; removed last.
    sandbox: TempDir,
    /// Whether the host's mkfs.xfs formats the data volume (else the stand-in's ext4).
    pub real_xfs: bool,
}

impl Machine {
    /// Boots `image` with `user_data`, its AWS clients pointed at `aws`.
    pub fn boot(image: &MachineImage, user_data: &str, aws: &AwsEmulator) -> Machine {
        let sandbox = tempfile::Builder::new()
            .prefix("broker-boot-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("a folder for the sandbox");
        let root = sandbox.path();
        // machine.sh lays an overlay over each of these; a sandbox inside one
        // would hide its own layers once that one is mounted (mount then
        // fails with "wrong fs type ... on overlay").
        if let Some(layer) = LAYERS.iter().find(|layer| root.starts_with(format!("/{layer}"))) {
            panic!(
                "the broker boot sandbox {} is under /{layer}, which the machine overlays: \
                 set CARGO_TARGET_DIR (or IMAGEPIPELINE_CACHE) to a folder outside /{}",
                root.display(),
                LAYERS.join(", /")
            );
        }
        for layer in LAYERS {
            for part in ["upper", "work"] {
                fs::create_dir_all(root.join("layers").join(layer).join(part)).unwrap();
            }
        }
        let real_xfs = host_has("mkfs.xfs");
        install_image(root, image, user_data, aws, real_xfs);
        let data_disk = LoopDevice::attach(root);

        let tansu = Tool::Tansu.path().unwrap_or_else(|err| panic!("{err}"));
        let log = fs::File::create(root.join("machine.log")).unwrap();
        let mut unshare = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "--pid",
                "--fork",
                "--kill-child",
                "--mount-proc",
            ])
            .arg("bash")
            .arg(fixture("machine.sh"))
            .arg(root)
            .arg(&data_disk.0)
            .arg(&tansu)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("AWS_ENDPOINT_URL", aws.endpoint_url())
            .env("AWS_CA_BUNDLE", format!("/{TEST_DATA_DIR}/emulator-ca.pem"))
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::piped())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("run unshare");
        let stdin = unshare.stdin.take();
        let init_pid = namespace_init(&mut unshare, root);
        Machine {
            sandbox,
            unshare,
            init_pid,
            stdin,
            data_disk,
            real_xfs,
        }
    }

    /// The boot script's exit status, once it has ended.
    pub async fn boot_status(&self, timeout: Duration) -> i32 {
        let exit_file = self.sandbox.path().join("boot.exit");
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(status) = fs::read_to_string(&exit_file)
                && let Ok(status) = status.trim().parse()
            {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the boot script did not end within {timeout:?}\n{}",
                self.console()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The boot script's output and, when the machine failed, its own.
    pub fn console(&self) -> String {
        let read = |name: &str| fs::read_to_string(self.sandbox.path().join(name)).unwrap_or_default();
        format!(
            "--- boot script output ---\n{}--- machine ---\n{}",
            read("console.log"),
            read("machine.log")
        )
    }

    /// The loop device that plays the EBS data volume.
    pub fn data_disk(&self) -> &str {
        &self.data_disk.0
    }

    /// Runs `command` inside the machine (its mounts and processes).
    pub fn run(&self, command: &[&str]) -> Output {
        Command::new("nsenter")
            .args(["--target", &self.init_pid.to_string(), "--mount", "--pid", "--"])
            .args(command)
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .output()
            .expect("run nsenter")
    }

    /// A file as the machine sees it, or `None` when it has none there.
    pub fn read(&self, path: &str) -> Option<String> {
        let output = self.run(&["cat", path]);
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        // End of input ends PID 1, and with it every process of the namespace.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.unshare.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

/// A loop device: the instance's EBS data volume.
struct LoopDevice(String);

impl LoopDevice {
    /// A zeroed, sparse file on a loop device: a new, unformatted volume.
    fn attach(root: &Path) -> LoopDevice {
        let image = root.join("data-disk.img");
        fs::File::create(&image)
            .unwrap()
            .set_len(DATA_DISK_BYTES)
            .unwrap();
        let output = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&image)
            .output()
            .expect("run losetup");
        assert!(
            output.status.success(),
            "the test needs a loop device for the data volume (root, with /dev/loop-control): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        LoopDevice(String::from_utf8(output.stdout).unwrap().trim().to_owned())
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        // Should the machine's mount outlive it for a moment, the kernel
        // detaches the device once it is unmounted.
        let _ = Command::new("losetup").args(["--detach", &self.0]).output();
    }
}

/// Puts the machine image's own files into the overlays' upper layers.
fn install_image(root: &Path, image: &MachineImage, user_data: &str, aws: &AwsEmulator, real_xfs: bool) {
    let upper = |path: &str| {
        let (layer, rest) = path.split_once('/').unwrap();
        let file = root.join("layers").join(layer).join("upper").join(rest);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        file
    };
    let write = |path: &str, contents: &[u8], mode: u32| {
        let file = upper(path);
        fs::write(&file, contents).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(mode)).unwrap();
    };
    let mut stand_ins = vec![
        ("systemctl", "usr/bin/systemctl"),
        ("dnf", "usr/bin/dnf"),
        ("ec2-metadata", "usr/bin/ec2-metadata"),
    ];
    if !real_xfs {
        stand_ins.push(("mkfs.xfs", "usr/sbin/mkfs.xfs"));
    }
    for (name, path) in stand_ins {
        write(path, &fs::read(fixture(&format!("image/{name}"))).unwrap(), 0o755);
    }
    // Amazon Linux 2023 has the AWS CLI at /usr/bin/aws; here it is the pinned one.
    symlink(CachedTool::AwsCli.path(), upper("usr/bin/aws")).unwrap();
    write("usr/libexec/imagepipeline-test/tansu", b"", 0o755);
    write(
        &format!("{TEST_DATA_DIR}/instance-id"),
        image.instance_id.as_bytes(),
        0o644,
    );
    write(
        &format!("{TEST_DATA_DIR}/emulator-ca.pem"),
        &fs::read(aws.ca_file()).unwrap(),
        0o644,
    );
    write(USER_DATA_PATH, user_data.as_bytes(), 0o700);
    if let Some(kafka) = &image.preinstalled_kafka {
        copy_tree(kafka, &upper("opt/kafka"));
        write(&format!("{TEST_DATA_DIR}/image-has-java"), b"", 0o644);
        write(
            "usr/bin/java",
            b"#!/bin/sh\necho \"openjdk version 17 (the custom image's Java)\" >&2\n",
            0o755,
        );
    }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The host PID of the namespace's PID 1: `unshare --fork`'s only child.
fn namespace_init(unshare: &mut Child, root: &Path) -> u32 {
    let children = format!("/proc/{0}/task/{0}/children", unshare.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(pids) = fs::read_to_string(&children)
            && let Some(pid) = pids.split_whitespace().next()
        {
            return pid.parse().unwrap();
        }
        if let Ok(Some(status)) = unshare.try_wait() {
            let mut log = String::new();
            let _ = fs::File::open(root.join("machine.log")).and_then(|mut f| f.read_to_string(&mut log));
            panic!("the machine did not start ({status}): {log}");
        }
        assert!(
            Instant::now() < deadline,
            "unshare started no machine within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn host_has(command: &str) -> bool {
    Command::new("bash")
        .args([
            "-c",
            &format!("PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v {command}"),
        ])
        .output()
        .is_ok_and(|output| output.status.success())
}
