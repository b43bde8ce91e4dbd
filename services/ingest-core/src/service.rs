//! What both services' binaries share: the pipeline settings of DESIGN.md's
//! "Service configuration" table, logging, the shutdown signal and the
//! metrics text.

use std::collections::BTreeSet;

use crate::contract::env;
use crate::store::Targets;
use crate::{DecodeLimits, ImageRules, ImageType, StripMetadata};

/// The settings both services take, flattened into each one's flags.
#[derive(Clone, Debug, clap::Args)]
pub struct PipelineArgs {
    /// S3 bucket of the pipeline.
    #[arg(long, env = env::BUCKET)]
    pub bucket: String,
    /// DynamoDB table of the pipeline.
    #[arg(long, env = env::TABLE)]
    pub table: String,
    /// Firehose delivery stream of the pipeline.
    #[arg(long, env = env::DELIVERY_STREAM)]
    pub delivery_stream: String,
    /// Days an image is kept (sets `expiresAt`).
    #[arg(long, env = env::RETENTION_DAYS, default_value_t = 7)]
    pub retention_days: u32,
    /// Largest image accepted, in bytes.
    #[arg(long, env = env::MAX_IMAGE_BYTES, default_value_t = 20 * 1024 * 1024)]
    pub max_image_bytes: u64,
    /// Accepted image types, comma-separated MIME types.
    #[arg(
        long,
        env = env::ALLOWED_CONTENT_TYPES,
        value_delimiter = ',',
        default_value = "image/jpeg,image/png,image/webp,image/gif"
    )]
    pub allowed_content_types: Vec<ImageType>,
    /// Most pixels an image may hold, width × height × frames; larger
    /// images are refused before they are decoded.
    #[arg(long, env = env::MAX_IMAGE_PIXELS, default_value_t = DecodeLimits::DEFAULT_MAX_PIXELS)]
    pub max_image_pixels: u64,
    /// Most frames an animated GIF, PNG or WebP may hold.
    #[arg(long, env = env::MAX_IMAGE_FRAMES, default_value_t = DecodeLimits::DEFAULT_MAX_FRAMES)]
    pub max_image_frames: u32,
    /// Metadata removed before an image is stored, without re-encoding:
    /// `all` but the orientation and colour profile, `location` (GPS, XMP,
    /// IPTC) or `none`.
    #[arg(long, env = env::STRIP_METADATA, value_enum, default_value_t = StripMetadata::All)]
    pub strip_metadata: StripMetadata,
}

impl PipelineArgs {
    pub fn targets(&self) -> Targets {
        Targets {
            bucket: self.bucket.clone(),
            table: self.table.clone(),
            delivery_stream: self.delivery_stream.clone(),
            retention_days: self.retention_days,
        }
    }

    pub fn image_rules(&self) -> ImageRules {
        ImageRules {
            limits: DecodeLimits {
                max_pixels: self.max_image_pixels,
                max_frames: self.max_image_frames,
            },
            strip: self.strip_metadata,
        }
    }

    pub fn allowed(&self) -> BTreeSet<ImageType> {
        self.allowed_content_types.iter().copied().collect()
    }
}

/// Logs to stdout, filtered by `RUST_LOG` (default `info`), as JSON lines
/// when asked.
pub fn init_logging(json: bool) {
    use std::io::IsTerminal;
    // Colour codes only where a person reads them: never into a pipe, a file
    // or a log collector.
    let logs = tracing_subscriber::fmt()
        .with_ansi(!json && std::io::stdout().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        );
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
}

/// The process's exit code for how `service` ended. A failure is printed
/// once: as a log line when logging is set up, else on standard error.
pub fn exit_code(service: &str, result: Result<(), Box<dyn std::error::Error>>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            if tracing::dispatcher::has_been_set() {
                tracing::error!("{err}");
            } else {
                eprintln!("{service}: {err}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// Completes on SIGTERM (Kubernetes, Docker) or Ctrl-C.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing the work in flight");
}

/// The Prometheus text exposition of `registry`.
pub fn metrics_text(registry: &prometheus_client::registry::Registry) -> String {
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    text
}
