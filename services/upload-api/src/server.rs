//! The accept loop: the router on hyper connections with a deadline for
//! request headers and a bounded drain on shutdown. `axum::serve` sets no
//! header deadline, so a client could hold a connection (and a file
//! descriptor) forever by never finishing its headers.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// Per-connection read buffer. hyper's default (~400 KiB) is reached by
/// every connection of a large upload at once; 64 uploads in flight then
/// hold 25 MiB in buffers alone, which this keeps to 4 MiB.
const READ_BUFFER_BYTES: usize = 64 * 1024;

#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    /// Longest time a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// Longest time requests in flight get to finish after shutdown starts.
    pub drain_timeout: Duration,
}

/// Serves `router` until `shutdown` completes, then stops accepting and
/// lets requests in flight finish for up to `drain_timeout`. Returns whether
/// every connection finished in time.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> bool {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(READ_BUFFER_BYTES);
    let connections = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of file descriptors, typically: back off, keep serving.
                    tracing::warn!(%err, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(err, "connection closed with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = connections.shutdown() => true,
        () = tokio::time::sleep(limits.drain_timeout) => false,
    }
}
