//! Telling a proxy's failure from a judge's, so the acquire loop knows
//! whether to stop, take a new session, or just ask another judge.

use std::error::Error as StdError;
use std::io;

use proxy_core::{ProxyFailure, VerifyError};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

/// Headers gateways add to their own error answers (see PROVIDERS.md):
/// Bright Data, legacy Luminati, Oxylabs. RFC 9209 `Proxy-Status` is not
/// among them: proxies send it on successful answers too, so it counts only
/// with an `error=` parameter (see [`proxy_status_error`]).
pub const PROVIDER_ERROR_HEADERS: [&str; 5] = [
    "x-brd-error",
    "x-brd-err-code",
    "x-brd-err-msg",
    "x-luminati-error",
    "x-error-description",
];

/// Statuses a gateway answers for a session it cannot serve.
pub const GATEWAY_STATUSES: [u16; 4] = [502, 503, 522, 525];

/// The RFC 9209 `Proxy-Status` value that reports an error (one with an
/// `error=` parameter), if the answer carries one.
pub fn proxy_status_error(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all("proxy-status")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .find(|v| v.to_ascii_lowercase().contains("error="))
}

/// Every provider error header of an answer, as `name: value`, including an
/// erroring `Proxy-Status`.
pub fn provider_errors(headers: &HeaderMap) -> Vec<String> {
    let mut found: Vec<String> = PROVIDER_ERROR_HEADERS
        .iter()
        .filter_map(|name| {
            let value = headers.get(*name)?;
            Some(format!(
                "{name}: {}",
                String::from_utf8_lossy(value.as_bytes())
            ))
        })
        .collect();
    found.extend(proxy_status_error(headers).map(|v| format!("proxy-status: {v}")));
    found
}

/// How a request to a judge travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    /// A plain-HTTP judge through an HTTP(S) gateway: the gateway forwards
    /// the request and may answer in the judge's place.
    ForwardedByGateway,
    /// An HTTPS judge through a CONNECT tunnel, or any judge through
    /// SOCKS5: after the handshake, every byte is the judge's.
    Tunnelled,
    /// No proxy (our own address, for the anonymity check).
    Direct,
}

/// One judge attempt's failure.
#[derive(Debug)]
pub(crate) enum AttemptError {
    /// The session (or the whole configuration) failed: asking another
    /// judge through it will not help.
    Session(VerifyError),
    /// The gateway answered with an error instead of the judge. That is the
    /// session's fault when every judge gets it, but a gateway also answers
    /// 502 for a judge that is down, so the next judge is still asked.
    Gateway {
        /// The gateway's HTTP status, if it was visible.
        status: Option<u16>,
        /// For the log.
        detail: String,
    },
    /// This judge failed; another may answer.
    Judge {
        /// For the log (never contains credentials).
        reason: String,
        /// The judge did not answer in time.
        timeout: bool,
    },
}

impl AttemptError {
    pub(crate) fn judge(reason: impl Into<String>) -> Self {
        AttemptError::Judge {
            reason: reason.into(),
            timeout: false,
        }
    }
}

fn unreachable(detail: impl Into<String>) -> AttemptError {
    AttemptError::Session(VerifyError::Proxy {
        failure: ProxyFailure::Unreachable,
        status: None,
        detail: detail.into(),
    })
}

fn gateway(status: Option<u16>, detail: impl Into<String>) -> AttemptError {
    AttemptError::Gateway {
        status,
        detail: detail.into(),
    }
}

fn credentials_refused(detail: &str) -> AttemptError {
    AttemptError::Session(VerifyError::Configuration {
        reason: format!("the proxy refused the credentials ({detail})"),
    })
}

/// Classifies a judge's HTTP answer before its body is read; `None` means
/// the answer may hold an address.
pub(crate) fn classify_status(
    path: Path,
    status: StatusCode,
    headers: &HeaderMap,
) -> Option<AttemptError> {
    if path == Path::ForwardedByGateway {
        if status == StatusCode::PROXY_AUTHENTICATION_REQUIRED {
            return Some(credentials_refused("HTTP 407"));
        }
        let error_headers = provider_errors(headers);
        if !error_headers.is_empty() || GATEWAY_STATUSES.contains(&status.as_u16()) {
            let detail = if error_headers.is_empty() {
                format!("the gateway answered HTTP {status}")
            } else {
                format!(
                    "the gateway answered HTTP {status} ({})",
                    error_headers.join("; ")
                )
            };
            return Some(gateway(Some(status.as_u16()), detail));
        }
    }
    if status.is_success() {
        None
    } else {
        Some(AttemptError::judge(format!("HTTP {status}")))
    }
}

/// The messages and I/O error kinds along an error's source chain.
fn chain(error: &(dyn StdError + 'static)) -> (Vec<String>, Vec<io::ErrorKind>) {
    let mut messages = Vec::new();
    let mut kinds = Vec::new();
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(error) = current {
        messages.push(error.to_string());
        if let Some(io_error) = error.downcast_ref::<io::Error>() {
            kinds.push(io_error.kind());
        }
        current = error.source();
    }
    (messages, kinds)
}

/// What a transport error (a request that got no HTTP answer) says about
/// the proxy, recognised in one place for every crate that sends requests
/// through a proxy (the judge verifier and `proxy-client`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportFailureKind {
    /// The request timed out.
    Timeout,
    /// The proxy refused our credentials (407 to CONNECT, SOCKS5 auth).
    ProxyAuthRejected,
    /// The gateway refused to open the tunnel (a non-200 answer to CONNECT,
    /// a SOCKS5 failure reply).
    GatewayRefused,
    /// Through SOCKS5: the destination refused the gateway's connection.
    DestinationRefused,
    /// The proxy could not be reached, or the tunnel broke while opening.
    ProxyUnreachable,
    /// An established connection was reset or closed mid-request.
    ConnectionLost,
    /// Anything else (TLS, DNS, protocol errors).
    Other,
}

/// A classified transport error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportFailure {
    /// What happened.
    pub kind: TransportFailureKind,
    /// The error chain, for logs (reqwest errors hold no credentials).
    pub detail: String,
}

/// Classifies a transport error from a request sent through a proxy.
///
/// reqwest keeps the CONNECT and SOCKS5 errors of hyper-util private, so
/// they are recognised by their messages; the end-to-end tests against
/// `testkit`'s gateway cover every one, so a change in a dependency shows.
pub fn classify_transport_error(error: &reqwest::Error) -> TransportFailure {
    let (messages, kinds) = chain(error);
    let detail = messages.join(": ");
    let kind = transport_kind(error, &messages, &kinds);
    TransportFailure { kind, detail }
}

fn transport_kind(
    error: &reqwest::Error,
    messages: &[String],
    kinds: &[io::ErrorKind],
) -> TransportFailureKind {
    if error.is_timeout() {
        return TransportFailureKind::Timeout;
    }
    let says = |needle: &str| messages.iter().any(|m| m.contains(needle));
    if says("proxy authorization required")
        || says("SOCKS error: credentials not accepted")
        || says("SOCKS error: server does not support user/pass")
    {
        return TransportFailureKind::ProxyAuthRejected;
    }
    if says("tunnel error: unsuccessful") {
        return TransportFailureKind::GatewayRefused;
    }
    for status in [
        "general server failure",
        "connection not allowed",
        "network unreachable",
        "host unreachable",
        "ttl expired",
    ] {
        if says(&format!("SOCKS error: {status}")) {
            return TransportFailureKind::GatewayRefused;
        }
    }
    if says("SOCKS error: connection refused") {
        return TransportFailureKind::DestinationRefused;
    }
    let unreachable_kinds = [
        io::ErrorKind::ConnectionRefused,
        io::ErrorKind::ConnectionReset,
        io::ErrorKind::ConnectionAborted,
        io::ErrorKind::NotConnected,
        io::ErrorKind::AddrNotAvailable,
        io::ErrorKind::HostUnreachable,
        io::ErrorKind::NetworkUnreachable,
    ];
    let tunnel_broke = says("tunnel error: unexpected end of file")
        || says("tunnel error: io error")
        || says("tunnel error: failed to create underlying connection")
        || says("SOCKS error: failed to create underlying connection")
        || says("SOCKS error: io error during SOCKS handshake")
        || (says("error connecting to socks proxy") && says("unexpected eof"));
    let tls_failed = kinds.contains(&io::ErrorKind::InvalidData);
    if tunnel_broke
        || (error.is_connect()
            && !tls_failed
            && kinds.iter().any(|k| unreachable_kinds.contains(k)))
    {
        return TransportFailureKind::ProxyUnreachable;
    }
    let lost_kinds = [
        io::ErrorKind::ConnectionReset,
        io::ErrorKind::ConnectionAborted,
        io::ErrorKind::BrokenPipe,
        io::ErrorKind::UnexpectedEof,
    ];
    if !error.is_connect()
        && (kinds.iter().any(|k| lost_kinds.contains(k))
            || says("connection closed before message completed")
            || says("connection reset"))
    {
        return TransportFailureKind::ConnectionLost;
    }
    TransportFailureKind::Other
}

/// Classifies a transport error (no HTTP answer) of a judge request.
pub(crate) fn classify_transport(path: Path, error: &reqwest::Error) -> AttemptError {
    let (messages, kinds) = chain(error);
    let summary = messages.last().cloned().unwrap_or_default();
    let failure = TransportFailure {
        kind: transport_kind(error, &messages, &kinds),
        detail: messages.join(": "),
    };
    if failure.kind == TransportFailureKind::Timeout {
        return AttemptError::Judge {
            reason: "no answer in time".to_owned(),
            timeout: true,
        };
    }
    if path != Path::Direct {
        match failure.kind {
            TransportFailureKind::ProxyAuthRejected => {
                let what = if failure.detail.contains("SOCKS") {
                    "SOCKS5 authentication"
                } else {
                    "HTTP 407 to CONNECT"
                };
                return credentials_refused(what);
            }
            TransportFailureKind::GatewayRefused => {
                let detail = match failure.detail.split("SOCKS error: ").nth(1) {
                    Some(status) => format!(
                        "the SOCKS5 gateway answered: {}",
                        status.split(": ").next().unwrap_or(status)
                    ),
                    None => "the gateway refused the CONNECT tunnel".to_owned(),
                };
                return gateway(None, detail);
            }
            TransportFailureKind::DestinationRefused => {
                return AttemptError::judge("the judge refused the gateway's connection");
            }
            TransportFailureKind::ProxyUnreachable => {
                return unreachable(format!("cannot reach the proxy: {summary}"));
            }
            _ => {}
        }
        if path == Path::ForwardedByGateway && !error.is_connect() {
            // The connection is to the gateway itself: it hung up on us.
            return unreachable(format!("the gateway closed the connection: {summary}"));
        }
    }
    AttemptError::judge(failure.detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn with(name: &'static str, value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn proxy_status_counts_only_with_an_error() {
        let ok = with("proxy-status", "gw.example; received-status=200");
        assert!(classify_status(Path::ForwardedByGateway, StatusCode::OK, &ok).is_none());
        let failed = with(
            "proxy-status",
            "gw.example; error=destination_ip_unroutable",
        );
        assert!(matches!(
            classify_status(Path::ForwardedByGateway, StatusCode::OK, &failed),
            Some(AttemptError::Gateway { .. })
        ));
        let brd = with("x-brd-error", "No peers available");
        assert_eq!(provider_errors(&brd), ["x-brd-error: No peers available"]);
    }
}
