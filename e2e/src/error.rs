use std::{path::PathBuf, process::ExitStatus, time::Duration};

/// Why a test's service could not be provided.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A pinned tool is not installed.
    #[error(
        "{tool} is not installed: {} does not exist. Install the pinned test tools with `make tools` \
         (or `scripts/tools.sh install {install_name}`), then run the tests again.",
        path.display()
    )]
    ToolMissing {
        /// What the tool is.
        tool: &'static str,
        /// Where it was looked for.
        path: PathBuf,
        /// Its name for `scripts/tools.sh install`.
        install_name: &'static str,
    },
    /// A binary of the workspace has not been built.
    #[error(
        "{binary} is not built: {} does not exist. Build the workspace with `cargo build --workspace` \
         (`make test` and `make demo` do), then run again.",
        path.display()
    )]
    BinaryMissing {
        /// The executable's name.
        binary: &'static str,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// `scripts/tools.sh` could not say where a tool lives.
    #[error("cannot locate {tool} with scripts/tools.sh: {detail}")]
    ToolLookup {
        /// What the tool is.
        tool: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// A process could not be started.
    #[error("cannot start {what}: {source}")]
    Spawn {
        /// The service.
        what: String,
        /// The failure.
        source: std::io::Error,
    },
    /// A process started but never answered.
    #[error("{what} did not answer within {waited:?}; the end of its log {}:\n{tail}", log.display())]
    NotReady {
        /// The service.
        what: String,
        /// How long it was given.
        waited: Duration,
        /// Its log file.
        log: PathBuf,
        /// The last lines of that log.
        tail: String,
    },
    /// A process exited while it should be serving.
    #[error("{what} exited with {status}; the end of its log {}:\n{tail}", log.display())]
    Exited {
        /// The service.
        what: String,
        /// How it ended.
        status: ExitStatus,
        /// Its log file.
        log: PathBuf,
        /// The last lines of that log.
        tail: String,
    },
    /// A helper command failed.
    #[error("`{command}` failed with {status}: {output}")]
    Command {
        /// The command line.
        command: String,
        /// How it ended.
        status: ExitStatus,
        /// What it printed.
        output: String,
    },
    /// A request to a service failed.
    #[error("{what}: {source}")]
    Http {
        /// The request.
        what: String,
        /// The failure.
        source: reqwest::Error,
    },
    /// An AWS call (to the emulator) failed.
    #[error("AWS {operation} failed: {detail}")]
    Aws {
        /// The API operation.
        operation: &'static str,
        /// The SDK's error with its causes.
        detail: String,
    },
    /// A Kafka client call failed.
    #[error("Kafka: {what}: {source}")]
    Kafka {
        /// What was being done.
        what: String,
        /// The failure.
        source: rdkafka::error::KafkaError,
    },
    /// A step of a scenario did not turn out as it must.
    #[error("{0}")]
    Scenario(String),
    /// The emulator's CA certificate cannot be used.
    #[error(
        "the AWS emulator's CA certificate {} is unusable ({detail}); reinstall it with \
         `rm -rf` of its folder and `scripts/tools.sh install moto`",
        ca_file.display()
    )]
    Tls {
        /// The certificate file.
        ca_file: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The warehouse's views could not be evaluated locally.
    #[error("the local warehouse: {0}")]
    Warehouse(#[from] crate::warehouse::WarehouseError),
    /// Local file trouble (temporary folders, logs).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The failure.
        source: std::io::Error,
    },
}

impl HarnessError {
    /// Maps an SDK error of `operation`, keeping its causes in the message.
    pub(crate) fn aws<E: std::error::Error + 'static>(operation: &'static str) -> impl FnOnce(E) -> Self {
        move |error| HarnessError::Aws {
            operation,
            detail: aws_smithy_types::error::display::DisplayErrorContext(&error).to_string(),
        }
    }
}
