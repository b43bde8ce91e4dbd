//! upload-api over real HTTP, with the bucket, table and stream the
//! operator's engine makes in the AWS emulator: what a client sees, and what
//! lands (or does not land) in S3, DynamoDB and Firehose.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ingest_core::sha256_hex;
use ingest_core::store::Store;
use ingest_core::{ImageRules, ImageType, SpoolMemory};
use ingest_testing::image_metadata::{LATITUDE_SECONDS, LONGITUDE_SECONDS, rational_bytes};
use ingest_testing::{Metadata, Picture, PipelineStorage, animation, http_client, image};
use serde_json::Value;
use upload_api::auth::{ApiKeys, Auth};
use upload_api::limits::KeyLimitSettings;
use upload_api::{AppState, app};

const KEY: &str = "test-key-0123456789";
const MAX_IMAGE_BYTES: u64 = 64 * 1024;

struct Service {
    storage: PipelineStorage,
    _keys: tempfile::TempDir,
    url: String,
    http: reqwest::Client,
}

async fn serve(store: Store, keys: ApiKeys) -> String {
    serve_limited(store, keys, KeyLimitSettings::default()).await
}

async fn serve_limited(store: Store, keys: ApiKeys, limits: KeyLimitSettings) -> String {
    let state = AppState::new(
        store,
        Auth::Keys(keys),
        MAX_IMAGE_BYTES,
        ImageType::ALL.into_iter().collect::<BTreeSet<_>>(),
        ImageRules::default(),
        std::env::temp_dir(),
        8,
    )
    .with_key_limits(limits);
    format!("http://{}", serve_state(state).await)
}

async fn serve_state(state: AppState) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app(Arc::new(state))).await });
    address
}

async fn service() -> Service {
    let storage = PipelineStorage::start(7).await;
    let keys_dir = tempfile::tempdir().unwrap();
    let keys_file = keys_dir.path().join("keys");
    std::fs::write(&keys_file, format!("{KEY}\n")).unwrap();
    let url = serve(
        Store::new(&storage.config, storage.targets.clone()),
        ApiKeys::load(&keys_file).unwrap(),
    )
    .await;
    Service {
        url,
        http: http_client(),
        storage,
        _keys: keys_dir,
    }
}

impl Service {
    fn post(&self) -> reqwest::RequestBuilder {
        self.http.post(format!("{}/v1/images", self.url)).bearer_auth(KEY)
    }
}

fn multipart(field: &str, part_type: &str, content: &[u8]) -> (String, Vec<u8>) {
    let boundary = "imagepipeline-test-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"x\"\r\nContent-Type: {part_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn every_type_uploads_raw_and_multipart_and_the_same_bytes_are_stored_once() {
    let s = service().await;
    let mut ids = Vec::new();
    for (n, image_type) in ImageType::ALL.into_iter().enumerate() {
        let raw = Picture::noise(3, 2, n as u64).encode(image_type);
        let response = s
            .post()
            .header("content-type", image_type.mime_type())
            .body(raw.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "raw {image_type}");
        let item: Value = response.json().await.unwrap();
        assert_eq!(item["contentType"], image_type.mime_type());
        assert_eq!(
            (item["width"].as_u64(), item["height"].as_u64()),
            (Some(3), Some(2))
        );
        assert_eq!(item["source"], "api");
        assert!(
            item["phash"]
                .as_str()
                .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit())),
            "a perceptual hash: {item}"
        );
        let ingested: jiff::Timestamp = item["ingestedAt"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            item["expiresAt"].as_i64(),
            Some(ingested.as_second() + 7 * 86_400)
        );
        ids.push(item["id"].as_str().unwrap().to_owned());

        let (content_type, body) = multipart(
            "file",
            image_type.mime_type(),
            &image(image_type, 100 + n as u64, 100),
        );
        let response = s
            .post()
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "multipart {image_type}");

        // The object is in S3 with its type and SHA-256.
        let object = s.storage.object(item["key"].as_str().unwrap()).await;
        assert_eq!(object.content_type.as_deref(), Some(image_type.mime_type()));
        assert_eq!(object.sha256.as_deref(), item["sha256"].as_str());
    }
    assert_eq!(s.storage.written().await, (8, 8, 8));

    // The same bytes again: 200 with the same item, nothing new written.
    let response = s
        .post()
        .header("content-type", "image/png")
        .body(Picture::noise(3, 2, 1).encode(ImageType::Png))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let again: Value = response.json().await.unwrap();
    assert_eq!(again["id"], ids[1]);
    assert_eq!(s.storage.written().await, (8, 8, 8));

    // Metadata and content by id.
    let response = s
        .http
        .get(format!("{}/v1/images/{}", s.url, ids[0]))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content = s
        .http
        .get(format!("{}/v1/images/{}/content", s.url, ids[0]))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(content.headers()["content-type"], "image/jpeg");
    assert_eq!(
        content.bytes().await.unwrap().as_ref(),
        Picture::noise(3, 2, 0).encode(ImageType::Jpeg).as_slice()
    );

    let metrics = s
        .http
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"upload_api_requests_total{route="/v1/images",status="201"} 8"#),
        "{metrics}"
    );
    // The chart's alerts and dashboards read only metrics served here.
    ingest_testing::monitoring::assert_monitoring_reads_only_exposed(&metrics, "upload_api_");
    assert_eq!(
        s.http
            .get(format!("{}/readyz", s.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn a_photo_is_stored_without_its_location_as_read_back_from_s3() {
    let s = service().await;
    let contains = |bytes: &[u8], needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    for (n, image_type) in [ImageType::Jpeg, ImageType::Png, ImageType::Webp]
        .into_iter()
        .enumerate()
    {
        let picture = Picture::scene(120, 90, n as u32);
        let sent = picture.encode_with(image_type, &Metadata::from_a_phone(6));
        let response = s
            .post()
            .header("content-type", image_type.mime_type())
            .body(sent.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{image_type}");
        let item: Value = response.json().await.unwrap();
        let object = s.storage.object(item["key"].as_str().unwrap()).await;
        let exif = exif::Reader::new()
            .read_from_container(&mut std::io::Cursor::new(&object.bytes))
            .unwrap_or_else(|err| panic!("{image_type}: the orientation stays: {err}"));
        let tags: Vec<exif::Tag> = exif.fields().map(|f| f.tag).collect();
        assert_eq!(tags, [exif::Tag::Orientation], "{image_type}");
        for seconds in [LATITUDE_SECONDS, LONGITUDE_SECONDS] {
            assert!(!contains(&object.bytes, &rational_bytes(seconds)), "{image_type}");
        }
        assert!(!contains(&object.bytes, b"xpacket"), "{image_type}: no XMP");
        assert_eq!(item["sha256"], sha256_hex(&object.bytes), "{image_type}");
        assert_eq!(object.sha256.as_deref(), item["sha256"].as_str());
        assert_eq!(item["originalSha256"], sha256_hex(&sent), "{image_type}");
        assert_eq!(item["bytes"], object.bytes.len());
        assert!(object.bytes.len() < sent.len());

        // The same photo from another phone is the same stored image.
        let other_phone = Metadata {
            comment: Some("sent again".to_owned()),
            ..Metadata::from_a_phone(6)
        };
        let response = s
            .post()
            .header("content-type", image_type.mime_type())
            .body(picture.encode_with(image_type, &other_phone))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{image_type}");
        let again: Value = response.json().await.unwrap();
        assert_eq!(again["id"], item["id"]);
    }
    let events = s.storage.events().await;
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e["originalSha256"] != e["sha256"]));
}

#[tokio::test]
async fn each_key_is_known_by_its_name_and_held_to_its_own_limits() {
    const MOBILE: &str = "mobile-key-0123456789";
    const BATCH: &str = "batch-key-0123456789";
    let storage = PipelineStorage::start(7).await;
    let keys_dir = tempfile::tempdir().unwrap();
    let keys_file = keys_dir.path().join("keys");
    std::fs::write(
        &keys_file,
        format!("mobile-app:{MOBILE}\nnightly-batch:{BATCH}\n"),
    )
    .unwrap();
    let url = serve_limited(
        Store::new(&storage.config, storage.targets.clone()),
        ApiKeys::load(&keys_file).unwrap(),
        KeyLimitSettings {
            requests_per_second: Some(3.0),
            bytes_per_second: Some(20_000.0),
        },
    )
    .await;
    let http = http_client();
    let upload = |key: &'static str, tag: u64, len: usize| {
        http.post(format!("{url}/v1/images"))
            .bearer_auth(key)
            .header("content-type", "image/png")
            .body(image(ImageType::Png, tag, len))
            .send()
    };

    // A 50 kB image is over a second's worth of bytes and passes; the key is
    // then in debt for about 1.5 s, the other key is not.
    let first = upload(MOBILE, 1, 50_000).await.unwrap();
    assert_eq!(first.status(), 201);
    let item: Value = first.json().await.unwrap();
    assert_eq!(item["uploadedBy"], "mobile-app");
    let refused = upload(MOBILE, 2, 1000).await.unwrap();
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["code"], "rate_limited");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("mobile-app") && message.contains("bytes"),
        "{message}"
    );
    assert!(!message.contains(MOBILE), "never the key itself");
    let other = upload(BATCH, 3, 1000).await.unwrap();
    assert_eq!(other.status(), 201);
    let other: Value = other.json().await.unwrap();
    assert_eq!(other["uploadedBy"], "nightly-batch");

    // Requests: three a second for each key, reads included.
    let read = |key: &'static str| {
        http.get(format!("{url}/v1/images/{}", item["id"].as_str().unwrap()))
            .bearer_auth(key)
            .send()
    };
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(read(BATCH).await.unwrap().status().as_u16());
    }
    // Two tokens were left after the upload, plus what refilled meanwhile.
    let refused = statuses.iter().filter(|&&s| s == 429).count();
    assert!(statuses[..2] == [200, 200] && refused >= 2, "{statuses:?}");
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    assert_eq!(
        upload(MOBILE, 2, 1000).await.unwrap().status(),
        201,
        "the debt is repaid"
    );

    // The item, the event and the metrics carry the name, never the key.
    let events = storage.events().await;
    let by: BTreeSet<&str> = events.iter().filter_map(|e| e["uploadedBy"].as_str()).collect();
    assert_eq!(by, BTreeSet::from(["mobile-app", "nightly-batch"]));
    let metrics = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"upload_api_key_requests_total{key="mobile-app",status="201"} 2"#,
        &format!(r#"upload_api_key_requests_total{{key="nightly-batch",status="429"}} {refused}"#),
        r#"upload_api_rate_limited_total{key="mobile-app",limit="bytes"} 1"#,
        &format!(r#"upload_api_rate_limited_total{{key="nightly-batch",limit="requests"}} {refused}"#),
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert!(metrics.contains(r#"upload_api_key_received_bytes_total{key="mobile-app"}"#));
    assert!(!metrics.contains(MOBILE) && !metrics.contains(BATCH));
}

#[tokio::test]
async fn bad_input_gets_its_status_and_error_code_and_writes_nothing() {
    let s = service().await;
    let png = image(ImageType::Png, 7, 100);
    let too_large = [image(ImageType::Png, 8, 100), vec![0; MAX_IMAGE_BYTES as usize]].concat();
    let (multipart_type, mut broken) = multipart("file", "image/png", &png);
    broken.truncate(broken.len() - 10);
    let (no_file_type, no_file) = multipart("picture", "image/png", &png);
    let mut bomb = png.clone();
    bomb[16..24].copy_from_slice(&[0, 0, 0x9C, 0x40, 0, 0, 0x9C, 0x40]);
    let flip_book: Vec<Picture> = (0..1001).map(|n| Picture::noise(2, 2, n)).collect();

    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "empty body",
            s.post().header("content-type", "image/png"),
            400,
            "bad_request",
        ),
        (
            "not an image",
            s.post().header("content-type", "image/png").body("hello, world"),
            415,
            "unsupported_media_type",
        ),
        (
            "png declared as jpeg",
            s.post().header("content-type", "image/jpeg").body(png.clone()),
            415,
            "unsupported_media_type",
        ),
        (
            "truncated header",
            s.post()
                .header("content-type", "image/png")
                .body(png[..12].to_vec()),
            415,
            "unsupported_media_type",
        ),
        (
            "a script behind a GIF signature",
            s.post()
                .header("content-type", "image/gif")
                .body("GIF89a<script>alert(1)</script>"),
            413,
            "too_many_pixels",
        ),
        (
            "a truncated image",
            s.post()
                .header("content-type", "image/png")
                .body(png[..png.len() - 20].to_vec()),
            415,
            "not_an_image",
        ),
        (
            "an image with a zip appended",
            s.post()
                .header("content-type", "image/png")
                .body([png.as_slice(), b"PK\x03\x04"].concat()),
            415,
            "not_an_image",
        ),
        (
            "a header claiming 40000×40000 pixels",
            s.post().header("content-type", "image/png").body(bomb),
            413,
            "too_many_pixels",
        ),
        (
            "an animation of 1001 frames",
            s.post()
                .header("content-type", "image/gif")
                .body(animation(ImageType::Gif, &flip_book)),
            413,
            "too_many_frames",
        ),
        (
            "no content type",
            s.post().body(png.clone()),
            415,
            "unsupported_media_type",
        ),
        (
            "over the limit with Content-Length",
            s.post()
                .header("content-type", "image/png")
                .body(too_large.clone()),
            413,
            "too_large",
        ),
        (
            "over the limit without Content-Length",
            s.post()
                .header("content-type", "image/png")
                .body(reqwest::Body::wrap_stream(futures::stream::iter(
                    too_large
                        .chunks(4096)
                        .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
                        .collect::<Vec<_>>(),
                ))),
            413,
            "too_large",
        ),
        (
            "malformed multipart",
            s.post().header("content-type", multipart_type).body(broken),
            400,
            "bad_request",
        ),
        (
            "multipart without a file field",
            s.post().header("content-type", no_file_type).body(no_file),
            400,
            "bad_request",
        ),
        (
            "missing key",
            s.http
                .post(format!("{}/v1/images", s.url))
                .header("content-type", "image/png")
                .body(png.clone()),
            401,
            "unauthorized",
        ),
        (
            "wrong key",
            s.http
                .post(format!("{}/v1/images", s.url))
                .bearer_auth("not-the-key")
                .header("content-type", "image/png")
                .body(png.clone()),
            401,
            "unauthorized",
        ),
        (
            "unknown id",
            s.http
                .get(format!(
                    "{}/v1/images/0196a2b4-0000-7000-8000-000000000000",
                    s.url
                ))
                .bearer_auth(KEY),
            404,
            "not_found",
        ),
        (
            "not an id",
            s.http.get(format!("{}/v1/images/nope", s.url)).bearer_auth(KEY),
            404,
            "not_found",
        ),
    ];
    for (case, request, status, code) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{case}");
        let body: Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{case}: a JSON error: {e}"));
        assert_eq!(body["error"]["code"], code, "{case}: {body}");
        assert!(
            body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{case}"
        );
    }
    assert_eq!(
        s.storage.written().await,
        (0, 0, 0),
        "nothing reached S3, DynamoDB or Firehose"
    );
}

#[tokio::test]
async fn with_the_backends_down_no_upload_succeeds_and_readyz_fails() {
    let s = service().await;
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .endpoint_url("http://127.0.0.1:9")
        .credentials_provider(aws_sdk_s3::config::Credentials::for_tests())
        .load()
        .await;
    let keys = s._keys.path().join("keys");
    let url = serve(
        Store::new(&config, s.storage.targets.clone()),
        ApiKeys::load(&keys).unwrap(),
    )
    .await;
    let response = s
        .http
        .post(format!("{url}/v1/images"))
        .bearer_auth(KEY)
        .header("content-type", "image/gif")
        .body(image(ImageType::Gif, 1, 100))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_server_error(), "{}", response.status());
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["code"].as_str().unwrap().starts_with("backend"),
        "{body}"
    );
    assert_eq!(
        s.http.get(format!("{url}/readyz")).send().await.unwrap().status(),
        503
    );
    assert_eq!(
        s.http
            .get(format!("{url}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(s.storage.written().await, (0, 0, 0));
}

#[tokio::test]
async fn an_image_is_held_in_memory_while_the_spool_memory_lasts_and_spooled_when_it_is_taken() {
    const MIB: u64 = 1024 * 1024;
    let storage = PipelineStorage::start(7).await;
    let spool_dir = tempfile::tempdir().unwrap();
    let http = http_client();
    // The default 64 MiB, then none: every image over 256 KiB goes to disk.
    for (n, spool_memory, spooled) in [(1, 64 * MIB, 0.0), (2, 0, 1.0)] {
        let address = serve_state(
            AppState::new(
                Store::new(&storage.config, storage.targets.clone()),
                Auth::Disabled,
                4 * MIB,
                ImageType::ALL.into_iter().collect::<BTreeSet<_>>(),
                ImageRules::default(),
                spool_dir.path().to_owned(),
                8,
            )
            .with_spool_memory(spool_memory),
        )
        .await;
        let png = image(ImageType::Png, n, MIB as usize);
        let response = http
            .post(format!("http://{address}/v1/images"))
            .header("content-type", "image/png")
            .body(png.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "spool memory {spool_memory}");
        let item: Value = response.json().await.unwrap();
        let object = storage.object(item["key"].as_str().unwrap()).await;
        assert!(object.bytes == png, "the image is stored whole either way");
        let metrics = ingest_testing::metrics_text(address).await;
        assert_eq!(
            ingest_testing::metric(&metrics, "upload_api_spooled_uploads_total"),
            spooled,
            "spool memory {spool_memory}: {metrics}"
        );
        assert_eq!(
            std::fs::read_dir(spool_dir.path()).unwrap().count(),
            0,
            "nothing is left in the spool directory"
        );
    }
}

/// A raw upload whose body stops after `sent` bytes until the test sends
/// the rest: a slow client holding what its declared length reserved.
struct StalledUpload {
    socket: tokio::net::TcpStream,
    rest: Vec<u8>,
}

impl StalledUpload {
    async fn start(address: std::net::SocketAddr, png: &[u8], sent: usize) -> Self {
        use tokio::io::AsyncWriteExt;
        let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
        let head = format!(
            "POST /v1/images HTTP/1.1\r\nhost: {address}\r\ncontent-type: image/png\r\ncontent-length: {}\r\n\r\n",
            png.len()
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        socket.write_all(&png[..sent]).await.unwrap();
        Self {
            socket,
            rest: png[sent..].to_vec(),
        }
    }

    /// Sends the rest and answers the status line.
    async fn finish(mut self) -> String {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        self.socket.write_all(&self.rest).await.unwrap();
        let mut status = String::new();
        BufReader::new(self.socket).read_line(&mut status).await.unwrap();
        status.trim_end().to_owned()
    }
}

#[tokio::test]
async fn a_large_upload_waits_for_memory_that_uploads_return_but_not_for_a_stalled_client() {
    const MIB: usize = 1024 * 1024;
    let storage = PipelineStorage::start(7).await;
    let spool_dir = tempfile::tempdir().unwrap();
    let http = http_client();
    // Room for one image of 1.5 MiB (the first 256 KiB of each need none).
    // The patience is long where the first upload finishes (so a slow
    // emulator cannot make the test fail) and short where it stalls.
    for (n, patience, stalls, spooled) in [
        (1, Duration::from_secs(10), false, 0.0),
        (3, Duration::from_millis(300), true, 1.0),
    ] {
        let memory = SpoolMemory::new(2 * MIB as u64).with_patience(patience);
        let mut state = AppState::new(
            Store::new(&storage.config, storage.targets.clone()),
            Auth::Disabled,
            4 * MIB as u64,
            ImageType::ALL.into_iter().collect::<BTreeSet<_>>(),
            ImageRules::default(),
            spool_dir.path().to_owned(),
            8,
        );
        state.spool_memory = memory
            .clone()
            .with_waits_observed_in(state.metrics.spool_memory_wait.clone());
        let address = serve_state(state).await;
        let first = image(ImageType::Png, n, 3 * MIB / 2);
        let stalled = StalledUpload::start(address, &first, MIB).await;
        while memory.available() > MIB as u64 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let second = image(ImageType::Png, n + 1, 3 * MIB / 2);
        let post = http
            .post(format!("http://{address}/v1/images"))
            .header("content-type", "image/png")
            .body(second.clone())
            .send();
        let second_stored = tokio::spawn(post);
        let first_status = if stalls {
            let response = second_stored.await.unwrap().unwrap();
            assert_eq!(response.status(), 201, "stored from the spool directory");
            let item: Value = response.json().await.unwrap();
            assert!(storage.object(item["key"].as_str().unwrap()).await.bytes == second);
            stalled.finish().await
        } else {
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(!second_stored.is_finished(), "the second waits for memory");
            let first_status = stalled.finish().await;
            let response = second_stored.await.unwrap().unwrap();
            assert_eq!(response.status(), 201, "stored from memory");
            let item: Value = response.json().await.unwrap();
            assert!(storage.object(item["key"].as_str().unwrap()).await.bytes == second);
            first_status
        };
        assert_eq!(
            first_status, "HTTP/1.1 201 Created",
            "the stalled client's upload"
        );
        let metrics = ingest_testing::metrics_text(address).await;
        assert_eq!(
            ingest_testing::metric(&metrics, "upload_api_spooled_uploads_total"),
            spooled,
            "stalled: {stalls}"
        );
        assert_eq!(
            ingest_testing::metric(&metrics, "upload_api_spool_memory_wait_seconds_count"),
            1.0,
            "the second upload's wait is counted, the first found memory free: {metrics}"
        );
        assert!(
            ingest_testing::metric(&metrics, "upload_api_spool_memory_wait_seconds_sum") >= 0.3,
            "it waited at least as long as the first held the memory: {metrics}"
        );
        assert_eq!(memory.available(), 2 * MIB as u64, "all memory returned");
    }
}
