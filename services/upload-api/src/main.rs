//! upload-api: serves the pipeline's upload API until SIGTERM or Ctrl-C, then
//! stops taking connections and finishes the uploads in flight.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use ingest_core::store::{Store, Targets};
use tower_http::timeout::RequestBodyTimeoutLayer;
use upload_api::auth::{ApiKeys, Auth};
use upload_api::config::Config;
use upload_api::server::{ServerLimits, serve};
use upload_api::{AppState, app};

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    let logs = tracing_subscriber::fmt().with_env_filter(
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
    );
    if config.log_json {
        logs.json().init();
    } else {
        logs.init();
    }
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            eprintln!("upload-api: {err}");
            ExitCode::FAILURE
        }
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
    let store = Store::new(
        &aws,
        Targets {
            bucket: config.bucket.clone(),
            table: config.table.clone(),
            delivery_stream: config.delivery_stream.clone(),
            retention_days: config.retention_days,
        },
    );
    let state = Arc::new(AppState::new(
        store,
        auth,
        config.max_image_bytes,
        config.allowed(),
        config.spool_dir.clone(),
        config.max_concurrent_uploads,
    ));
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

async fn shutdown_signal() {
    wait_for_signal().await;
    tracing::info!("shutting down: no new connections, finishing requests in flight");
}

async fn wait_for_signal() {
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
}
