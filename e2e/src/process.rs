use std::{
    fs::File,
    future::Future,
    net::{SocketAddr, TcpListener},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    time::{Duration, Instant},
};

use crate::HarnessError;

/// Runs the program in `$0` with the arguments `"$@"` and ends it when this
/// shell's stdin reaches end of file: when the test process closes the pipe on
/// purpose, or when the test process is gone, however it ended. Background
/// jobs of a non-interactive shell read /dev/null unless told otherwise, hence
/// the explicit descriptor 3.
const LIFELINE: &str = r#"exec 3<&0
"$0" "$@" </dev/null &
service=$!
{ cat <&3 >/dev/null; kill "$service" 2>/dev/null; } &
wait "$service""#;

/// How long a service gets to stop after its lifeline is cut.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A service process of a test, with its output in a log file.
pub(crate) struct ServiceProcess {
    what: String,
    child: Child,
    lifeline: Option<ChildStdin>,
    log: PathBuf,
}

impl ServiceProcess {
    /// Starts `program args…` in `dir`, writing its output to `log`.
    pub(crate) fn spawn(
        what: &str,
        program: &Path,
        args: &[String],
        dir: &Path,
        log: PathBuf,
    ) -> Result<Self, HarnessError> {
        let io_failed = |source| HarnessError::Io {
            what: format!("creating the log {} of {what}", log.display()),
            source,
        };
        let stdout = File::create(&log).map_err(io_failed)?;
        let stderr = stdout.try_clone().map_err(io_failed)?;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(LIFELINE)
            .arg(program)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(stderr)
            // Out of the terminal's process group: Ctrl-C reaches the program
            // that started the service, which may still need it (the demo
            // destroys its pipeline in the emulator before it stops).
            .process_group(0)
            .spawn()
            .map_err(|source| HarnessError::Spawn {
                what: what.to_owned(),
                source,
            })?;
        let lifeline = child.stdin.take();
        Ok(Self {
            what: what.to_owned(),
            child,
            lifeline,
            log,
        })
    }

    /// Waits until `probe` says the service answers, failing early when the
    /// process exits and with the end of its log when time runs out.
    pub(crate) async fn wait_until_ready<F, Fut>(
        &mut self,
        timeout: Duration,
        mut probe: F,
    ) -> Result<(), HarnessError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let started = Instant::now();
        loop {
            self.ensure_running()?;
            if probe().await {
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(HarnessError::NotReady {
                    what: self.what.clone(),
                    waited: timeout,
                    log: self.log.clone(),
                    tail: log_tail(&self.log),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// An error when the process has exited.
    pub(crate) fn ensure_running(&mut self) -> Result<(), HarnessError> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(HarnessError::Exited {
                what: self.what.clone(),
                status,
                log: self.log.clone(),
                tail: log_tail(&self.log),
            }),
            Err(source) => Err(HarnessError::Io {
                what: format!("checking on {}", self.what),
                source,
            }),
        }
    }

    /// Cuts the lifeline and waits for the process to end; kills it if it
    /// does not end in time.
    pub(crate) fn stop(&mut self) {
        drop(self.lifeline.take());
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port nobody listens on now. Another process may take it before
/// the service binds it; callers retry with a new port when the service fails.
pub(crate) fn free_loopback_port() -> Result<u16, HarnessError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|source| HarnessError::Io {
            what: "finding a free loopback port".into(),
            source,
        })
}

/// Whether something accepts TCP connections on `port`.
pub(crate) async fn accepts_connections(port: u16) -> bool {
    tokio::net::TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .is_ok()
}

/// The last lines of a service's log, for error messages.
pub(crate) fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
