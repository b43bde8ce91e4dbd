//! upload-api: serves the pipeline's upload API until SIGTERM or Ctrl-C, then
//! stops taking connections and finishes the uploads in flight.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use ingest_core::service::{exit_code, init_logging, shutdown_signal};
use ingest_core::store::Store;
use tower_http::timeout::RequestBodyTimeoutLayer;
use upload_api::auth::{ApiKeys, Auth};
use upload_api::config::Config;
use upload_api::server::{ServerLimits, serve};
use upload_api::{AppState, app};

fn main() -> ExitCode {
    let config = Config::parse();
    init_logging(config.log_json);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads())
        .enable_all()
        .build();
    match runtime {
        Ok(runtime) => exit_code("upload-api", runtime.block_on(run(config))),
        Err(err) => exit_code("upload-api", Err(err.into())),
    }
}

async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let auth = match &config.api_keys_file {
        Some(path) => {
            let keys = ApiKeys::load(path)?;
            keys.watch();
            Auth::Keys(keys)
        }
        None => {
            tracing::warn!("--no-auth: every request is accepted without an API key");
            Auth::Disabled
        }
    };
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let store = Store::new(&aws, config.pipeline.targets());
    let state = Arc::new(
        AppState::new(
            store,
            auth,
            config.pipeline.max_image_bytes,
            config.pipeline.allowed(),
            config.pipeline.image_rules(),
            config.spool_dir.clone(),
            config.max_concurrent_uploads,
        )
        .with_key_limits(config.key_limits())
        .with_spool_memory(config.spool_memory_bytes),
    );
    let router = app(state).layer(RequestBodyTimeoutLayer::new(Duration::from_secs(
        config.body_timeout_seconds,
    )));
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    tracing::info!(address = %listener.local_addr()?, "upload-api listening");
    let limits = ServerLimits {
        header_read_timeout: Duration::from_secs(config.header_timeout_seconds),
        drain_timeout: Duration::from_secs(config.drain_timeout_seconds),
    };
    if serve(listener, router, limits, shutdown_signal()).await {
        tracing::info!("upload-api stopped; requests in flight were finished");
    } else {
        tracing::warn!(
            drain_timeout_seconds = config.drain_timeout_seconds,
            "upload-api stopped with requests still in flight"
        );
    }
    Ok(())
}
