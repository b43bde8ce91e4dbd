//! `scripts/prerequisites.sh`, which `make demo` and `make test` run first,
//! on a machine made of stand-ins: a PATH holding only the commands the
//! script looks for, an `id` that says who runs it, a `sudo` that allows or
//! refuses, and an `apt-get` that records what it was asked.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

/// The stand-in machine.
struct Machine {
    dir: TempDir,
}

/// Who runs the script, and whether sudo lets them without a password.
#[derive(Clone, Copy)]
enum User {
    Root,
    PasswordlessSudo,
    SudoNeedsPassword,
}

impl Machine {
    /// A machine with every prerequisite but those in `missing`.
    fn new(missing: &[&str], user: User) -> Self {
        let machine = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        let bin = machine.bin();
        fs::create_dir(&bin).unwrap();
        let log = machine.apt_log();
        for present in ["cargo", "cc", "cmake", "curl", "python3", "shellcheck"] {
            if !missing.contains(&present) {
                machine.script(present, "exit 0");
            }
        }
        // `cc -E` finds curl/curl.h unless the headers are missing.
        if !missing.contains(&"cc") && missing.contains(&"libcurl") {
            machine.script("cc", "exit 1");
        }
        let uid = if matches!(user, User::Root) { 0 } else { 1000 };
        machine.script("id", &format!("echo {uid}"));
        match user {
            User::Root => {}
            User::PasswordlessSudo => machine.script("sudo", "[ \"$1\" = -n ] && shift; \"$@\""),
            User::SudoNeedsPassword => {
                machine.script("sudo", "echo 'sudo: a password is required' >&2; exit 1")
            }
        }
        machine.script("apt-get", &format!("echo \"$*\" >> '{}'", log.display()));
        machine
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    fn apt_log(&self) -> PathBuf {
        self.dir.path().join("apt-get.log")
    }

    fn script(&self, name: &str, body: &str) {
        let path = self.bin().join(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn run(&self, args: &[&str]) -> Output {
        let script = imagepipeline_e2e::repo_root().join("scripts/prerequisites.sh");
        Command::new("/bin/bash")
            .arg(&script)
            .args(args)
            .env_clear()
            .env("PATH", self.bin())
            .output()
            .expect("run scripts/prerequisites.sh")
    }

    /// Every apt-get command line, in order.
    fn apt_calls(&self) -> Vec<String> {
        read_lines(&self.apt_log())
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .map(|text| text.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn as_root_the_missing_packages_are_installed_saying_what_and_why() {
    let machine = Machine::new(&["cmake", "libcurl", "shellcheck"], User::Root);
    let output = machine.run(&[]);
    let said = stderr(&output);
    assert!(output.status.success(), "{said}");
    assert_eq!(
        machine.apt_calls(),
        vec![
            "update -qq",
            "install -y -qq --no-install-recommends cmake libcurl4-openssl-dev shellcheck"
        ]
    );
    for why in [
        "installing missing system packages",
        "cmake: librdkafka is built with cmake",
        "libcurl4-openssl-dev: librdkafka's build needs the libcurl headers",
        "shellcheck: make test checks the shell scripts",
    ] {
        assert!(said.contains(why), "says {why:?}: {said}");
    }
}

#[test]
fn with_passwordless_sudo_they_are_installed_through_sudo() {
    let machine = Machine::new(&["cmake"], User::PasswordlessSudo);
    let output = machine.run(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        machine.apt_calls(),
        vec!["update -qq", "install -y -qq --no-install-recommends cmake"]
    );
}

#[test]
fn when_sudo_needs_a_password_it_stops_naming_the_packages_and_the_command() {
    let machine = Machine::new(&["cmake", "shellcheck"], User::SudoNeedsPassword);
    let output = machine.run(&[]);
    let said = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(
        said.contains("missing system packages: cmake shellcheck"),
        "{said}"
    );
    assert!(said.contains("sudo apt-get install cmake shellcheck"), "{said}");
    assert!(said.contains("sudo needs a password"), "{said}");
    assert!(machine.apt_calls().is_empty(), "nothing is installed");
}

#[test]
fn check_only_checks_and_a_complete_machine_says_nothing() {
    let machine = Machine::new(&["cmake"], User::Root);
    let output = machine.run(&["check"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("missing system packages: cmake"));
    assert!(machine.apt_calls().is_empty());

    let complete = Machine::new(&[], User::SudoNeedsPassword);
    let output = complete.run(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(output.stderr.is_empty() && complete.apt_calls().is_empty());
}
