//! TLS for the HTTPS port: present the host certificate, *require* a client certificate but
//! accept any (reference §A3, ecosystem.md §2.3). Authorisation happens after the handshake,
//! by exact match against the paired set, so an unpaired client gets a 401 XML reply rather
//! than a TLS alert. The handshake signature is still verified: the peer must hold the
//! private key of the certificate it presents.

use std::sync::Arc;

use rustls::DistinguishedName;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, ServerConfig, SignatureScheme};

use crate::identity::HostIdentity;

/// Accepts any syntactically present client certificate; checks possession of its key.
#[derive(Debug)]
pub struct AcceptAnyClientCert {
    algs: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AcceptAnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Self-signed client certs have no CA to chain to; the handler pins them instead.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// The aws-lc-rs provider (the one provider this workspace uses).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The HTTPS server config: host cert, mandatory-but-unverified client certs, TLS 1.2 + 1.3.
pub fn server_config(identity: &HostIdentity) -> Result<ServerConfig, rustls::Error> {
    let provider = provider();
    let verifier = Arc::new(AcceptAnyClientCert {
        algs: provider.signature_verification_algorithms,
    });
    let (cert, key) = identity.tls_cert_and_key();
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert], key.into())
}
