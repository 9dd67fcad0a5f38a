//! The HTTP and HTTPS listeners from a Rust client on 127.0.0.1 (ephemeral ports): route
//! table, XML-in-HTTP-200 replies, `Connection: close`, mandatory client certificates,
//! paired-set authorisation, the presented server certificate, and start-up errors.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use strahl_gamestream::handlers::{APP_ASSET_PNG, UNAUTHORIZED_MESSAGE};
use strahl_gamestream::paired::PAIRED_FILE;
use strahl_gamestream::{
    PinError, RecordingSessionHost, ServerConfig, ServerHandle, SessionHost, StartError,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const IO_TIMEOUT: Duration = Duration::from_secs(10);

struct HttpReply {
    status_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpReply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
    /// The XML `status_code` attribute.
    fn xml_status(&self) -> u16 {
        let t = self.text();
        let i = t.find("status_code=\"").expect("status_code") + 13;
        t[i..i + 3].parse().unwrap()
    }
}

/// One GET on an open stream; reads until the server closes (it must, `Connection: close`).
async fn get<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, target: &str) -> HttpReply {
    let req = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n");
    tokio::time::timeout(IO_TIMEOUT, async {
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        let split = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("header end");
        let head = String::from_utf8(buf[..split].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap().to_owned();
        let headers = lines
            .map(|l| {
                let (k, v) = l.split_once(": ").unwrap();
                (k.to_owned(), v.to_owned())
            })
            .collect();
        HttpReply {
            status_line,
            headers,
            body: buf[split + 4..].to_vec(),
        }
    })
    .await
    .expect("server closed the connection in time")
}

async fn http_get(server: &ServerHandle, target: &str) -> HttpReply {
    get(
        TcpStream::connect(server.http_addr()).await.unwrap(),
        target,
    )
    .await
}

/// Pins the host certificate exactly (what stock moonlight-qt does, §B3).
#[derive(Debug)]
struct PinnedServer {
    der: Vec<u8>,
    algs: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.der.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "server presented a cert other than plaincert".into(),
            ))
        }
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.algs)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

struct TestClient {
    cert_pem: String,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

fn test_client() -> TestClient {
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

async fn https_connect(
    server: &ServerHandle,
    client: Option<&TestClient>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let pinned = strahl_gamestream::crypto::CertInfo::from_pem(server.cert_pem().as_bytes())
        .unwrap()
        .der;
    let verifier = Arc::new(PinnedServer {
        der: pinned,
        algs: provider.signature_verification_algorithms,
    });
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let cfg = match client {
        Some(c) => b
            .with_client_auth_cert(
                vec![CertificateDer::from(c.cert_der.clone())],
                PrivatePkcs8KeyDer::from(c.key_der.clone()).into(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    let tcp = TcpStream::connect(server.https_addr()).await?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
}

async fn https_get(server: &ServerHandle, client: &TestClient, target: &str) -> HttpReply {
    get(
        https_connect(server, Some(client))
            .await
            .expect("TLS handshake"),
        target,
    )
    .await
}

async fn start(state: &std::path::Path) -> (ServerHandle, Arc<RecordingSessionHost>) {
    let host = Arc::new(RecordingSessionHost::new());
    let server = strahl_gamestream::start(
        ServerConfig::loopback_ephemeral(state),
        host.clone() as Arc<dyn SessionHost>,
    )
    .await
    .expect("start");
    (server, host)
}

/// Writes a paired-clients file holding `client`, as the server itself would.
fn seed_paired(state: &std::path::Path, client: &TestClient) {
    std::fs::create_dir_all(state).unwrap();
    let json = serde_json::json!({
        "version": 1,
        "clients": [{ "name": "test", "uniqueid": "0123456789ABCDEF", "cert_pem": client.cert_pem }]
    });
    std::fs::write(state.join(PAIRED_FILE), serde_json::to_vec(&json).unwrap()).unwrap();
}

#[tokio::test]
async fn http_routes_and_reply_shape() {
    let state = tempfile::tempdir().unwrap();
    let (server, _host) = start(state.path()).await;
    let r = http_get(&server, "/serverinfo?uniqueid=0123456789ABCDEF&uuid=00").await;
    assert_eq!(r.status_line, "HTTP/1.1 200 OK");
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(r.header("content-type"), Some("application/xml"));
    let t = r.text();
    assert_eq!(r.xml_status(), 200);
    for want in [
        "<appversion>7.1.431.-1</appversion>".to_string(),
        "<GfeVersion>3.23.0.74</GfeVersion>".to_string(),
        format!("<uniqueid>{}</uniqueid>", server.unique_id()),
        format!("<HttpsPort>{}</HttpsPort>", server.https_addr().port()),
        format!("<ExternalPort>{}</ExternalPort>", server.http_addr().port()),
        "<mac>00:00:00:00:00:00</mac>".to_string(),
        "<LocalIP>127.0.0.1</LocalIP>".to_string(),
        "<ServerCodecModeSupport>1</ServerCodecModeSupport>".to_string(),
        "<PairStatus>0</PairStatus>".to_string(),
        "<currentgame>0</currentgame>".to_string(),
        "<state>SUNSHINE_SERVER_FREE</state>".to_string(),
    ] {
        assert!(t.contains(&want), "missing {want} in {t}");
    }
    // HTTPS-only routes and unknown paths are 404 over HTTP; errors are still HTTP 200.
    for path in [
        "/applist",
        "/launch?appid=1",
        "/cancel",
        "/appasset",
        "/nope",
        "/",
    ] {
        let r = http_get(&server, path).await;
        assert_eq!(r.status_line, "HTTP/1.1 200 OK", "{path}");
        assert_eq!(r.xml_status(), 404, "{path}");
    }
    let r = http_get(&server, "/serverinfo?a=%zz").await;
    assert_eq!(r.xml_status(), 400);
    let r = http_get(&server, "/pair?phrase=getservercert").await;
    assert_eq!(r.xml_status(), 400);
    assert!(r.text().contains("<paired>0</paired>"));
    // PIN API validation.
    assert_eq!(server.submit_pin("12a4"), Err(PinError::Format));
    assert_eq!(server.submit_pin("1234"), Err(PinError::NoPendingRequest));
    server.shutdown().await;
}

#[tokio::test]
async fn https_requires_a_client_cert_and_presents_the_plaincert() {
    let state = tempfile::tempdir().unwrap();
    let (server, _host) = start(state.path()).await;
    // No client certificate: no HTTP reply at all (TLS fails).
    let outcome = tokio::time::timeout(IO_TIMEOUT, async {
        let mut s = https_connect(&server, None).await?;
        s.write_all(b"GET /serverinfo HTTP/1.1\r\nHost: x\r\n\r\n")
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    })
    .await
    .expect("bounded");
    let err = outcome.expect_err("TLS without a client certificate must fail");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    // Any client cert passes TLS (the pinning verifier proves the host cert is plaincert),
    // then an unpaired one gets the 401 XML on every HTTPS route.
    let stranger = test_client();
    for path in [
        "/serverinfo",
        "/applist",
        "/appasset?appid=1",
        "/launch",
        "/resume",
        "/cancel",
        "/pair",
    ] {
        let r = https_get(&server, &stranger, path).await;
        assert_eq!(r.status_line, "HTTP/1.1 200 OK");
        assert_eq!(r.xml_status(), 401, "{path}");
        assert!(r.text().contains(UNAUTHORIZED_MESSAGE));
    }
    assert_eq!(
        https_get(&server, &stranger, "/nope").await.xml_status(),
        404
    );
    server.shutdown().await;
}

#[tokio::test]
async fn paired_client_over_https() {
    let state = tempfile::tempdir().unwrap();
    let client = test_client();
    seed_paired(state.path(), &client);
    let (server, host) = start(state.path()).await;
    let r = https_get(&server, &client, "/serverinfo?uniqueid=0123456789ABCDEF").await;
    assert!(
        r.text().contains("<PairStatus>1</PairStatus>"),
        "{}",
        r.text()
    );
    let r = https_get(&server, &client, "/applist").await;
    assert!(
        r.text().contains(
            "<App><IsHdrSupported>0</IsHdrSupported><AppTitle>Desktop</AppTitle><ID>1</ID>"
        )
    );
    // The encoder's live report decides the codec bits, MaxLumaPixelsHEVC and IsHdrSupported:
    // an HEVC Main10 clip → only 0x200, HEVC pixels, HDR.
    host.set_video_support(Some(strahl_gamestream::VideoSupport {
        codec_mode_support: 0x200,
        hdr: true,
    }));
    let r = https_get(&server, &client, "/serverinfo?uniqueid=0123456789ABCDEF").await;
    assert!(
        r.text()
            .contains("<ServerCodecModeSupport>512</ServerCodecModeSupport>")
            && r.text()
                .contains("<MaxLumaPixelsHEVC>1869449984</MaxLumaPixelsHEVC>"),
        "{}",
        r.text()
    );
    let r = https_get(&server, &client, "/applist").await;
    assert!(
        r.text().contains("<IsHdrSupported>1</IsHdrSupported>"),
        "{}",
        r.text()
    );
    // AV1 8-bit only: no HEVC pixels, no HDR.
    host.set_video_support(Some(strahl_gamestream::VideoSupport {
        codec_mode_support: 0x10000,
        hdr: false,
    }));
    let r = https_get(&server, &client, "/serverinfo?uniqueid=0123456789ABCDEF").await;
    assert!(
        r.text()
            .contains("<ServerCodecModeSupport>65536</ServerCodecModeSupport>")
            && r.text()
                .contains("<MaxLumaPixelsHEVC>0</MaxLumaPixelsHEVC>"),
        "{}",
        r.text()
    );
    let r = https_get(&server, &client, "/applist").await;
    assert!(r.text().contains("<IsHdrSupported>0</IsHdrSupported>"));
    host.set_video_support(None);

    let r = https_get(&server, &client, "/appasset?appid=1&AssetType=2&AssetIdx=0").await;
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert_eq!(r.body, APP_ASSET_PNG);
    assert_eq!(&r.body[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(
        https_get(&server, &client, "/pair?uniqueid=x&phrase=pairchallenge")
            .await
            .xml_status(),
        200
    );
    let key = "rikey=00112233445566778899aabbccddeeff";
    // Validation errors (400), unknown app (404), resume with nothing running (503).
    for (target, want) in [
        (format!("/launch?appid=1&{key}&localAudioPlayMode=0"), 400),
        (format!("/launch?appid=1&{key}&rikeyid=1"), 400),
        (
            "/launch?appid=1&rikey=0011&rikeyid=1&localAudioPlayMode=0".to_string(),
            400,
        ),
        (
            format!("/launch?appid=1&{key}&rikeyid=1&localAudioPlayMode=0&mode=1x1"),
            400,
        ),
        (
            format!("/launch?appid=9&{key}&rikeyid=1&localAudioPlayMode=0"),
            404,
        ),
        (format!("/resume?{key}&rikeyid=1"), 503),
    ] {
        assert_eq!(
            https_get(&server, &client, &target).await.xml_status(),
            want,
            "{target}"
        );
    }
    assert!(host.events().is_empty());
    // Plain RTSP URL for corever 0.
    let r = https_get(
        &server,
        &client,
        &format!("/launch?appid=1&{key}&rikeyid=-2&localAudioPlayMode=0"),
    )
    .await;
    assert!(
        r.text().contains(
            "<sessionUrl0>rtsp://127.0.0.1:48010</sessionUrl0><gamesession>1</gamesession>"
        )
    );
    let r = https_get(&server, &client, "/cancel").await;
    assert!(r.text().contains("<cancel>1</cancel>"));
    assert_eq!(host.app_of(&client.cert_der), None);
    server.shutdown().await;
}

fn seed_paired_many(state: &std::path::Path, clients: &[&TestClient]) {
    std::fs::create_dir_all(state).unwrap();
    let list: Vec<_> = clients
        .iter()
        .enumerate()
        // Every client may launch (permissions are `apollo.rs`'s subject).
        .map(|(i, c)| serde_json::json!({ "name": format!("c{i}"), "uniqueid": "0123456789ABCDEF", "cert_pem": c.cert_pem, "permissions": strahl_gamestream::Permissions::ALL.0 }))
        .collect();
    let json = serde_json::json!({ "version": 1, "clients": list });
    std::fs::write(state.join(PAIRED_FILE), serde_json::to_vec(&json).unwrap()).unwrap();
}

/// (state, currentgame) of a /serverinfo reply.
fn busy_and_game(r: &HttpReply) -> (String, String) {
    let t = r.text();
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let i = t.find(&open).unwrap_or_else(|| panic!("{name} in {t}")) + open.len();
        t[i..i + t[i..].find('<').unwrap()].to_owned()
    };
    (tag("state"), tag("currentgame"))
}

#[tokio::test]
async fn sessions_are_per_client_certificate() {
    let state = tempfile::tempdir().unwrap();
    let (a, b, c) = (test_client(), test_client(), test_client());
    seed_paired_many(state.path(), &[&a, &b, &c]);
    let host = Arc::new(RecordingSessionHost::with_max_sessions(2));
    let server = strahl_gamestream::start(
        ServerConfig::loopback_ephemeral(state.path()),
        host.clone() as Arc<dyn SessionHost>,
    )
    .await
    .expect("start");
    let launch = "/launch?appid=1&rikey=00112233445566778899aabbccddeeff&rikeyid=1&localAudioPlayMode=0&&corever=1";
    assert_eq!(https_get(&server, &a, launch).await.xml_status(), 200);
    // A sees its own app running (it would /resume); B and an anonymous HTTP asker see room.
    let busy = ("SUNSHINE_SERVER_BUSY".to_string(), "1".to_string());
    let free = ("SUNSHINE_SERVER_FREE".to_string(), "0".to_string());
    assert_eq!(
        busy_and_game(&https_get(&server, &a, "/serverinfo").await),
        busy
    );
    assert_eq!(
        busy_and_game(&https_get(&server, &b, "/serverinfo").await),
        free
    );
    assert_eq!(busy_and_game(&http_get(&server, "/serverinfo").await), free);
    // A second launch by A is the same-client busy of today; B launches its own session.
    let again = https_get(&server, &a, launch).await;
    assert_eq!(again.xml_status(), 400);
    assert!(
        again.text().contains("An app is already running"),
        "{}",
        again.text()
    );
    assert_eq!(https_get(&server, &b, launch).await.xml_status(), 200);
    assert_eq!(
        busy_and_game(&https_get(&server, &b, "/serverinfo").await),
        busy
    );
    // Full: C is told the host is busy without a game of its own, and its launch is refused.
    let full = ("SUNSHINE_SERVER_BUSY".to_string(), "0".to_string());
    assert_eq!(
        busy_and_game(&https_get(&server, &c, "/serverinfo").await),
        full
    );
    assert_eq!(busy_and_game(&http_get(&server, "/serverinfo").await), full);
    let refused = https_get(&server, &c, launch).await;
    assert_eq!(refused.xml_status(), 400);
    assert!(refused.text().contains("maximum"), "{}", refused.text());
    // C's cancel and resume touch nobody else; A's cancel leaves B running and makes room.
    assert_eq!(https_get(&server, &c, "/cancel").await.xml_status(), 200);
    assert_eq!(
        https_get(
            &server,
            &c,
            "/resume?rikey=00112233445566778899aabbccddeeff&rikeyid=1"
        )
        .await
        .xml_status(),
        503
    );
    assert_eq!(host.running(), 2);
    assert_eq!(https_get(&server, &a, "/cancel").await.xml_status(), 200);
    assert_eq!(host.app_of(&a.cert_der), None);
    assert_eq!(host.app_of(&b.cert_der), Some(1));
    assert_eq!(
        busy_and_game(&https_get(&server, &c, "/serverinfo").await),
        free
    );
    assert_eq!(https_get(&server, &c, launch).await.xml_status(), 200);
    server.shutdown().await;
}

#[tokio::test]
async fn corrupt_state_is_a_start_error_naming_the_file() {
    let state = tempfile::tempdir().unwrap();
    std::fs::write(state.path().join(PAIRED_FILE), b"{ not json").unwrap();
    let host: Arc<dyn SessionHost> = Arc::new(RecordingSessionHost::new());
    let e = strahl_gamestream::start(ServerConfig::loopback_ephemeral(state.path()), host.clone())
        .await
        .err()
        .expect("must fail");
    assert!(matches!(e, StartError::PairedStore(_)), "{e}");
    assert!(e.to_string().contains(PAIRED_FILE), "{e}");
    // A wrong certificate inside well-formed JSON is also refused.
    let json = r#"{"version":1,"clients":[{"name":"x","uniqueid":"y","cert_pem":"nope"}]}"#;
    std::fs::write(state.path().join(PAIRED_FILE), json).unwrap();
    let e = strahl_gamestream::start(ServerConfig::loopback_ephemeral(state.path()), host.clone())
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("client #0"), "{e}");
    // The file was not reset.
    assert_eq!(
        std::fs::read_to_string(state.path().join(PAIRED_FILE)).unwrap(),
        json
    );
    // A corrupt host key is named too.
    std::fs::remove_file(state.path().join(PAIRED_FILE)).unwrap();
    std::fs::write(state.path().join("host-key.pem"), b"junk").unwrap();
    std::fs::write(state.path().join("host-cert.pem"), b"junk").unwrap();
    let e = strahl_gamestream::start(ServerConfig::loopback_ephemeral(state.path()), host)
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("host-cert.pem"), "{e}");
}
