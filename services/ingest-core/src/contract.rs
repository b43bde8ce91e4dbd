//! The names the operator and the services must agree on, each written once
//! (../shared/DESIGN.md, "Service configuration" and "Data contracts"): the
//! services' environment variables, the DynamoDB table's key, index and TTL
//! attribute, the S3 key prefixes, and the Kafka topic names.
//!
//! The services read these names (their clap flags, [`crate::store`]); the
//! operator writes them (the endpoints ConfigMap and the Deployments'
//! environment, the EC2 user data of the upload instances) or creates what
//! they name (the table's index and TTL, the bucket's lifecycle rules, the
//! Firehose prefixes, the instance role's policy, the dead-letter topic). A
//! name changed here changes on both sides at once.

/// Declares one `&str` constant per name and `$list`, every name in the
/// order given, so that no name can be left out of the list.
macro_rules! names {
    ($(#[$list_doc:meta])* $list:ident; $($(#[$doc:meta])* $name:ident = $value:literal;)+) => {
        $($(#[$doc])* pub const $name: &str = $value;)+
        $(#[$list_doc])*
        pub const $list: &[&str] = &[$($value),+];
    };
}

pub mod env {
    //! Environment variables of the services. Each is a flag's fallback
    //! (`--bucket` reads `PIPELINE_BUCKET`). The operator sets them: in
    //! the endpoints ConfigMap both services' pods load, in each
    //! Deployment's own environment, and in the env file of the upload
    //! instances' user data.
    //!
    //! The names at this level are the pipeline settings both services
    //! read ([`crate::service::PipelineArgs`]); [`upload_api`] and
    //! [`stream_bridge`] hold each service's own; [`published`] the
    //! endpoints the operator adds for other workloads. The services' tests
    //! check that their flags read exactly these names.

    use std::collections::BTreeSet;

    /// The environment variables the flags of `command` fall back to: what a
    /// service's tests compare with the contract's names.
    pub fn read_by(command: &clap::Command) -> BTreeSet<String> {
        command
            .get_arguments()
            .filter_map(|arg| arg.get_env())
            .map(|name| name.to_string_lossy().into_owned())
            .collect()
    }

    names! {
        /// Every pipeline setting, as [`crate::service::PipelineArgs`] reads them.
        ALL;
        /// S3 bucket of the pipeline (images under [`super::prefix::IMAGES`]).
        BUCKET = "PIPELINE_BUCKET";
        /// DynamoDB table of the image items ([`super::table`]).
        TABLE = "PIPELINE_TABLE";
        /// Firehose delivery stream the image events go to.
        DELIVERY_STREAM = "PIPELINE_DELIVERY_STREAM";
        /// Days an image is kept: sets the item's [`super::table::TTL_ATTRIBUTE`].
        RETENTION_DAYS = "PIPELINE_RETENTION_DAYS";
        /// Largest image accepted, in bytes.
        MAX_IMAGE_BYTES = "PIPELINE_MAX_IMAGE_BYTES";
        /// Accepted MIME types, comma-separated.
        ALLOWED_CONTENT_TYPES = "PIPELINE_ALLOWED_CONTENT_TYPES";
        /// Most pixels an image may hold, all frames together.
        MAX_IMAGE_PIXELS = "PIPELINE_MAX_IMAGE_PIXELS";
        /// Most frames an animation may hold.
        MAX_IMAGE_FRAMES = "PIPELINE_MAX_IMAGE_FRAMES";
        /// What metadata is removed before an image is stored: `all`,
        /// `location` or `none`.
        STRIP_METADATA = "PIPELINE_STRIP_METADATA";
    }

    pub mod upload_api {
        //! upload-api's own settings; the operator sets the listen address,
        //! the keys file, the spool directory and JSON logs.

        names! {
            /// Every upload-api setting besides [`super::ALL`].
            ALL;
            /// Address of the API, `/healthz`, `/readyz` and `/metrics`.
            LISTEN = "UPLOAD_LISTEN";
            /// File of API keys, one a line (a mounted Secret, or the
            /// instances' tmpfs copy of the SSM parameter).
            API_KEYS_FILE = "UPLOAD_API_KEYS_FILE";
            /// Uploads received at once.
            MAX_CONCURRENT_UPLOADS = "UPLOAD_MAX_CONCURRENT_UPLOADS";
            /// Directory large images are spooled to while they arrive.
            SPOOL_DIR = "UPLOAD_SPOOL_DIR";
            /// Memory the images arriving at once may share before they are
            /// spooled, in bytes.
            SPOOL_MEMORY_BYTES = "UPLOAD_SPOOL_MEMORY_BYTES";
            /// Longest pause while a request body arrives, in seconds.
            BODY_TIMEOUT_SECONDS = "UPLOAD_BODY_TIMEOUT_SECONDS";
            /// Longest time to receive a request's headers, in seconds.
            HEADER_TIMEOUT_SECONDS = "UPLOAD_HEADER_TIMEOUT_SECONDS";
            /// Time uploads in flight get after SIGTERM, in seconds.
            DRAIN_TIMEOUT_SECONDS = "UPLOAD_DRAIN_TIMEOUT_SECONDS";
            /// Log as JSON lines.
            LOG_JSON = "UPLOAD_LOG_JSON";
            /// Threads that receive and send (the checks have their own).
            WORKER_THREADS = "UPLOAD_WORKER_THREADS";
            /// Requests a second each API key may make (unlimited when unset).
            KEY_REQUESTS_PER_SECOND = "UPLOAD_KEY_REQUESTS_PER_SECOND";
            /// Upload bytes a second each API key may send (unlimited when unset).
            KEY_BYTES_PER_SECOND = "UPLOAD_KEY_BYTES_PER_SECOND";
        }
    }

    pub mod stream_bridge {
        //! stream-bridge's own settings; the operator sets the listen
        //! address, the Kafka bootstrap servers, topic and consumer group,
        //! and JSON logs.

        names! {
            /// Every stream-bridge setting besides [`super::ALL`].
            ALL;
            /// Address of `/healthz`, `/readyz` and `/metrics`.
            LISTEN = "BRIDGE_LISTEN";
            /// Kafka bootstrap servers, comma-separated `host:port`.
            KAFKA_BOOTSTRAP_SERVERS = "KAFKA_BOOTSTRAP_SERVERS";
            /// Topic of images ([`crate::contract::kafka`]).
            KAFKA_TOPIC = "KAFKA_TOPIC";
            /// Consumer group.
            KAFKA_GROUP_ID = "KAFKA_GROUP_ID";
            /// How long the group waits for a silent member, in ms.
            KAFKA_SESSION_TIMEOUT_MS = "KAFKA_SESSION_TIMEOUT_MS";
            /// Records being stored at once.
            MAX_IN_FLIGHT_RECORDS = "BRIDGE_MAX_IN_FLIGHT_RECORDS";
            /// Records making S3 and DynamoDB calls at once.
            MAX_CONCURRENT_STORES = "BRIDGE_MAX_CONCURRENT_STORES";
            /// Bytes of records stored at once.
            MAX_IN_FLIGHT_BYTES = "BRIDGE_MAX_IN_FLIGHT_BYTES";
            /// Longest time an event waits for its Firehose batch, in ms.
            FIREHOSE_FLUSH_MS = "BRIDGE_FIREHOSE_FLUSH_MS";
            /// Time records in flight get after SIGTERM, in seconds.
            DRAIN_TIMEOUT_SECONDS = "BRIDGE_DRAIN_TIMEOUT_SECONDS";
            /// How often the lag metric is measured, in seconds.
            LAG_INTERVAL_SECONDS = "BRIDGE_LAG_INTERVAL_SECONDS";
            /// Log as JSON lines.
            LOG_JSON = "BRIDGE_LOG_JSON";
        }
    }

    pub mod published {
        //! What the operator adds to the endpoints ConfigMap for other
        //! workloads of the namespace to read. No service reads these.

        names! {
            /// Every published endpoint.
            ALL;
            /// The load balancer's URL of upload-api, once it exists.
            UPLOAD_URL = "PIPELINE_UPLOAD_URL";
            /// The in-cluster Service URL of upload-api.
            IN_CLUSTER_UPLOAD_URL = "PIPELINE_IN_CLUSTER_UPLOAD_URL";
            /// The Redshift endpoint, when analytics is on.
            WAREHOUSE = "PIPELINE_WAREHOUSE";
        }
    }
}

pub mod table {
    //! The DynamoDB table of image items: the operator creates it with this
    //! key, index and TTL attribute; the services write and query items by
    //! them ([`crate::store`]).

    /// Partition key of an item: the image id.
    pub const PARTITION_KEY: &str = "id";
    /// Attribute holding the content's SHA-256, the key of [`SHA256_INDEX`].
    pub const SHA256_ATTRIBUTE: &str = "sha256";
    /// The perceptual hash of the first frame, 16 hex digits, for finding
    /// near-duplicates (not a key: written by the services only).
    pub const PHASH_ATTRIBUTE: &str = "phash";
    /// The SHA-256 of the bytes received, before metadata was removed.
    pub const ORIGINAL_SHA256_ATTRIBUTE: &str = "originalSha256";
    /// The name of the API key an upload came with (never the key).
    pub const UPLOADED_BY_ATTRIBUTE: &str = "uploadedBy";
    /// Global secondary index on [`SHA256_ATTRIBUTE`], for deduplication.
    pub const SHA256_INDEX: &str = "bySha256";
    /// Epoch seconds after which DynamoDB's TTL deletes an item.
    pub const TTL_ATTRIBUTE: &str = "expiresAt";
    /// How the partition key of an upload in progress starts
    /// (`upload#<upload-id>`): items of uploads still arriving live beside
    /// the images' items, never parse as an image id, and are the only items
    /// the upload instances may update or delete.
    pub const UPLOAD_KEY_PREFIX: &str = "upload#";
}

pub mod prefix {
    //! Key prefixes of the pipeline's bucket. The services write images;
    //! Firehose, configured by the operator, writes events and the records
    //! it could not deliver. The operator expires all three after the
    //! retention and lets the upload instances reach only images.

    /// Image objects, `images/YYYY/MM/DD/<id>.<ext>` ([`crate::object_key`]).
    pub const IMAGES: &str = "images/";
    /// Firehose deliveries of image events, one JSON line per event.
    pub const EVENTS: &str = "events/";
    /// Records Firehose could not deliver.
    pub const ERRORS: &str = "errors/";
    /// The Kafka distribution the operator stages for its brokers,
    /// `artifacts/kafka/<version>/<file>`: never expired, read by the brokers.
    pub const KAFKA_ARTIFACTS: &str = "artifacts/kafka/";
    /// The brokers' heartbeats, `kafka/brokers/<node-id>.json`
    /// ([`crate::contract::kafka::heartbeat`]).
    pub const BROKER_HEARTBEATS: &str = "kafka/brokers/";
    /// Uploads still arriving, `staging/<upload-id>/…`: tus resumable
    /// uploads and direct uploads to S3, until upload-api checks and stores
    /// them under [`IMAGES`]. What is abandoned there expires after
    /// [`STAGING_EXPIRY_DAYS`].
    pub const STAGING: &str = "staging/";
    /// Days after which the lifecycle removes what is left under [`STAGING`]
    /// (S3 counts lifecycle time in whole days); an upload not finished
    /// within a day is abandoned.
    pub const STAGING_EXPIRY_DAYS: u32 = 1;
}

pub mod kafka {
    //! The Kafka topics of stream input: stream-bridge consumes the topic
    //! and writes poison records to its dead-letter topic; the operator's
    //! brokers create both.

    /// Topic consumed when neither the spec nor the flag names one.
    pub const DEFAULT_TOPIC: &str = "images";
    /// Appended to the topic to name its dead-letter topic.
    pub const DEAD_LETTER_SUFFIX: &str = ".dlq";

    /// `<topic>.dlq`, where stream-bridge puts records it cannot store.
    pub fn dead_letter_topic(topic: &str) -> String {
        format!("{topic}{DEAD_LETTER_SUFFIX}")
    }

    pub mod heartbeat {
        //! What a managed broker reports every 30 s: one JSON object at
        //! [`key`] in the pipeline's bucket, written by the broker's boot
        //! script (and by the demo, which plays the brokers' part), read by
        //! the operator for `KafkaReady`.

        use serde::{Deserialize, Serialize};

        /// How often a broker writes its heartbeat.
        pub const INTERVAL_SECONDS: u64 = 30;
        /// A heartbeat older than this is silence.
        pub const FRESH_FOR_SECONDS: u64 = 120;

        /// `kafka/brokers/<node-id>.json`.
        pub fn key(node_id: u32) -> String {
            format!("{}{node_id}.json", crate::contract::prefix::BROKER_HEARTBEATS)
        }

        /// Where a broker is in its life.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum BrokerState {
            /// Installing Java or Kafka, or preparing the data volume.
            Installing,
            /// Kafka is started and has not joined a quorum with a leader yet.
            Starting,
            /// Kafka answers and the KRaft quorum has a leader.
            Serving,
            /// Setup or Kafka failed; `error` says why.
            Failed,
        }

        impl BrokerState {
            pub fn as_str(self) -> &'static str {
                match self {
                    Self::Installing => "installing",
                    Self::Starting => "starting",
                    Self::Serving => "serving",
                    Self::Failed => "failed",
                }
            }
        }

        /// One heartbeat. Every key is always written (`error` is null
        /// unless the state is `failed`).
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct BrokerHeartbeat {
            pub node_id: u32,
            pub instance_id: String,
            pub state: BrokerState,
            /// The last error line when `failed`.
            pub error: Option<String>,
            pub kafka_version: String,
            /// Whether the KRaft quorum has a leader.
            pub quorum_leader: bool,
            pub under_replicated_partitions: u64,
            /// Free bytes on the data volume.
            pub data_free_bytes: u64,
            /// RFC 3339, when the heartbeat was written.
            pub time: String,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use clap::Args;

    use super::*;
    use crate::service::PipelineArgs;

    #[test]
    fn the_pipeline_flags_read_exactly_the_contract_s_environment() {
        let command = PipelineArgs::augment_args(clap::Command::new("service"));
        let read = env::read_by(&command);
        let contract: BTreeSet<String> = env::ALL.iter().map(|name| (*name).to_owned()).collect();
        assert_eq!(
            read, contract,
            "every name of contract::env is read by a flag of PipelineArgs, and every flag's variable is in the contract"
        );
        let flags = command.get_arguments().count();
        assert_eq!(flags, env::ALL.len(), "every pipeline flag has a variable");
    }

    #[test]
    fn no_name_is_spelled_twice() {
        let names: Vec<&str> = [
            env::ALL,
            env::upload_api::ALL,
            env::stream_bridge::ALL,
            env::published::ALL,
        ]
        .concat();
        let distinct: BTreeSet<&str> = names.iter().copied().collect();
        assert_eq!(distinct.len(), names.len(), "{names:?}");
    }

    #[test]
    fn the_dead_letter_topic_follows_the_topic() {
        assert_eq!(kafka::dead_letter_topic(kafka::DEFAULT_TOPIC), "images.dlq");
    }
}
