//! Shared helpers of the stock-client and Apollo-extension suites: one GET per connection over
//! HTTP or HTTPS (with a client certificate) against a server on 127.0.0.1, reading until the
//! server closes, each bounded by `IO_TIMEOUT`; a test client identity; seeding the paired
//! file as the server writes it. (`http.rs` keeps its own copy with server-certificate
//! pinning, which these suites do not test.)
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use strahl_gamestream::paired::PAIRED_FILE;
use strahl_gamestream::{RecordingSessionHost, ServerConfig, ServerHandle, SessionHost};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Reply {
    pub body: String,
}

impl Reply {
    /// The XML `status_code` attribute.
    pub fn xml_status(&self) -> u16 {
        let i = self.body.find("status_code=\"").expect("status_code") + 13;
        self.body[i..i + 3].parse().unwrap()
    }
    /// The text of the first `<name>` element.
    pub fn tag(&self, name: &str) -> Option<String> {
        let open = format!("<{name}>");
        let i = self.body.find(&open)? + open.len();
        Some(self.body[i..i + self.body[i..].find('<')?].to_owned())
    }
}

/// One request (`GET`, or `POST` with `body`) on `s`; reads until the server closes.
pub async fn request<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    method: &str,
    target: &str,
    body: &[u8],
) -> Reply {
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tokio::time::timeout(IO_TIMEOUT, async {
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(body).await.unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        let split = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("header end");
        let head = String::from_utf8_lossy(&buf[..split]);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        Reply {
            body: String::from_utf8(buf[split + 4..].to_vec()).unwrap(),
        }
    })
    .await
    .expect("server answered and closed in time")
}

pub async fn http_get(server: &ServerHandle, target: &str) -> Reply {
    let tcp = TcpStream::connect(server.http_addr()).await.unwrap();
    request(tcp, "GET", target, b"").await
}

pub async fn https(
    server: &ServerHandle,
    client: &TestClient,
    method: &str,
    target: &str,
    body: &[u8],
) -> Reply {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(AnyServer(provider.signature_verification_algorithms));
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(
            vec![CertificateDer::from(client.cert_der.clone())],
            PrivatePkcs8KeyDer::from(client.key_der.clone()).into(),
        )
        .unwrap();
    let tcp = TcpStream::connect(server.https_addr()).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio::time::timeout(
        IO_TIMEOUT,
        tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp),
    )
    .await
    .expect("handshake in time")
    .expect("TLS handshake");
    request(tls, method, target, body).await
}

pub async fn https_get(server: &ServerHandle, client: &TestClient, target: &str) -> Reply {
    https(server, client, "GET", target, b"").await
}

/// Accepts the server's certificate (pinning is `http.rs`'s subject).
#[derive(Debug)]
struct AnyServer(rustls::crypto::WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

pub struct TestClient {
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
}

pub fn test_client() -> TestClient {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "NVIDIA GameStream Client");
    let cert = params.self_signed(&kp).unwrap();
    TestClient {
        cert_pem: cert.pem(),
        cert_der: cert.der().to_vec(),
        key_der: kp.serialize_der(),
    }
}

/// Writes a paired-clients file of format version 1 (no permissions field: the oldest
/// format the server must still load) holding `clients`, all with Moonlight's uniqueid.
pub fn seed_paired(state: &std::path::Path, clients: &[&TestClient]) {
    std::fs::create_dir_all(state).unwrap();
    let list: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| serde_json::json!({ "name": format!("c{i}"), "uniqueid": "0123456789ABCDEF", "cert_pem": c.cert_pem }))
        .collect();
    let json = serde_json::json!({ "version": 1, "clients": list });
    std::fs::write(state.join(PAIRED_FILE), serde_json::to_vec(&json).unwrap()).unwrap();
}

pub async fn start(state: &std::path::Path) -> (ServerHandle, Arc<RecordingSessionHost>) {
    let host = Arc::new(RecordingSessionHost::new());
    let server = strahl_gamestream::start(
        ServerConfig::loopback_ephemeral(state),
        host.clone() as Arc<dyn SessionHost>,
    )
    .await
    .expect("start");
    (server, host)
}
