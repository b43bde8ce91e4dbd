use std::{path::PathBuf, process::Command, time::Duration};

use tempfile::TempDir;

use crate::{
    HarnessError, Tool,
    process::{ServiceProcess, accepts_connections, free_loopback_port},
};

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const START_ATTEMPTS: usize = 3;

/// A Kafka-protocol broker (tansu) of one test, on a loopback port, with a
/// fresh sqlite store of its own. Stopped when dropped.
///
/// tansu's in-memory store loses messages when a consumer group resumes, so
/// the store is sqlite. Topics are not created on first use: create them with
/// [`KafkaBroker::create_topic`].
pub struct KafkaBroker {
    process: ServiceProcess,
    tansu: PathBuf,
    port: u16,
    // Holds the store and the log; removed when the broker is dropped.
    _dir: TempDir,
}

impl KafkaBroker {
    /// Starts a broker and waits until it answers Kafka requests.
    pub async fn start() -> Result<Self, HarnessError> {
        let tansu = Tool::Tansu.path()?;
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::Builder::new()
                .prefix("imagepipeline-kafka-")
                .tempdir()
                .map_err(|source| HarnessError::Io {
                    what: "creating a folder for the Kafka broker".into(),
                    source,
                })?;
            let port = free_loopback_port()?;
            let url = format!("tcp://127.0.0.1:{port}");
            let args = [
                "broker".to_owned(),
                "--listener-url".to_owned(),
                url.clone(),
                "--advertised-listener-url".to_owned(),
                url,
                // Relative to the working directory: tansu resolves the path under it.
                "--storage-engine".to_owned(),
                "sqlite://tansu.db".to_owned(),
            ];
            let process = ServiceProcess::spawn(
                "the Kafka broker (tansu)",
                &tansu,
                &args,
                dir.path(),
                dir.path().join("tansu.log"),
            )?;
            let mut broker = Self {
                process,
                tansu: tansu.clone(),
                port,
                _dir: dir,
            };
            match broker.wait_until_serving().await {
                Ok(()) => return Ok(broker),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    async fn wait_until_serving(&mut self) -> Result<(), HarnessError> {
        let port = self.port;
        self.process
            .wait_until_ready(READY_TIMEOUT, || accepts_connections(port))
            .await?;
        // Accepting connections is not yet answering: ask for the topic list.
        let tansu = self.tansu.clone();
        let broker_url = self.broker_url();
        self.process
            .wait_until_ready(READY_TIMEOUT, || {
                let tansu = tansu.clone();
                let broker_url = broker_url.clone();
                async move {
                    tokio::task::spawn_blocking(move || {
                        Command::new(&tansu)
                            .args(["topic", "list", "--broker", &broker_url])
                            .output()
                            .is_ok_and(|output| output.status.success())
                    })
                    .await
                    .unwrap_or(false)
                }
            })
            .await
    }

    fn broker_url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// The `bootstrap.servers` value for clients.
    pub fn bootstrap_servers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates a topic with `partitions` partitions.
    pub async fn create_topic(&self, name: &str, partitions: u32) -> Result<(), HarnessError> {
        let mut command = tokio::process::Command::new(&self.tansu);
        command.args([
            "topic",
            "create",
            "--broker",
            &self.broker_url(),
            "--partitions",
            &partitions.to_string(),
            name,
        ]);
        let output = command.output().await.map_err(|source| HarnessError::Spawn {
            what: format!("tansu topic create {name}"),
            source,
        })?;
        if output.status.success() {
            Ok(())
        } else {
            Err(HarnessError::Command {
                command: format!("tansu topic create {name} --partitions {partitions}"),
                status: output.status,
                output: String::from_utf8_lossy(&[output.stdout, output.stderr].concat()).into_owned(),
            })
        }
    }
}
