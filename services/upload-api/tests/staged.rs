//! Resumable (tus 1.0) and direct (presigned S3 POST) uploads over real
//! HTTP against the emulator: an upload broken off at one instance finishes
//! at another, and what a client sees, what lands under `images/` and what
//! is left under `staging/` (nothing, once an upload ends either way).

use std::sync::Arc;
use std::time::Duration;

use ingest_core::contract::prefix;
use ingest_core::store::Store;
use ingest_core::{ImageRules, ImageType};
use ingest_testing::{Metadata, Picture, PipelineStorage, form_data, http_client, png};
use reqwest::StatusCode;
use serde_json::Value;
use upload_api::auth::{ApiKeys, Auth};
use upload_api::{AppState, app};

const KEY: &str = "mobile:mobile-key-0123456789";
const OTHER_KEY: &str = "web:web-key-0123456789abcdef";
const MAX_IMAGE_BYTES: u64 = 16 * 1024 * 1024;
const TUS: (&str, &str) = ("tus-resumable", "1.0.0");
const PATCH_TYPE: (&str, &str) = ("content-type", "application/offset+octet-stream");

fn bearer(line: &str) -> String {
    format!("Bearer {}", line.split_once(':').unwrap().1)
}

/// One upload-api instance on the storage; several share it as instances
/// behind a load balancer do.
async fn instance(storage: &PipelineStorage, keys_dir: &std::path::Path) -> String {
    let keys_file = keys_dir.join("keys");
    std::fs::write(&keys_file, format!("{KEY}\n{OTHER_KEY}\n")).unwrap();
    let state = Arc::new(AppState::new(
        Store::new(&storage.config, storage.targets.clone()),
        Auth::Keys(ApiKeys::load(&keys_file).unwrap()),
        MAX_IMAGE_BYTES,
        ImageType::ALL.into_iter().collect(),
        ImageRules::default(),
        keys_dir.to_owned(),
        8,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app(state)).await });
    url
}

/// The files the instances spooled and left in `dir`, their keys file aside.
fn spooled_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "keys")
        .collect()
}

/// Creates a resumable upload at `url`; its URL.
async fn create(http: &reqwest::Client, url: &str, length: usize, metadata: Option<&str>) -> String {
    let mut request = http
        .post(format!("{url}/v1/resumable"))
        .header("authorization", bearer(KEY))
        .header(TUS.0, TUS.1)
        .header("upload-length", length.to_string());
    if let Some(metadata) = metadata {
        request = request.header("upload-metadata", metadata);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["tus-resumable"], "1.0.0");
    assert!(response.headers().contains_key("upload-expires"));
    let location = response.headers()["location"].to_str().unwrap();
    assert!(location.starts_with("/v1/resumable/"), "{location}");
    location.to_owned()
}

async fn head(http: &reqwest::Client, url: &str, upload: &str) -> reqwest::Response {
    http.head(format!("{url}{upload}"))
        .header("authorization", bearer(KEY))
        .header(TUS.0, TUS.1)
        .send()
        .await
        .unwrap()
}

fn offset_of(response: &reqwest::Response) -> u64 {
    response.headers()["upload-offset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn patch(
    http: &reqwest::Client,
    url: &str,
    upload: &str,
    offset: usize,
    bytes: &[u8],
) -> reqwest::Response {
    http.patch(format!("{url}{upload}"))
        .header("authorization", bearer(KEY))
        .header(TUS.0, TUS.1)
        .header(PATCH_TYPE.0, PATCH_TYPE.1)
        .header("upload-offset", offset.to_string())
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap()
}

/// Sends a tus PATCH declaring `declared` bytes from offset 0 over a plain
/// socket, writes only `bytes`, closes its sending side as a network that
/// went away would, and returns what the instance answered.
async fn break_off(url: &str, upload: &str, declared: usize, bytes: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = url.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "PATCH {upload} HTTP/1.1\r\nhost: {address}\r\nauthorization: {}\r\n\
         {}: {}\r\n{}: {}\r\nupload-offset: 0\r\ncontent-length: {declared}\r\n\r\n",
        bearer(KEY),
        TUS.0,
        TUS.1,
        PATCH_TYPE.0,
        PATCH_TYPE.1,
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(bytes).await.unwrap();
    socket.shutdown().await.unwrap();
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

async fn error_code(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    (
        status,
        body["error"]["code"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Nothing of any upload is left in the bucket: no staged object, no
/// multipart upload in progress.
async fn assert_nothing_staged(storage: &PipelineStorage) {
    assert_eq!(storage.keys(prefix::STAGING).await, Vec::<String>::new());
    let multipart = storage
        .s3
        .list_multipart_uploads()
        .bucket(&storage.targets.bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(multipart.uploads().len(), 0, "{:?}", multipart.uploads());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_broken_off_at_one_instance_finishes_at_another() {
    let storage = PipelineStorage::start(7).await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        instance(&storage, dir.path()).await,
        instance(&storage, dir.path()).await,
    );
    let http = http_client();
    // Noise does not compress: two parts of 5 MiB and a tail.
    let image = png(2000, 2000, 7);
    assert!(
        image.len() > 10 * 1024 * 1024 && image.len() < MAX_IMAGE_BYTES as usize,
        "{}",
        image.len()
    );
    let upload = create(
        &http,
        &a,
        image.len(),
        Some("filename cGhvdG8ucG5n,filetype aW1hZ2UvcG5n"),
    )
    .await;

    // 6 MiB arrive at A, then the connection breaks: the client's end
    // closes after the bytes it wrote, short of the declared length. (A raw
    // socket, since an HTTP client aborting a body drops what it buffered
    // but had not written yet, and then "what arrived" is not known here.)
    let cut = 6 * 1024 * 1024 + 123;
    let sent = break_off(&a, &upload, image.len(), &image[..cut]).await;
    assert!(
        sent.starts_with("HTTP/1.1 400"),
        "A answers the broken body: {sent}"
    );

    // B knows what arrived: everything A received is kept.
    let mut offset = 0;
    for _ in 0..100 {
        let answer = head(&http, &b, &upload).await;
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(
            answer.headers()["upload-length"],
            image.len().to_string().as_str()
        );
        assert_eq!(answer.headers()["cache-control"], "no-store");
        offset = offset_of(&answer);
        if offset == cut as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(offset, cut as u64, "the bytes received before the break are kept");

    // A resend from the wrong offset is refused with the right one.
    let (status, code) = error_code(patch(&http, &b, &upload, 0, &image[..10]).await).await;
    assert_eq!((status, code.as_str()), (StatusCode::CONFLICT, "offset_mismatch"));

    // The rest goes to B in two requests; the last one stores the image.
    let middle = cut + 4 * 1024 * 1024;
    let answer = patch(&http, &b, &upload, cut, &image[cut..middle]).await;
    assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    assert_eq!(offset_of(&answer), middle as u64);
    assert!(!answer.headers().contains_key("image-id"));
    let answer = patch(&http, &a, &upload, middle, &image[middle..]).await;
    assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    assert_eq!(offset_of(&answer), image.len() as u64);
    let id = answer.headers()["image-id"].to_str().unwrap().to_owned();

    let item: Value = http
        .get(format!("{b}/v1/images/{id}"))
        .header("authorization", bearer(KEY))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(item["uploadedBy"], "mobile");
    assert_eq!(
        (item["width"].as_u64(), item["height"].as_u64()),
        (Some(2000), Some(2000))
    );
    let stored = storage.object(item["key"].as_str().unwrap()).await;
    assert!(stored.bytes == image, "the stored image is the uploaded one");
    assert_nothing_staged(&storage).await;
    assert_eq!(
        spooled_files(dir.path()),
        Vec::<String>::new(),
        "parts and images spooled are removed"
    );

    // The finished upload tells its image, and a repeated last request too.
    let answer = head(&http, &a, &upload).await;
    assert_eq!(offset_of(&answer), image.len() as u64);
    assert_eq!(answer.headers()["image-id"], id.as_str());
    let answer = patch(&http, &b, &upload, image.len(), &[]).await;
    assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    assert_eq!(answer.headers()["image-id"], id.as_str());
    assert_eq!(storage.written().await.0, 1);
}

#[tokio::test]
async fn the_tus_protocol_is_kept_and_a_refused_or_terminated_upload_leaves_nothing() {
    let storage = PipelineStorage::start(7).await;
    let dir = tempfile::tempdir().unwrap();
    let url = instance(&storage, dir.path()).await;
    let http = http_client();

    // Discovery needs no key.
    let options = http
        .request(reqwest::Method::OPTIONS, format!("{url}/v1/resumable"))
        .send()
        .await
        .unwrap();
    assert_eq!(options.status(), StatusCode::NO_CONTENT);
    assert_eq!(options.headers()["tus-version"], "1.0.0");
    assert_eq!(
        options.headers()["tus-max-size"],
        MAX_IMAGE_BYTES.to_string().as_str()
    );
    assert!(
        options.headers()["tus-extension"]
            .to_str()
            .unwrap()
            .contains("termination")
    );

    let creation = |headers: &[(&str, &str)]| {
        let mut request = http
            .post(format!("{url}/v1/resumable"))
            .header("authorization", bearer(KEY));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    for (headers, expected) in [
        (
            vec![("upload-length", "100")],
            (StatusCode::PRECONDITION_FAILED, "unsupported_version"),
        ),
        (vec![TUS], (StatusCode::BAD_REQUEST, "bad_request")),
        (
            vec![TUS, ("upload-length", "-5")],
            (StatusCode::BAD_REQUEST, "bad_request"),
        ),
        (
            vec![TUS, ("upload-length", "0")],
            (StatusCode::BAD_REQUEST, "bad_request"),
        ),
        (
            vec![TUS, ("upload-defer-length", "1")],
            (StatusCode::BAD_REQUEST, "bad_request"),
        ),
        (
            vec![TUS, ("upload-length", "16777217")],
            (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        ),
        (
            vec![TUS, ("upload-length", "10"), ("upload-metadata", "filename !!")],
            (StatusCode::BAD_REQUEST, "bad_request"),
        ),
    ] {
        let (status, code) = error_code(creation(&headers).await.unwrap()).await;
        assert_eq!((status, code.as_str()), expected, "{headers:?}");
    }

    // A script that says it is a GIF (of 29 500 × 29 283 pixels, its header
    // says) is refused when it is complete, and the upload is gone with its
    // bytes.
    let script = b"GIF89a<script>alert(1)</script>";
    let upload = create(&http, &url, script.len(), None).await;
    let wrong_type = http
        .patch(format!("{url}{upload}"))
        .header("authorization", bearer(KEY))
        .header(TUS.0, TUS.1)
        .header("content-type", "image/gif")
        .header("upload-offset", "0")
        .body(script.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(wrong_type).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let past_the_end = patch(&http, &url, &upload, 0, &[b'x'; 40]).await;
    assert_eq!(
        error_code(past_the_end).await,
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large".to_owned())
    );
    let other_key = http
        .head(format!("{url}{upload}"))
        .header("authorization", bearer(OTHER_KEY))
        .header(TUS.0, TUS.1)
        .send()
        .await
        .unwrap();
    assert_eq!(
        other_key.status(),
        StatusCode::NOT_FOUND,
        "another key's upload is not found"
    );
    let refused = patch(&http, &url, &upload, 0, script).await;
    assert_eq!(
        error_code(refused).await,
        (StatusCode::PAYLOAD_TOO_LARGE, "too_many_pixels".to_owned())
    );
    assert_eq!(head(&http, &url, &upload).await.status(), StatusCode::NOT_FOUND);

    // A PNG declared a JPEG by its metadata is refused too.
    let picture = png(8, 8, 1);
    let upload = create(&http, &url, picture.len(), Some("filetype aW1hZ2UvanBlZw==")).await;
    let refused = patch(&http, &url, &upload, 0, &picture).await;
    assert_eq!(error_code(refused).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Terminated halfway: nothing is left.
    let upload = create(&http, &url, picture.len(), None).await;
    assert_eq!(
        patch(&http, &url, &upload, 0, &picture[..20]).await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(
        !storage.keys(prefix::STAGING).await.is_empty(),
        "the first bytes are staged"
    );
    let deleted = http
        .delete(format!("{url}{upload}"))
        .header("authorization", bearer(KEY))
        .header(TUS.0, TUS.1)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(head(&http, &url, &upload).await.status(), StatusCode::NOT_FOUND);

    assert_nothing_staged(&storage).await;
    assert_eq!(storage.written().await, (0, 0, 0), "no image, item or event");
}

/// The form `POST /v1/uploads` gave, posted to S3 as a browser posts it.
async fn post_to_s3(storage: &PipelineStorage, form: &Value, file: &[u8]) -> StatusCode {
    let fields: Vec<(String, String)> = form["fields"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, value)| (name.clone(), value.as_str().unwrap().to_owned()))
        .collect();
    let (content_type, body) = form_data(&fields, file);
    storage
        .emulator
        .https_client()
        .post(form["url"].as_str().unwrap())
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_direct_upload_goes_to_s3_within_its_limits_and_is_checked_when_completed() {
    let storage = PipelineStorage::start(7).await;
    let dir = tempfile::tempdir().unwrap();
    let url = instance(&storage, dir.path()).await;
    let http = http_client();
    let start = || {
        http.post(format!("{url}/v1/uploads"))
            .header("authorization", bearer(KEY))
            .send()
    };
    let complete = |form: &Value, key: &str| {
        http.post(format!("{url}{}", form["complete"].as_str().unwrap()))
            .header("authorization", bearer(key))
            .send()
    };

    let response = start().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let form: Value = response.json().await.unwrap();
    assert_eq!(form["maxBytes"], MAX_IMAGE_BYTES);
    let (status, code) = error_code(complete(&form, KEY).await.unwrap()).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::CONFLICT, "upload_not_received")
    );

    // A photo with its location: S3 takes it, completing strips it.
    let photo = Picture::noise(64, 48, 3).encode_with(ImageType::Jpeg, &Metadata::from_a_phone(1));
    assert_eq!(post_to_s3(&storage, &form, &photo).await, StatusCode::NO_CONTENT);
    assert_eq!(
        error_code(complete(&form, OTHER_KEY).await.unwrap()).await.0,
        StatusCode::NOT_FOUND
    );
    let response = complete(&form, KEY).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let item: Value = response.json().await.unwrap();
    assert_eq!(item["uploadedBy"], "mobile");
    assert_eq!(item["originalSha256"], ingest_core::sha256_hex(&photo));
    let stored = storage.object(item["key"].as_str().unwrap()).await;
    assert!(stored.bytes.len() < photo.len(), "the metadata is removed");
    let again = complete(&form, KEY).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.json::<Value>().await.unwrap()["id"], item["id"]);
    assert_nothing_staged(&storage).await;

    // S3 refuses a file over the limit, and another key than the form's.
    let form: Value = start().await.unwrap().json().await.unwrap();
    let too_large = vec![0u8; MAX_IMAGE_BYTES as usize + 1];
    assert_eq!(
        post_to_s3(&storage, &form, &too_large).await,
        StatusCode::BAD_REQUEST
    );
    let mut elsewhere = form.clone();
    elsewhere["fields"]["key"] = Value::from("images/2026/12/03/planted.png");
    assert_eq!(
        post_to_s3(&storage, &elsewhere, &png(4, 4, 1)).await,
        StatusCode::FORBIDDEN
    );
    assert_nothing_staged(&storage).await;

    // What is not an image is refused when completed, and removed.
    assert_eq!(
        post_to_s3(&storage, &form, b"<script>alert(1)</script>").await,
        StatusCode::NO_CONTENT
    );
    let (status, code) = error_code(complete(&form, KEY).await.unwrap()).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );
    assert_eq!(
        error_code(complete(&form, KEY).await.unwrap()).await.0,
        StatusCode::NOT_FOUND
    );
    assert_nothing_staged(&storage).await;
    assert_eq!(storage.written().await.0, 1, "only the photo is stored");
}
