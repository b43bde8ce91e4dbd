//! Flags with environment fallbacks, named as DESIGN.md's "Service
//! configuration" table names them. AWS comes only from the SDK's own
//! configuration (`AWS_REGION`, `AWS_ENDPOINT_URL`, credentials chain).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use ingest_core::contract::env::upload_api;
use ingest_core::service::PipelineArgs;

use crate::limits::KeyLimitSettings;

#[derive(Clone, Debug, Parser)]
#[command(
    name = "upload-api",
    version,
    about = "Takes images in over HTTP and stores them in the pipeline"
)]
pub struct Config {
    /// Address to serve the API, health and metrics on.
    #[arg(long, env = upload_api::LISTEN, default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// File of API keys, one a line (a mounted Secret); re-read when it changes.
    #[arg(long, env = upload_api::API_KEYS_FILE, required_unless_present = "no_auth")]
    pub api_keys_file: Option<PathBuf>,
    /// Accept requests without an API key. Only for local experiments.
    #[arg(long, conflicts_with = "api_keys_file")]
    pub no_auth: bool,
    /// Uploads received at once; more get 503 with Retry-After.
    #[arg(long, env = upload_api::MAX_CONCURRENT_UPLOADS, default_value_t = 64)]
    pub max_concurrent_uploads: usize,
    /// Directory images are written to while they arrive once they are
    /// larger than 256 KiB and `spool-memory-bytes` is taken by others.
    /// Needs room for `max-concurrent-uploads` × `max-image-bytes`.
    #[arg(long, env = upload_api::SPOOL_DIR, default_value_os_t = std::env::temp_dir())]
    pub spool_dir: PathBuf,
    /// Memory the images arriving at once share, in bytes: an image that
    /// finds room is held in memory until it is stored (no file written and
    /// read back twice), one that does not is spooled to `spool-dir`.
    #[arg(long, env = upload_api::SPOOL_MEMORY_BYTES, default_value_t = ingest_core::spool_memory::SPOOL_MEMORY_BYTES)]
    pub spool_memory_bytes: u64,
    /// Longest pause while a request body arrives, in seconds (an idle
    /// timeout, as nginx's `client_body_timeout`); then 408.
    #[arg(long, env = upload_api::BODY_TIMEOUT_SECONDS, default_value_t = 60)]
    pub body_timeout_seconds: u64,
    /// Longest time to receive a request's headers, in seconds.
    #[arg(long, env = upload_api::HEADER_TIMEOUT_SECONDS, default_value_t = 10)]
    pub header_timeout_seconds: u64,
    /// Longest time uploads in flight get to finish after SIGTERM, in
    /// seconds; keep it below the pod's termination grace period (30 s).
    #[arg(long, env = upload_api::DRAIN_TIMEOUT_SECONDS, default_value_t = 25)]
    pub drain_timeout_seconds: u64,
    /// Log as JSON lines.
    #[arg(long, env = upload_api::LOG_JSON)]
    pub log_json: bool,
    /// Threads that receive uploads, hash them and send them to AWS; the
    /// checks (decoding) run on threads of their own beside them. Half the
    /// CPUs the process may use by default, at least one.
    #[arg(long, env = upload_api::WORKER_THREADS, value_parser = clap::value_parser!(u16).range(1..))]
    pub worker_threads: Option<u16>,
    /// Requests a second each API key may make, with a second's worth in
    /// reserve; beyond it 429 with Retry-After. Unlimited when unset.
    #[arg(long, env = upload_api::KEY_REQUESTS_PER_SECOND, value_parser = positive)]
    pub key_requests_per_second: Option<f64>,
    /// Upload bytes a second each API key may send: an upload is admitted
    /// while the key is not in debt and charged what it sent; beyond it 429
    /// with Retry-After. Unlimited when unset.
    #[arg(long, env = upload_api::KEY_BYTES_PER_SECOND, value_parser = positive)]
    pub key_bytes_per_second: Option<f64>,
}

impl Config {
    /// The worker threads of the async runtime: as set, or half the CPUs
    /// the process may use (its cgroup's quota included), at least one.
    /// An upload's own work is in two halves of about the same cost: the
    /// bytes received, hashed and sent on the workers, the checks on the
    /// blocking threads. More workers than that sit idle between an
    /// upload's chunks and are woken for them: on two cores, a second
    /// worker took a tenth to a third more CPU for 16 MiB uploads one at a
    /// time, and saved none at 16 or 64 in flight (docs/benchmarks.md).
    pub fn worker_threads(&self) -> usize {
        self.worker_threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
            usize::from,
        )
    }

    pub fn key_limits(&self) -> KeyLimitSettings {
        KeyLimitSettings {
            requests_per_second: self.key_requests_per_second,
            bytes_per_second: self.key_bytes_per_second,
        }
    }
}

fn positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 => Ok(value),
        _ => Err(format!("{text:?} is not a positive number")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use ingest_core::ImageType;

    use super::*;

    /// The required flags, and `--no-auth` last.
    const NO_AUTH: [&str; 8] = [
        "upload-api",
        "--bucket",
        "b",
        "--table",
        "t",
        "--delivery-stream",
        "s",
        "--no-auth",
    ];

    #[test]
    fn settings_come_from_the_documented_flags_with_defaults() {
        let required = &NO_AUTH[..NO_AUTH.len() - 1];
        let flags = [
            "--api-keys-file",
            "/run/secrets/keys",
            "--allowed-content-types",
            "image/png,image/gif",
        ];
        let config = Config::try_parse_from([required, &flags].concat()).unwrap();
        assert_eq!(config.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(config.pipeline.retention_days, 7);
        assert_eq!(config.pipeline.max_image_bytes, 20_971_520);
        assert_eq!(
            config.pipeline.allowed(),
            BTreeSet::from([ImageType::Png, ImageType::Gif])
        );
        assert_eq!(config.key_limits(), KeyLimitSettings::default(), "unlimited");
    }

    #[test]
    fn per_key_limits_are_positive_numbers() {
        let limited = Config::try_parse_from(
            [
                &NO_AUTH[..],
                &[
                    "--key-requests-per-second",
                    "2.5",
                    "--key-bytes-per-second",
                    "1048576",
                ],
            ]
            .concat(),
        )
        .unwrap();
        assert_eq!(
            limited.key_limits(),
            KeyLimitSettings {
                requests_per_second: Some(2.5),
                bytes_per_second: Some(1_048_576.0),
            }
        );
        for wrong in ["0", "-1", "NaN", "fast"] {
            let flag = format!("--key-requests-per-second={wrong}");
            let err = Config::try_parse_from([&NO_AUTH[..], &[flag.as_str()]].concat()).unwrap_err();
            assert!(err.to_string().contains("not a positive number"), "{err}");
        }
    }

    #[test]
    fn worker_threads_are_half_the_cpus_unless_set_and_never_none() {
        let cpus = std::thread::available_parallelism().unwrap().get();
        let default = Config::try_parse_from(NO_AUTH).unwrap();
        assert_eq!(default.worker_threads(), (cpus / 2).max(1), "{cpus} CPUs");
        let set = Config::try_parse_from([&NO_AUTH[..], &["--worker-threads", "3"]].concat()).unwrap();
        assert_eq!(set.worker_threads(), 3);
        let err = Config::try_parse_from([&NO_AUTH[..], &["--worker-threads", "0"]].concat()).unwrap_err();
        assert!(err.to_string().contains("--worker-threads"), "{err}");
    }

    #[test]
    fn authentication_is_off_only_when_asked_for() {
        let base = &NO_AUTH[..NO_AUTH.len() - 1];
        let missing = Config::try_parse_from(base).unwrap_err();
        assert!(missing.to_string().contains("--api-keys-file"), "{missing}");
        let open = Config::try_parse_from([base, &["--no-auth"]].concat()).unwrap();
        assert!(open.no_auth && open.api_keys_file.is_none());
    }

    #[test]
    fn the_flags_read_exactly_the_contract_s_environment() {
        use clap::CommandFactory;
        let read = ingest_core::contract::env::read_by(&Config::command());
        let contract: BTreeSet<String> = [ingest_core::contract::env::ALL, upload_api::ALL]
            .concat()
            .into_iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(read, contract);
    }
}
