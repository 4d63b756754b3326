//! The one place that turns a [`ProxyUrl`] into a reqwest client.

use std::fmt;
use std::time::Duration;

use proxy_core::ProxyUrl;

use crate::error::JudgeError;

/// The default `User-Agent`: `proxy-reserve/<version>`.
pub const DEFAULT_USER_AGENT: &str = concat!("proxy-reserve/", env!("CARGO_PKG_VERSION"));

/// A root certificate to trust in addition to (or instead of) the system's.
#[derive(Clone, PartialEq, Eq)]
pub enum RootCertificate {
    /// PEM text (one certificate or a bundle).
    Pem(Vec<u8>),
    /// DER bytes of one certificate.
    Der(Vec<u8>),
}

impl fmt::Debug for RootCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootCertificate::Pem(pem) => write!(f, "RootCertificate::Pem({} bytes)", pem.len()),
            RootCertificate::Der(der) => write!(f, "RootCertificate::Der({} bytes)", der.len()),
        }
    }
}

impl RootCertificate {
    fn to_reqwest(&self) -> Result<Vec<reqwest::Certificate>, JudgeError> {
        let parsed = match self {
            RootCertificate::Pem(pem) => reqwest::Certificate::from_pem_bundle(pem),
            RootCertificate::Der(der) => reqwest::Certificate::from_der(der).map(|c| vec![c]),
        };
        parsed.map_err(|source| JudgeError::Certificate { source })
    }

    /// Parses the certificates for real: reqwest only reads them when a
    /// client is built, so build a throwaway one that trusts only them.
    fn check(&self) -> Result<usize, JudgeError> {
        let certificates = self.to_reqwest()?;
        let count = certificates.len();
        reqwest::Client::builder()
            .no_proxy()
            .tls_certs_only(certificates)
            .build()
            .map_err(|source| JudgeError::Certificate { source })?;
        Ok(count)
    }
}

/// How [`client_for`] and [`direct_client`] build a client.
///
/// The defaults suit a scraper: 30 s per request, 10 s to connect, the
/// system's root certificates, up to 10 redirects.
///
/// ```
/// # use std::time::Duration;
/// use proxy_judge::ClientOptions;
/// let options = ClientOptions::default()
///     .timeout(Duration::from_secs(5))
///     .user_agent("my-scraper/1.0");
/// assert_eq!(options.timeout, Some(Duration::from_secs(5)));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientOptions {
    /// Deadline for a whole request, connect to last body byte; `None`
    /// for no deadline.
    pub timeout: Option<Duration>,
    /// Deadline for connecting (to the proxy, including the CONNECT or
    /// SOCKS handshake and TLS).
    pub connect_timeout: Option<Duration>,
    /// The `User-Agent` header; `None` sends none.
    pub user_agent: Option<String>,
    /// Extra trusted roots (e.g. a self-hosted judge's certificate).
    pub root_certificates: Vec<RootCertificate>,
    /// Trust only [`ClientOptions::root_certificates`], not the system's.
    pub only_listed_roots: bool,
    /// Accept any server certificate. For tests only: it disables the
    /// protection TLS gives against a gateway rewriting answers.
    pub danger_accept_invalid_certs: bool,
    /// Redirects followed; 0 follows none.
    pub max_redirects: usize,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Option<Duration>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            timeout: Some(Duration::from_secs(30)),
            connect_timeout: Some(Duration::from_secs(10)),
            user_agent: Some(DEFAULT_USER_AGENT.to_owned()),
            root_certificates: Vec::new(),
            only_listed_roots: false,
            danger_accept_invalid_certs: false,
            max_redirects: 10,
            pool_idle_timeout: Some(Duration::from_secs(60)),
        }
    }
}

impl ClientOptions {
    /// Sets the whole-request deadline.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the connect deadline.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Sets the `User-Agent`.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// Trusts the certificates in `pem` too. Fails if it holds none or
    /// does not parse.
    pub fn add_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Result<Self, JudgeError> {
        let certificate = RootCertificate::Pem(pem.into());
        if certificate.check()? == 0 {
            return Err(JudgeError::InvalidSetting {
                name: "add_root_certificate_pem",
                reason: "no certificate in the PEM text",
            });
        }
        self.root_certificates.push(certificate);
        Ok(self)
    }

    /// Trusts the DER certificate `der` too. Fails if it does not parse.
    pub fn add_root_certificate_der(mut self, der: impl Into<Vec<u8>>) -> Result<Self, JudgeError> {
        let certificate = RootCertificate::Der(der.into());
        certificate.check()?;
        self.root_certificates.push(certificate);
        Ok(self)
    }

    /// Trusts only the added roots.
    pub fn only_listed_roots(mut self, only: bool) -> Self {
        self.only_listed_roots = only;
        self
    }

    /// Accepts any server certificate (tests only).
    pub fn danger_accept_invalid_certs(mut self, accept: bool) -> Self {
        self.danger_accept_invalid_certs = accept;
        self
    }

    /// Sets how many redirects are followed.
    pub fn max_redirects(mut self, max: usize) -> Self {
        self.max_redirects = max;
        self
    }

    fn builder(&self) -> Result<reqwest::ClientBuilder, JudgeError> {
        let mut builder = reqwest::Client::builder()
            .redirect(match self.max_redirects {
                0 => reqwest::redirect::Policy::none(),
                n => reqwest::redirect::Policy::limited(n),
            })
            .pool_idle_timeout(self.pool_idle_timeout)
            .tls_danger_accept_invalid_certs(self.danger_accept_invalid_certs);
        if let Some(timeout) = self.timeout {
            builder = builder.timeout(timeout);
        }
        if let Some(timeout) = self.connect_timeout {
            builder = builder.connect_timeout(timeout);
        }
        if let Some(user_agent) = &self.user_agent {
            builder = builder.user_agent(user_agent.as_str());
        }
        let mut roots = Vec::new();
        for certificate in &self.root_certificates {
            roots.extend(certificate.to_reqwest()?);
        }
        if self.only_listed_roots {
            builder = builder.tls_certs_only(roots);
        } else if !roots.is_empty() {
            builder = builder.tls_certs_merge(roots);
        }
        Ok(builder)
    }
}

/// Builds the HTTP client that sends every request through `proxy`.
///
/// This is the one place in proxy-reserve that makes a client for a proxy:
/// the verifier and the scraper's request layer both use it, so the exit
/// the judges saw is the exit the scraper uses.
///
/// - **One client per session URL.** reqwest pools connections by target
///   host, not by proxy: a client shared between sessions could send a
///   request down another session's pooled connection, through the wrong
///   exit IP. Build a client per [`ProxyUrl`] and drop it with the session.
/// - Every request goes through `proxy` (HTTP, HTTPS, SOCKS5 or SOCKS5h);
///   the environment (`HTTP_PROXY`, `NO_PROXY`, …) is never read.
/// - Credentials are passed percent-encoded and decoded by reqwest, so
///   `@ : % / # ?` in a username or password survive.
///
/// ```
/// use proxy_core::ProxyUrl;
/// use proxy_judge::{ClientOptions, client_for};
/// let proxy = ProxyUrl::parse("http://user-session-abc:secret@127.0.0.1:8080")?;
/// let client = client_for(&proxy, &ClientOptions::default())?;
/// # let _ = client;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn client_for(
    proxy: &ProxyUrl,
    options: &ClientOptions,
) -> Result<reqwest::Client, JudgeError> {
    let reqwest_proxy =
        reqwest::Proxy::all(proxy.expose_url()).map_err(|source| JudgeError::Proxy {
            proxy: proxy.redacted(),
            source,
        })?;
    options
        .builder()?
        .proxy(reqwest_proxy)
        .build()
        .map_err(|source| JudgeError::Client { source })
}

/// Builds a client that connects directly, never through a proxy (the
/// environment's proxy variables are ignored too). The verifier's
/// anonymity check uses it to learn our own address.
pub fn direct_client(options: &ClientOptions) -> Result<reqwest::Client, JudgeError> {
    options
        .builder()?
        .no_proxy()
        .build()
        .map_err(|source| JudgeError::Client { source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_for_every_protocol() {
        for url in [
            "http://u:p@127.0.0.1:1",
            "https://u:p@127.0.0.1:1",
            "socks5://u:p@127.0.0.1:1",
            "socks5h://u:p%40x@127.0.0.1:1",
            "http://127.0.0.1:1",
        ] {
            let proxy = ProxyUrl::parse(url).unwrap();
            client_for(&proxy, &ClientOptions::default()).unwrap();
        }
        direct_client(&ClientOptions::default()).unwrap();
    }

    #[test]
    fn bad_certificates_are_rejected() {
        assert!(matches!(
            ClientOptions::default().add_root_certificate_pem("not a certificate"),
            Err(JudgeError::InvalidSetting { .. })
        ));
        assert!(matches!(
            ClientOptions::default().add_root_certificate_der(vec![1, 2, 3]),
            Err(JudgeError::Certificate { .. })
        ));
    }
}
