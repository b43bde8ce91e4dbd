//! The upload-api binary as it runs in production, configured by flags and
//! the SDK's environment: slow clients are cut off, and SIGTERM lets the
//! upload in flight finish before the process exits.

use std::net::SocketAddr;
use std::process::ExitStatus;
use std::time::Duration;

use futures::SinkExt;
use ingest_core::ImageType;
use ingest_testing::{PipelineStorage, free_loopback_address, http_client, image, wait_until_healthy};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Child;

struct UploadApi {
    child: Child,
    address: SocketAddr,
}

impl UploadApi {
    async fn start(storage: &PipelineStorage) -> Self {
        let address = free_loopback_address();
        let child = storage
            .service_command(env!("CARGO_BIN_EXE_upload-api"))
            .args(["--listen", &address.to_string()])
            .args([
                "--no-auth",
                "--header-timeout-seconds",
                "1",
                "--body-timeout-seconds",
                "1",
            ])
            .spawn()
            .expect("the upload-api binary starts");
        wait_until_healthy(address).await;
        Self { child, address }
    }

    fn terminate(&self) {
        let pid = self.child.id().expect("running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    async fn exit_status(&mut self) -> ExitStatus {
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("upload-api exits after SIGTERM")
            .unwrap()
    }
}

/// Reads until the server closes the connection; what it sent, if anything.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("the server closes a stalled connection")
        .ok();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn stalled_clients_are_cut_off_and_sigterm_finishes_the_upload_in_flight() {
    let storage = PipelineStorage::start(7).await;
    let mut service = UploadApi::start(&storage).await;

    // Headers that never finish: the connection is closed after the header
    // timeout, without a request reaching the service.
    let mut stalled = TcpStream::connect(service.address).await.unwrap();
    stalled
        .write_all(b"POST /v1/images HTTP/1.1\r\nHost: test\r\n")
        .await
        .unwrap();
    until_closed(&mut stalled).await;

    // A body that stops arriving: 408 with the documented error body.
    let mut stalled = TcpStream::connect(service.address).await.unwrap();
    let png = image(ImageType::Png, 1, 100_000);
    let head = format!(
        "POST /v1/images HTTP/1.1\r\nHost: test\r\nContent-Type: image/png\r\nContent-Length: {}\r\n\r\n",
        png.len()
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    stalled.write_all(&png[..1000]).await.unwrap();
    let answer = until_closed(&mut stalled).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
    assert_eq!(storage.written().await, (0, 0, 0));

    // An upload whose body is still arriving when SIGTERM comes.
    let (mut body, chunks) = futures::channel::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let upload = tokio::spawn(
        http_client()
            .post(format!("http://{}/v1/images", service.address))
            .header("content-type", "image/png")
            .body(reqwest::Body::wrap_stream(chunks))
            .send(),
    );
    body.send(Ok(png[..50_000].to_vec())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    service.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        TcpStream::connect(service.address).await.is_err(),
        "no new connections once shutdown started"
    );
    body.send(Ok(png[50_000..].to_vec())).await.unwrap();
    drop(body);
    let response = upload.await.unwrap().expect("the upload in flight is answered");
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    let item: Value = response.json().await.unwrap();
    assert_eq!(item["bytes"], png.len());
    assert!(service.exit_status().await.success());
    assert_eq!(storage.written().await, (1, 1, 1));
}
