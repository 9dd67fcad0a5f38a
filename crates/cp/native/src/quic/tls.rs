//! TLS for the `strahl/1` QUIC connections: ALPN `strahl/1`, TLS 1.3 only, a certificate on
//! both sides, identities checked by SHA-256 fingerprint (never by a CA).
//!
//! Contract:
//! - The host requires a client certificate and verifies the handshake signature made with it,
//!   but accepts any certificate: whether a fingerprint is paired is decided by the connection
//!   handler (`host.rs`), since unpaired clients must still reach the pairing path.
//! - The client pins the host: with a known fingerprint any other certificate fails the
//!   handshake ([`HOST_CHANGED`] in the error); without one (pairing) it accepts any, and the
//!   SPAKE2 ceremony binds the certificate it saw.
//! - One crypto provider (aws-lc-rs, as the GameStream HTTPS server uses).

use std::sync::Arc;
use std::time::Duration;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DistinguishedName, SignatureScheme};

use crate::msg::ALPN;
use crate::pairing::{Fingerprint, fingerprint};

/// What a pinned client's handshake error says when the host's certificate is not the pinned
/// one (the client maps it to its own error).
pub const HOST_CHANGED: &str = "strahl: host certificate differs from the paired one";

/// QUIC idle timeout; keep-alives every [`KEEP_ALIVE`] keep a quiet session open. A client
/// that vanishes is noticed (and its session cleaned up) within `IDLE_TIMEOUT + KEEP_ALIVE` of
/// its last packet, not `IDLE_TIMEOUT`: the host's idle timer restarts at the first
/// ack-eliciting packet it sends after the client's last one (RFC 9000 §10.1), and its next
/// keep-alive is such a packet. 6 + 2 s keeps the "cleaned up within 10 s" with room for
/// a loaded host (with 8 s, `netns_native`'s kill -9 case measured 10.07 s).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(6);
pub const KEEP_ALIVE: Duration = Duration::from_secs(2);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn transport() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(IDLE_TIMEOUT).expect("6 s is a valid idle timeout"),
    ))
    .keep_alive_interval(Some(KEEP_ALIVE))
    // One control stream per connection; a second would be a protocol error.
    .max_concurrent_bidi_streams(1u8.into())
    .max_concurrent_uni_streams(0u8.into());
    Arc::new(t)
}

#[derive(Debug)]
struct AnyClientCert(Arc<CryptoProvider>);

impl ClientCertVerifier for AnyClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls13RequiredForQuic,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[derive(Debug)]
struct PinnedHost {
    provider: Arc<CryptoProvider>,
    pinned: Option<Fingerprint>,
}

impl ServerCertVerifier for PinnedHost {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.pinned {
            Some(fp) if fingerprint(end_entity) != fp => {
                Err(rustls::Error::General(HOST_CHANGED.into()))
            }
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls13RequiredForQuic,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The host's endpoint configuration with its long-lived certificate (DER) and key (PKCS#8).
pub fn server_config(cert_der: &[u8], key_der: &[u8]) -> Result<quinn::ServerConfig, String> {
    let p = provider();
    let mut tls = rustls::ServerConfig::builder_with_provider(p.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(Arc::new(AnyClientCert(p)))
        .with_single_cert(
            vec![CertificateDer::from(cert_der.to_vec())],
            PrivateKeyDer::try_from(key_der.to_vec()).map_err(str::to_owned)?,
        )
        .map_err(|e| e.to_string())?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| e.to_string())?;
    let mut c = quinn::ServerConfig::with_crypto(Arc::new(quic));
    c.transport_config(transport());
    Ok(c)
}

/// The client's configuration: its certificate, and the host fingerprint it pins (None while
/// pairing). `alpn` is [`ALPN`] except in tests of version mismatch.
pub fn client_config(
    cert_der: &[u8],
    key_der: &[u8],
    pinned: Option<Fingerprint>,
    alpn: &[u8],
) -> Result<quinn::ClientConfig, String> {
    let p = provider();
    let mut tls = rustls::ClientConfig::builder_with_provider(p.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedHost {
            provider: p,
            pinned,
        }))
        .with_client_auth_cert(
            vec![CertificateDer::from(cert_der.to_vec())],
            PrivateKeyDer::try_from(key_der.to_vec()).map_err(str::to_owned)?,
        )
        .map_err(|e| e.to_string())?;
    tls.alpn_protocols = vec![alpn.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| e.to_string())?;
    let mut c = quinn::ClientConfig::new(Arc::new(quic));
    c.transport_config(transport());
    Ok(c)
}

/// SHA-256 fingerprint of the certificate the peer of `conn` presented.
pub fn peer_fingerprint(conn: &quinn::Connection) -> Option<Fingerprint> {
    let certs = conn
        .peer_identity()?
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()?;
    certs.first().map(|c| fingerprint(c))
}
