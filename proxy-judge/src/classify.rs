//! Telling a proxy's failure from a judge's, so the acquire loop knows
//! whether to stop, take a new session, or just ask another judge.

use std::error::Error as StdError;
use std::io;

use proxy_core::{ProxyFailure, VerifyError};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

/// Headers gateways add to their own error answers (see PROVIDERS.md):
/// Bright Data, legacy Luminati, Oxylabs, RFC 9209.
pub(crate) const PROVIDER_ERROR_HEADERS: [&str; 6] = [
    "x-brd-error",
    "x-brd-err-code",
    "x-brd-err-msg",
    "x-luminati-error",
    "x-error-description",
    "proxy-status",
];

/// Statuses a gateway answers for a session it cannot serve.
const GATEWAY_STATUSES: [u16; 4] = [502, 503, 522, 525];

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
        let error_headers: Vec<String> = PROVIDER_ERROR_HEADERS
            .iter()
            .filter_map(|name| {
                let value = headers.get(*name)?;
                Some(format!(
                    "{name}: {}",
                    String::from_utf8_lossy(value.as_bytes())
                ))
            })
            .collect();
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

/// Classifies a transport error (no HTTP answer).
///
/// reqwest keeps the CONNECT and SOCKS5 errors of hyper-util private, so
/// they are recognised by their messages; the end-to-end tests against
/// `testkit`'s gateway cover every one, so a change in a dependency shows.
pub(crate) fn classify_transport(path: Path, error: &reqwest::Error) -> AttemptError {
    if error.is_timeout() {
        return AttemptError::Judge {
            reason: "no answer in time".to_owned(),
            timeout: true,
        };
    }
    let (messages, kinds) = chain(error);
    let says = |needle: &str| messages.iter().any(|m| m.contains(needle));
    let summary = messages.last().cloned().unwrap_or_default();
    let full = messages.join(": ");

    if path != Path::Direct {
        if says("proxy authorization required") {
            return credentials_refused("HTTP 407 to CONNECT");
        }
        if says("SOCKS error: credentials not accepted")
            || says("SOCKS error: server does not support user/pass")
        {
            return credentials_refused("SOCKS5 authentication");
        }
        if says("tunnel error: unsuccessful") {
            return gateway(None, "the gateway refused the CONNECT tunnel");
        }
        for status in [
            "general server failure",
            "connection not allowed",
            "network unreachable",
            "host unreachable",
            "ttl expired",
        ] {
            if says(&format!("SOCKS error: {status}")) {
                return gateway(None, format!("the SOCKS5 gateway answered: {status}"));
            }
        }
        if says("SOCKS error: connection refused") {
            return AttemptError::judge("the judge refused the gateway's connection");
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
            return unreachable(format!("cannot reach the proxy: {summary}"));
        }
        if path == Path::ForwardedByGateway && !error.is_connect() {
            // The connection is to the gateway itself: it hung up on us.
            return unreachable(format!("the gateway closed the connection: {summary}"));
        }
    }
    AttemptError::judge(full)
}
