//! An HTTPS file server for tests, standing in for the Apache archive: it
//! serves files from memory, or generated as they are sent (so a large one
//! costs the test no memory), over TLS with the AWS emulator's server
//! certificate (for 127.0.0.1, signed by the emulator's CA), and counts the
//! requests for each path.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use sha2::{Digest, Sha512};

/// Bytes of generated content written at a time.
const CHUNK: usize = 64 * 1024;
/// Longest request head read.
const MAX_HEAD: usize = 16 * 1024;

/// `len` pseudo-random bytes from `seed`: the same every time, made as they
/// are needed.
#[derive(Clone, Copy, Debug)]
pub struct Generated {
    pub len: usize,
    pub seed: u64,
}

impl Generated {
    pub fn chunks(self) -> impl Iterator<Item = Vec<u8>> {
        // xorshift64*: fast, and plenty for bytes no one compresses.
        let mut state = self.seed | 1;
        let mut left = self.len;
        std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            let size = left.min(CHUNK);
            left -= size;
            let mut chunk = Vec::with_capacity(size + 8);
            while chunk.len() < size {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                chunk.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
            }
            chunk.truncate(size);
            Some(chunk)
        })
    }

    pub fn bytes(self) -> Vec<u8> {
        self.chunks().flatten().collect()
    }

    /// Lowercase hex SHA-512.
    pub fn sha512(self) -> String {
        let mut hasher = Sha512::new();
        self.chunks().for_each(|chunk| hasher.update(&chunk));
        hex::encode(hasher.finalize())
    }
}

#[derive(Clone, Debug)]
pub enum Content {
    Text(String),
    Generated(Generated),
}

type Files = Arc<Mutex<BTreeMap<String, Content>>>;
type Requests = Arc<Mutex<BTreeMap<String, usize>>>;

pub struct ArchiveServer {
    address: SocketAddr,
    files: Files,
    requests: Requests,
}

impl ArchiveServer {
    /// Serves nothing yet, with the certificate and key that lie beside the
    /// emulator's CA certificate `ca_file` (`scripts/moto/certificate.py`).
    pub fn start(ca_file: &Path) -> Self {
        let dir = ca_file.parent().expect("the CA file is in a folder");
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
            .expect("the emulator's server certificate")
            .collect::<Result<_, _>>()
            .expect("PEM certificates");
        let key =
            PrivateKeyDer::from_pem_file(dir.join("server-key.pem")).expect("the emulator's server key");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = Arc::new(
            ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .expect("a usable certificate and key"),
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let address = listener.local_addr().expect("its address");
        let files = Files::default();
        let requests = Requests::default();
        let (served, counted) = (files.clone(), requests.clone());
        // The threads end with the test process.
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let (config, files, requests) = (config.clone(), served.clone(), counted.clone());
                std::thread::spawn(move || {
                    // A client that hangs up early is not the server's failure.
                    let _ = respond(config, tcp, &files, &requests);
                });
            }
        });
        Self {
            address,
            files,
            requests,
        }
    }

    pub fn serve(&self, path: &str, content: Content) {
        lock(&self.files).insert(path.to_owned(), content);
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.address)
    }

    /// Requests for `path` so far.
    pub fn requests(&self, path: &str) -> usize {
        lock(&self.requests).get(path).copied().unwrap_or_default()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Answers one request and closes the connection.
fn respond(config: Arc<ServerConfig>, tcp: TcpStream, files: &Files, requests: &Requests) -> io::Result<()> {
    let mut tls = StreamOwned::new(ServerConnection::new(config).map_err(io::Error::other)?, tcp);
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > MAX_HEAD || tls.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or_default().to_owned();
    *lock(requests).entry(path.clone()).or_default() += 1;
    let content = lock(files).get(&path).cloned();
    let status_and_length = |status: &str, length: usize| {
        format!("HTTP/1.1 {status}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n")
    };
    match content {
        None => tls.write_all(status_and_length("404 Not Found", 0).as_bytes())?,
        Some(Content::Text(text)) => {
            tls.write_all(status_and_length("200 OK", text.len()).as_bytes())?;
            tls.write_all(text.as_bytes())?;
        }
        Some(Content::Generated(generated)) => {
            tls.write_all(status_and_length("200 OK", generated.len).as_bytes())?;
            for chunk in generated.chunks() {
                tls.write_all(&chunk)?;
            }
        }
    }
    tls.conn.send_close_notify();
    tls.flush()
}
