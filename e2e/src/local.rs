//! One ImagePipeline made real on this machine: the AWS emulator and a Kafka
//! broker on loopback, `imagepipeline apply` against the emulator, and
//! upload-api and stream-bridge run as local processes against what apply
//! made. `make demo` and the local end-to-end test both drive it.
//!
//! The EC2 instances apply launches never boot in an emulator, so the
//! services run here instead, and the bridge reads the local broker rather
//! than the brokers' addresses in the status. The topics are made here too,
//! standing in for the brokers' first boot.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Deserialize;
use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::brokers::KAFKA_DISTRIBUTION_URI;
use crate::probes::{free_loopback_address, http_client};
use crate::process::log_tail;
use crate::{AwsEmulator, Binary, HarnessError, KafkaBroker};

/// Longest `imagepipeline apply` or `destroy` may take against the emulator.
const CLI_TIMEOUT: &str = "5m";
/// How long a service gets to answer `/readyz`.
const SERVICE_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The bridge's consumer session. A killed bridge stays a member of its group
/// until the session ends, and tansu only gives its partitions to a
/// successor after that, so the local broker gets a short one.
pub const BRIDGE_SESSION_TIMEOUT: Duration = Duration::from_secs(6);

/// What the manifest says that the local services need to know.
#[derive(Clone, Debug)]
pub struct Manifest {
    pub path: PathBuf,
    /// `<namespace>/<name>`, the value of every resource's owner tag.
    pub owner: String,
    pub name: String,
    pub topic: String,
    pub partitions: u32,
    /// Flags for both services from settings the spec sets explicitly;
    /// unset ones are the services' defaults, which are the spec's.
    pub service_flags: Vec<String>,
}

impl Manifest {
    /// Reads the (first) ImagePipeline of `path`.
    /// A copy of the manifest at `path`, written into `dir`, whose managed
    /// brokers get Kafka from `s3_uri` unless it says where from: this
    /// machine has no internet to stage Apache's archive.
    pub fn with_kafka_distribution(path: &Path, s3_uri: &str, dir: &Path) -> Result<PathBuf, HarnessError> {
        let text = std::fs::read_to_string(path).map_err(|source| HarnessError::Io {
            what: format!("reading {}", path.display()),
            source,
        })?;
        let mut documents: Vec<Value> = serde_saphyr::from_multiple(&text)
            .map_err(|e| HarnessError::Scenario(format!("{}: not YAML: {e}", path.display())))?;
        for document in documents.iter_mut().filter(|d| d["kind"] == "ImagePipeline") {
            let kafka = &mut document["spec"]["kafka"];
            if kafka.get("bootstrapServers").is_none() && kafka.get("distribution").is_none() {
                kafka["distribution"] = serde_json::json!({ "s3Uri": s3_uri });
            }
        }
        // JSON is YAML: one document per `---`.
        let copy: Vec<String> = documents.iter().map(Value::to_string).collect();
        let file_name = path.file_name().unwrap_or_default();
        let copied = dir.join(file_name);
        std::fs::write(&copied, copy.join("\n---\n")).map_err(|source| HarnessError::Io {
            what: format!("writing {}", copied.display()),
            source,
        })?;
        Ok(copied)
    }

    pub fn read(path: &Path) -> Result<Self, HarnessError> {
        let text = std::fs::read_to_string(path).map_err(|source| HarnessError::Io {
            what: format!("reading {}", path.display()),
            source,
        })?;
        let documents: Vec<Value> = serde_saphyr::from_multiple(&text)
            .map_err(|e| HarnessError::Scenario(format!("{}: not YAML: {e}", path.display())))?;
        let pipeline = documents
            .into_iter()
            .find(|d| d["kind"] == "ImagePipeline")
            .ok_or_else(|| HarnessError::Scenario(format!("{} holds no ImagePipeline", path.display())))?;
        let name = pipeline["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let namespace = pipeline["metadata"]["namespace"].as_str().unwrap_or("default");
        let spec = &pipeline["spec"];
        let mut service_flags = Vec::new();
        if let Some(days) = spec["storage"]["retentionDays"].as_u64() {
            service_flags.extend(["--retention-days".to_owned(), days.to_string()]);
        }
        if let Some(bytes) = spec["uploadApi"]["maxImageBytes"].as_u64() {
            service_flags.extend(["--max-image-bytes".to_owned(), bytes.to_string()]);
        }
        if let Some(types) = spec["uploadApi"]["allowedContentTypes"].as_array() {
            let types: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
            service_flags.extend(["--allowed-content-types".to_owned(), types.join(",")]);
        }
        Ok(Self {
            path: path.to_owned(),
            owner: format!("{namespace}/{name}"),
            name,
            topic: spec["kafka"]["topic"].as_str().unwrap_or("images").to_owned(),
            partitions: spec["kafka"]["partitions"]
                .as_u64()
                .and_then(|p| u32::try_from(p).ok())
                .unwrap_or(12),
            service_flags,
        })
    }

    /// The bridge's dead-letter topic (DESIGN.md).
    pub fn dead_letter_topic(&self) -> String {
        format!("{}.dlq", self.topic)
    }
}

/// The status `imagepipeline apply -o json` prints, as far as a user reads it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineStatus {
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default)]
    pub endpoints: Endpoints,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    pub upload_url: Option<String>,
    pub kafka_bootstrap: Option<String>,
    pub bucket: Option<String>,
    pub table: Option<String>,
    pub delivery_stream: Option<String>,
    pub warehouse: Option<String>,
}

impl PipelineStatus {
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    pub(crate) fn required(&self, value: &Option<String>, what: &str) -> Result<String, HarnessError> {
        value
            .clone()
            .ok_or_else(|| HarnessError::Scenario(format!("the status after apply has no {what}")))
    }
}

/// What `imagepipeline plan` said.
#[derive(Clone, Debug)]
pub struct Plan {
    /// `--detailed-exitcode` was 2.
    pub changes_pending: bool,
    pub text: String,
}

/// An answer of upload-api.
#[derive(Clone, Debug)]
pub struct Upload {
    pub status: u16,
    pub body: Value,
}

/// Where a produced record landed in the topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Produced {
    pub partition: i32,
    pub offset: i64,
}

/// A record of the dead-letter topic.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub payload: Vec<u8>,
}

/// An object of the pipeline's bucket.
#[derive(Clone, Debug)]
pub struct StoredObject {
    pub key: String,
    pub content_type: Option<String>,
    pub size: i64,
    pub sha256: Option<String>,
}

/// Everything the pipeline wrote, read back through the AWS and Kafka APIs.
#[derive(Clone, Debug, Default)]
pub struct Landed {
    /// Under `images/`.
    pub images: Vec<StoredObject>,
    /// The DynamoDB items, as JSON objects of their attributes.
    pub items: Vec<Value>,
    /// The Firehose objects under `events/`.
    pub event_objects: Vec<String>,
    /// One per line of those objects (gunzipped when named `.gz`).
    pub events: Vec<Value>,
    pub dead_letters: Vec<DeadLetter>,
}

/// A service process of the pipeline, killed when dropped.
pub struct LocalService {
    what: &'static str,
    child: Child,
    pub address: SocketAddr,
    log: PathBuf,
}

impl LocalService {
    fn spawn(
        what: &'static str,
        mut command: Command,
        address: SocketAddr,
        log: PathBuf,
    ) -> Result<Self, HarnessError> {
        let file = std::fs::File::create(&log).map_err(|source| HarnessError::Io {
            what: format!("creating {}", log.display()),
            source,
        })?;
        let file_err = file.try_clone().map_err(|source| HarnessError::Io {
            what: format!("opening {}", log.display()),
            source,
        })?;
        let child = command
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(file_err)
            // Its own process group: Ctrl-C in the terminal reaches the
            // demo, which stops the services in order, not each at once.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| HarnessError::Spawn {
                what: what.to_owned(),
                source,
            })?;
        Ok(Self {
            what,
            child,
            address,
            log,
        })
    }

    /// Waits until `/readyz` answers 200, failing early if the process exits.
    async fn wait_until_ready(&mut self) -> Result<(), HarnessError> {
        let http = http_client();
        let url = format!("http://{}/readyz", self.address);
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().map_err(|source| HarnessError::Io {
                what: format!("checking on {}", self.what),
                source,
            })? {
                return Err(HarnessError::Exited {
                    what: self.what.to_owned(),
                    status,
                    log: self.log.clone(),
                    tail: log_tail(&self.log),
                });
            }
            if http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if started.elapsed() > SERVICE_READY_TIMEOUT {
                return Err(HarnessError::NotReady {
                    what: self.what.to_owned(),
                    waited: SERVICE_READY_TIMEOUT,
                    log: self.log.clone(),
                    tail: log_tail(&self.log),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The process id, for a test that signals it.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGKILL, and the wait for the process to be gone.
    pub async fn kill(&mut self) -> Result<(), HarnessError> {
        self.child.kill().await.map_err(|source| HarnessError::Io {
            what: format!("killing {}", self.what),
            source,
        })
    }
}

/// The emulator, the broker, the applied pipeline and its services.
pub struct LocalPipeline {
    pub aws: AwsEmulator,
    pub kafka: KafkaBroker,
    pub manifest: Manifest,
    producer: FutureProducer,
    http: reqwest::Client,
    status: Option<PipelineStatus>,
    api_key: String,
    upload: Option<LocalService>,
    bridge: Option<LocalService>,
    // API keys file and service logs; removed when dropped.
    dir: TempDir,
}

impl LocalPipeline {
    /// Starts the emulator and the broker, and makes the pipeline's topics.
    pub async fn start(manifest: &Path) -> Result<Self, HarnessError> {
        let dir = tempfile::Builder::new()
            .prefix("imagepipeline-local-")
            .tempdir()
            .map_err(|source| HarnessError::Io {
                what: "creating a folder for the services".into(),
                source,
            })?;
        let manifest = Manifest::with_kafka_distribution(manifest, KAFKA_DISTRIBUTION_URI, dir.path())?;
        let manifest = Manifest::read(&manifest)?;
        let (mut aws, kafka) = tokio::try_join!(AwsEmulator::start(), KafkaBroker::start())?;
        // Emulated instances never boot: the brokers' heartbeats are played
        // for the local broker.
        aws.play_brokers(Some(kafka.bootstrap_servers())).await?;
        kafka.create_topic(&manifest.topic, manifest.partitions).await?;
        kafka.create_topic(&manifest.dead_letter_topic(), 1).await?;
        let producer = ClientConfig::new()
            .set("bootstrap.servers", kafka.bootstrap_servers())
            .set("message.timeout.ms", "15000")
            .create()
            .map_err(|source| HarnessError::Kafka {
                what: "creating a producer".into(),
                source,
            })?;
        // What a client of the pipeline would be handed; any value works.
        let api_key = format!("local-{}", std::process::id());
        Ok(Self {
            aws,
            kafka,

            manifest,
            producer,
            http: http_client(),
            status: None,
            api_key,
            upload: None,
            bridge: None,
            dir,
        })
    }

    /// An `imagepipeline` command against the emulator, in its own process
    /// group so that Ctrl-C in the demo's terminal does not cut a destroy short.
    fn operator_command(&self, args: &[&str]) -> Result<Command, HarnessError> {
        let mut command = Command::new(Binary::Operator.path()?);
        command
            .args(args)
            .arg("-f")
            .arg(&self.manifest.path)
            .envs(self.aws.env())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        Ok(command)
    }

    /// Runs an `imagepipeline` command, handing each line it writes to
    /// stderr (its progress) to `progress`; returns its exit code and stdout.
    pub(crate) async fn run_operator(
        &self,
        args: &[&str],
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(Option<i32>, String), HarnessError> {
        let command_line = format!(
            "imagepipeline {} -f {}",
            args.join(" "),
            self.manifest.path.display()
        );
        let mut child = self
            .operator_command(args)?
            .spawn()
            .map_err(|source| HarnessError::Spawn {
                what: command_line.clone(),
                source,
            })?;
        let mut stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let read_stdout = async {
            let mut text = String::new();
            stdout.read_to_string(&mut text).await.map(|_| text)
        };
        let mut seen = Vec::new();
        let forward_stderr = async {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                progress(&line);
                seen.push(line);
            }
        };
        let (text, ()) = tokio::join!(read_stdout, forward_stderr);
        let status = child.wait().await.map_err(|source| HarnessError::Io {
            what: format!("waiting for {command_line}"),
            source,
        })?;
        let text = text.map_err(|source| HarnessError::Io {
            what: format!("reading the output of {command_line}"),
            source,
        })?;
        if status.success() || status.code() == Some(2) {
            Ok((status.code(), text))
        } else {
            Err(HarnessError::Command {
                command: command_line,
                status,
                output: seen.join("\n"),
            })
        }
    }

    /// `imagepipeline apply`: waits until every component is ready.
    pub async fn apply(
        &mut self,
        mut progress: impl FnMut(&str) + Send,
    ) -> Result<&PipelineStatus, HarnessError> {
        let (_, json) = self
            .run_operator(&["apply", "-o", "json", "--timeout", CLI_TIMEOUT], &mut progress)
            .await?;
        let status: PipelineStatus = serde_json::from_str(&json)
            .map_err(|e| HarnessError::Scenario(format!("apply -o json printed no status ({e}): {json}")))?;
        Ok(self.status.insert(status))
    }

    /// `imagepipeline apply` again, printing its status table as a user
    /// sees it; on a pipeline that is as specified it changes nothing.
    pub async fn apply_for_status_table(&self) -> Result<String, HarnessError> {
        let (_, table) = self
            .run_operator(&["apply", "--timeout", CLI_TIMEOUT], &mut |_| {})
            .await?;
        Ok(table)
    }

    /// The status of the last apply.
    pub fn status(&self) -> Option<&PipelineStatus> {
        self.status.as_ref()
    }

    /// `imagepipeline plan --detailed-exitcode`.
    pub async fn plan(&self) -> Result<Plan, HarnessError> {
        let (code, text) = self
            .run_operator(&["plan", "--detailed-exitcode"], &mut |_| {})
            .await?;
        Ok(Plan {
            changes_pending: code == Some(2),
            text,
        })
    }

    /// Stops the services, then `imagepipeline destroy`.
    pub async fn destroy(&mut self, mut progress: impl FnMut(&str) + Send) -> Result<(), HarnessError> {
        self.upload = None;
        self.bridge = None;
        self.run_operator(&["destroy", "--timeout", CLI_TIMEOUT], &mut progress)
            .await?;
        Ok(())
    }

    /// Every AWS resource still tagged as this pipeline's.
    pub async fn leftovers(&self) -> Result<Vec<String>, HarnessError> {
        self.aws.resources_owned_by(&self.manifest.owner).await
    }

    fn targets(&self) -> Result<[String; 6], HarnessError> {
        let status = self
            .status
            .as_ref()
            .ok_or_else(|| HarnessError::Scenario("the services need an applied pipeline".into()))?;
        let e = &status.endpoints;
        Ok([
            "--bucket".into(),
            status.required(&e.bucket, "bucket")?,
            "--table".into(),
            status.required(&e.table, "table")?,
            "--delivery-stream".into(),
            status.required(&e.delivery_stream, "delivery stream")?,
        ])
    }

    fn service_command(&self, binary: Binary, address: SocketAddr) -> Result<Command, HarnessError> {
        let mut command = Command::new(binary.path()?);
        command
            .args(self.targets()?)
            .args(&self.manifest.service_flags)
            .args(["--listen", &address.to_string()])
            .envs(self.aws.env());
        Ok(command)
    }

    /// Starts upload-api, with one API key, and waits until it is ready.
    pub async fn start_upload_api(&mut self) -> Result<SocketAddr, HarnessError> {
        let keys = self.dir.path().join("api-keys");
        std::fs::write(&keys, format!("{}\n", self.api_key)).map_err(|source| HarnessError::Io {
            what: format!("writing {}", keys.display()),
            source,
        })?;
        let address = free_loopback_address();
        let mut command = self.service_command(Binary::UploadApi, address)?;
        command.arg("--api-keys-file").arg(&keys);
        let log = self.dir.path().join("upload-api.log");
        let mut service = LocalService::spawn("upload-api", command, address, log)?;
        service.wait_until_ready().await?;
        Ok(self.upload.insert(service).address)
    }

    /// Starts stream-bridge on the local broker, and waits until it has
    /// joined its consumer group.
    pub async fn start_stream_bridge(&mut self) -> Result<SocketAddr, HarnessError> {
        self.bridge = None;
        let address = free_loopback_address();
        let mut command = self.service_command(Binary::StreamBridge, address)?;
        command
            .args(["--bootstrap-servers", &self.kafka.bootstrap_servers()])
            .args(["--topic", &self.manifest.topic])
            .args([
                "--session-timeout-ms",
                &BRIDGE_SESSION_TIMEOUT.as_millis().to_string(),
            ]);
        let log = self.dir.path().join("stream-bridge.log");
        let mut service = LocalService::spawn("stream-bridge", command, address, log)?;
        service.wait_until_ready().await?;
        Ok(self.bridge.insert(service).address)
    }

    /// The running bridge, for a test that kills it.
    pub fn bridge(&mut self) -> Option<&mut LocalService> {
        self.bridge.as_mut()
    }

    /// `POST /v1/images` with the bytes as the body.
    pub async fn upload(&self, bytes: Vec<u8>, content_type: &str) -> Result<Upload, HarnessError> {
        let address = self
            .upload
            .as_ref()
            .map(|s| s.address)
            .ok_or_else(|| HarnessError::Scenario("upload-api is not running".into()))?;
        let what = format!("POST http://{address}/v1/images");
        let failed = |source| HarnessError::Http {
            what: what.clone(),
            source,
        };
        let response = self
            .http
            .post(format!("http://{address}/v1/images"))
            .bearer_auth(&self.api_key)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(bytes)
            .send()
            .await
            .map_err(failed)?;
        let status = response.status().as_u16();
        let body = response.json().await.map_err(failed)?;
        Ok(Upload { status, body })
    }

    /// Produces `bytes` to the pipeline's topic with the given headers.
    pub async fn produce(&self, bytes: &[u8], headers: &[(&str, &str)]) -> Result<Produced, HarnessError> {
        let mut owned = OwnedHeaders::new();
        for (key, value) in headers {
            owned = owned.insert(Header {
                key,
                value: Some(*value),
            });
        }
        let record = FutureRecord::<(), _>::to(&self.manifest.topic)
            .payload(bytes)
            .headers(owned);
        let delivery = self
            .producer
            .send(record, Duration::from_secs(15))
            .await
            .map_err(|(source, _)| HarnessError::Kafka {
                what: format!("producing to {}", self.manifest.topic),
                source,
            })?;
        Ok(Produced {
            partition: delivery.partition,
            offset: delivery.offset,
        })
    }

    /// Waits until the table holds `images` items from the stream and the
    /// dead-letter topic `dead_letters` records: what a user would check.
    pub async fn wait_until_stored(
        &self,
        images: usize,
        dead_letters: usize,
        within: Duration,
    ) -> Result<(), HarnessError> {
        let started = Instant::now();
        loop {
            let stored = (self.stream_items().await?, self.dead_letters().await?.len());
            if stored == (images, dead_letters) {
                return Ok(());
            }
            if started.elapsed() > within || stored.0 > images || stored.1 > dead_letters {
                return Err(HarnessError::Scenario(format!(
                    "after {:?}: {} items from the stream and {} dead letters, not {images} and {dead_letters}",
                    started.elapsed(),
                    stored.0,
                    stored.1
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The DynamoDB items with `source` `stream`, counted.
    pub async fn stream_items(&self) -> Result<usize, HarnessError> {
        Ok(self
            .items()
            .await?
            .iter()
            .filter(|item| item["source"] == "stream")
            .count())
    }

    /// Everything the pipeline wrote.
    pub async fn landed(&self) -> Result<Landed, HarnessError> {
        let (bucket, _) = self.bucket_and_table()?;
        let images = self.objects(&bucket, "images/").await?;
        let event_objects: Vec<String> = self
            .objects(&bucket, "events/")
            .await?
            .into_iter()
            .map(|o| o.key)
            .collect();
        let s3 = self.aws.s3().await;
        let mut events = Vec::new();
        for key in &event_objects {
            let object = s3
                .get_object()
                .bucket(&bucket)
                .key(key)
                .send()
                .await
                .map_err(HarnessError::aws("GetObject"))?;
            let bytes = object
                .body
                .collect()
                .await
                .map_err(|e| HarnessError::Scenario(format!("reading s3://{bucket}/{key}: {e}")))?
                .into_bytes();
            // gzip (Firehose's default) is told by the name, as Spectrum tells it.
            events.extend(crate::warehouse::event_lines(key, &bytes)?);
        }
        Ok(Landed {
            images,
            items: self.items().await?,
            event_objects,
            events,
            dead_letters: self.dead_letters().await?,
        })
    }

    pub(crate) fn bucket_and_table(&self) -> Result<(String, String), HarnessError> {
        let status = self
            .status
            .as_ref()
            .ok_or_else(|| HarnessError::Scenario("nothing is applied".into()))?;
        Ok((
            status.required(&status.endpoints.bucket, "bucket")?,
            status.required(&status.endpoints.table, "table")?,
        ))
    }

    async fn objects(&self, bucket: &str, prefix: &str) -> Result<Vec<StoredObject>, HarnessError> {
        let s3 = self.aws.s3().await;
        let mut pages = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut objects = Vec::new();
        while let Some(page) = pages.next().await {
            for object in page.map_err(HarnessError::aws("ListObjectsV2"))?.contents() {
                let key = object.key().unwrap_or_default().to_owned();
                let head = s3
                    .head_object()
                    .bucket(bucket)
                    .key(&key)
                    .send()
                    .await
                    .map_err(HarnessError::aws("HeadObject"))?;
                objects.push(StoredObject {
                    content_type: head.content_type().map(str::to_owned),
                    size: object.size().unwrap_or_default(),
                    sha256: head.metadata().and_then(|m| m.get("sha256")).cloned(),
                    key,
                });
            }
        }
        Ok(objects)
    }

    async fn items(&self) -> Result<Vec<Value>, HarnessError> {
        let (_, table) = self.bucket_and_table()?;
        let dynamodb = aws_sdk_dynamodb::Client::new(&self.aws.sdk_config().await);
        let mut pages = dynamodb.scan().table_name(&table).into_paginator().send();
        let mut items = Vec::new();
        while let Some(page) = pages.next().await {
            for item in page.map_err(HarnessError::aws("Scan"))?.items() {
                items.push(Value::Object(
                    item.iter()
                        .map(|(name, value)| (name.clone(), attribute_json(value)))
                        .collect(),
                ));
            }
        }
        items.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        Ok(items)
    }

    /// Reads the dead-letter topic from its beginning to its end.
    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, HarnessError> {
        let bootstrap = self.kafka.bootstrap_servers();
        let topic = self.manifest.dead_letter_topic();
        tokio::task::spawn_blocking(move || read_topic(&bootstrap, &topic))
            .await
            .map_err(|e| HarnessError::Scenario(format!("reading the dead-letter topic panicked: {e}")))?
    }
}

/// Every record of partition 0 of `topic` (the dead-letter topic has one).
fn read_topic(bootstrap: &str, topic: &str) -> Result<Vec<DeadLetter>, HarnessError> {
    let kafka = |what: &str| {
        let what = format!("{what} of {topic}");
        move |source| HarnessError::Kafka { what, source }
    };
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "imagepipeline-e2e-reader")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(kafka("a consumer"))?;
    let timeout = Duration::from_secs(10);
    let (low, high) = consumer
        .fetch_watermarks(topic, 0, timeout)
        .map_err(kafka("the watermarks"))?;
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, rdkafka::Offset::Offset(low))
        .map_err(kafka("the assignment"))?;
    consumer
        .assign(&assignment)
        .map_err(kafka("assigning partition 0"))?;
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut next = low;
    while next < high {
        if Instant::now() > deadline {
            return Err(HarnessError::Scenario(format!(
                "read {} of the {} records of {topic} in 30 s",
                records.len(),
                high - low
            )));
        }
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message.map_err(kafka("a record"))?;
        next = message.offset() + 1;
        let headers: BTreeMap<String, String> = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        let value = h.value.map(String::from_utf8_lossy).unwrap_or_default();
                        (h.key.to_owned(), value.into_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        records.push(DeadLetter {
            error_code: headers.get("error-code").cloned(),
            error_message: headers.get("error-message").cloned(),
            payload: message.payload().unwrap_or_default().to_vec(),
            headers,
        });
    }
    Ok(records)
}

/// A DynamoDB attribute as plain JSON: strings, numbers, maps and lists.
fn attribute_json(value: &aws_sdk_dynamodb::types::AttributeValue) -> Value {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    match value {
        A::S(s) => Value::String(s.clone()),
        A::N(n) => serde_json::from_str(n).unwrap_or_else(|_| Value::String(n.clone())),
        A::Bool(b) => Value::Bool(*b),
        A::M(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), attribute_json(v))).collect()),
        A::L(list) => Value::Array(list.iter().map(attribute_json).collect()),
        A::Null(_) => Value::Null,
        other => Value::String(format!("{other:?}")),
    }
}
