//! Certificates for the fake network's HTTPS servers.
//!
//! One test certificate authority per process signs a certificate for each
//! TLS server (valid for `localhost` and the server's bound address), so a
//! client trusts every fake HTTPS server by adding one root:
//! [`test_ca_pem`] or [`test_ca_der`].

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::NetError;

struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pem: String,
}

fn test_ca() -> Result<&'static TestCa, NetError> {
    static CA: OnceLock<Result<TestCa, rcgen::Error>> = OnceLock::new();
    let ca = CA.get_or_init(|| {
        let make = || -> Result<TestCa, rcgen::Error> {
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params
                .distinguished_name
                .push(DnType::CommonName, "proxy-reserve testkit CA");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
            let pem = issuer.pem();
            Ok(TestCa { issuer, pem })
        };
        make()
    });
    ca.as_ref().map_err(|e| NetError::Certificate(e.clone()))
}

/// The test certificate authority that signs every fake HTTPS server's
/// certificate, in PEM. Add it as a root to trust them.
pub fn test_ca_pem() -> Result<&'static str, NetError> {
    test_ca().map(|ca| ca.pem.as_str())
}

/// The test certificate authority in DER (see [`test_ca_pem`]).
pub fn test_ca_der() -> Result<&'static [u8], NetError> {
    test_ca().map(|ca| ca.issuer.der().as_ref())
}

/// A TLS acceptor with a fresh certificate for `localhost` and `ip`, signed
/// by the test CA.
pub(crate) fn acceptor_for(ip: IpAddr) -> Result<TlsAcceptor, NetError> {
    let ca = test_ca()?;
    let certificate_error = NetError::Certificate;
    let mut names = vec!["localhost".to_owned(), ip.to_string()];
    if ip != IpAddr::from([127, 0, 0, 1]) {
        names.push("127.0.0.1".to_owned());
    }
    let key = KeyPair::generate().map_err(certificate_error)?;
    let mut params = CertificateParams::new(names).map_err(certificate_error)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "proxy-reserve testkit server");
    let leaf = params
        .signed_by(&key, &ca.issuer)
        .map_err(certificate_error)?;
    let chain = vec![
        CertificateDer::from(leaf.der().to_vec()),
        CertificateDer::from(ca.issuer.der().to_vec()),
    ];
    let private_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let tls_error = NetError::Tls;
    // An explicit provider: never depend on a process-wide default.
    let mut config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(tls_error)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
