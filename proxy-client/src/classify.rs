//! Classifying a response: is the proxy banned, rate limited, challenged,
//! broken — or did the site simply answer?
//!
//! [`Classifier::classify`] is a pure function of status, headers and body,
//! so it can be tested on recorded responses.

use std::collections::BTreeSet;
use std::fmt;
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::Serialize;

/// Bot-protection vendors whose challenge pages we recognise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CaptchaVendor {
    /// Google reCAPTCHA (including Google's own "unusual traffic" page).
    Recaptcha,
    /// hCaptcha.
    Hcaptcha,
    /// Cloudflare challenge pages and Turnstile.
    Cloudflare,
    /// DataDome.
    DataDome,
    /// PerimeterX / HUMAN.
    PerimeterX,
    /// Akamai Bot Manager.
    Akamai,
    /// A marker added by the user.
    Other,
}

impl fmt::Display for CaptchaVendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CaptchaVendor::Recaptcha => "recaptcha",
            CaptchaVendor::Hcaptcha => "hcaptcha",
            CaptchaVendor::Cloudflare => "cloudflare",
            CaptchaVendor::DataDome => "datadome",
            CaptchaVendor::PerimeterX => "perimeterx",
            CaptchaVendor::Akamai => "akamai",
            CaptchaVendor::Other => "other",
        })
    }
}

/// What one request attempt tells us.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "signal", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Signal {
    /// The site answered (any status not listed below, including 404).
    Success,
    /// The site refused this exit IP (403 by default).
    Blocked {
        /// The status.
        status: u16,
    },
    /// The site asks us to slow down (429 by default).
    RateLimited {
        /// The `Retry-After` the site sent, if any and parseable.
        retry_after: Option<Duration>,
    },
    /// A CAPTCHA or bot challenge page.
    Captcha {
        /// Whose challenge it is.
        vendor: CaptchaVendor,
    },
    /// The gateway refused our credentials (407): a configuration error.
    ProxyAuthRequired,
    /// The gateway failed for this session (502, 503, 522, 525 or a
    /// provider error header).
    GatewayError {
        /// The status, when there was a response.
        status: Option<u16>,
        /// The provider's error header, if it sent one (`name: value`).
        provider_error: Option<String>,
    },
    /// The proxy could not be reached or dropped the connection.
    ProxyFailed,
    /// The request timed out.
    Timeout,
    /// The site failed (a 5xx that is not a gateway status).
    TargetError {
        /// The status.
        status: u16,
    },
}

impl Signal {
    /// The signal without its data, for counters.
    pub fn kind(&self) -> SignalKind {
        match self {
            Signal::Success => SignalKind::Success,
            Signal::Blocked { .. } => SignalKind::Blocked,
            Signal::RateLimited { .. } => SignalKind::RateLimited,
            Signal::Captcha { .. } => SignalKind::Captcha,
            Signal::ProxyAuthRequired => SignalKind::ProxyAuthRequired,
            Signal::GatewayError { .. } => SignalKind::GatewayError,
            Signal::ProxyFailed => SignalKind::ProxyFailed,
            Signal::Timeout => SignalKind::Timeout,
            Signal::TargetError { .. } => SignalKind::TargetError,
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Signal::Success => f.write_str("success"),
            Signal::Blocked { status } => write!(f, "blocked ({status})"),
            Signal::RateLimited {
                retry_after: Some(d),
            } => {
                write!(f, "rate limited (retry after {}s)", d.as_secs())
            }
            Signal::RateLimited { retry_after: None } => f.write_str("rate limited"),
            Signal::Captcha { vendor } => write!(f, "captcha ({vendor})"),
            Signal::ProxyAuthRequired => f.write_str("proxy authentication required (407)"),
            Signal::GatewayError {
                status,
                provider_error,
            } => {
                f.write_str("gateway error")?;
                if let Some(status) = status {
                    write!(f, " ({status})")?;
                }
                if let Some(e) = provider_error {
                    write!(f, ": {e}")?;
                }
                Ok(())
            }
            Signal::ProxyFailed => f.write_str("proxy failed"),
            Signal::Timeout => f.write_str("timeout"),
            Signal::TargetError { status } => write!(f, "target error ({status})"),
        }
    }
}

/// [`Signal`] without data: the key of every per-signal counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SignalKind {
    /// See [`Signal::Success`].
    Success,
    /// See [`Signal::Blocked`].
    Blocked,
    /// See [`Signal::RateLimited`].
    RateLimited,
    /// See [`Signal::Captcha`].
    Captcha,
    /// See [`Signal::ProxyAuthRequired`].
    ProxyAuthRequired,
    /// See [`Signal::GatewayError`].
    GatewayError,
    /// See [`Signal::ProxyFailed`].
    ProxyFailed,
    /// See [`Signal::Timeout`].
    Timeout,
    /// See [`Signal::TargetError`].
    TargetError,
}

impl SignalKind {
    /// Every kind, in a stable order.
    pub const ALL: [SignalKind; 9] = [
        SignalKind::Success,
        SignalKind::Blocked,
        SignalKind::RateLimited,
        SignalKind::Captcha,
        SignalKind::ProxyAuthRequired,
        SignalKind::GatewayError,
        SignalKind::ProxyFailed,
        SignalKind::Timeout,
        SignalKind::TargetError,
    ];

    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            SignalKind::Success => "success",
            SignalKind::Blocked => "blocked",
            SignalKind::RateLimited => "rate_limited",
            SignalKind::Captcha => "captcha",
            SignalKind::ProxyAuthRequired => "proxy_auth_required",
            SignalKind::GatewayError => "gateway_error",
            SignalKind::ProxyFailed => "proxy_failed",
            SignalKind::Timeout => "timeout",
            SignalKind::TargetError => "target_error",
        }
    }

    /// Whether the attempt counts as a failure of the target for the
    /// circuit breaker (every kind but success and the configuration error,
    /// which says nothing about the site).
    pub fn is_target_failure(self) -> bool {
        !matches!(self, SignalKind::Success | SignalKind::ProxyAuthRequired)
    }
}

impl fmt::Display for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a CAPTCHA marker is looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MarkerLocation {
    /// A response header whose value contains `contains` (case-insensitive;
    /// an empty `contains` matches any value).
    Header {
        /// Header name (case-insensitive).
        name: String,
        /// Substring of the value.
        contains: String,
    },
    /// A substring of the body (case-insensitive, within the scanned prefix).
    Body {
        /// The substring.
        contains: String,
    },
}

/// A sign of a CAPTCHA or bot challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptchaMarker {
    /// Whose challenge it indicates.
    pub vendor: CaptchaVendor,
    /// Where to look.
    pub location: MarkerLocation,
    /// Only count it on an error status (≥ 400). Widgets such as reCAPTCHA
    /// also appear on ordinary forms, so their markers count only when the
    /// site refused the request.
    pub error_status_only: bool,
}

impl CaptchaMarker {
    /// A header marker.
    pub fn header(vendor: CaptchaVendor, name: &str, contains: &str) -> Self {
        Self {
            vendor,
            location: MarkerLocation::Header {
                name: name.to_ascii_lowercase(),
                contains: contains.to_ascii_lowercase(),
            },
            error_status_only: false,
        }
    }

    /// A body marker.
    pub fn body(vendor: CaptchaVendor, contains: &str) -> Self {
        Self {
            vendor,
            location: MarkerLocation::Body {
                contains: contains.to_ascii_lowercase(),
            },
            error_status_only: false,
        }
    }

    /// Counts the marker only on an error status.
    pub fn on_error_status_only(mut self) -> Self {
        self.error_status_only = true;
        self
    }

    fn matches(&self, status: StatusCode, headers: &HeaderMap, body_lower: &str) -> bool {
        if self.error_status_only && status.as_u16() < 400 {
            return false;
        }
        match &self.location {
            MarkerLocation::Header { name, contains } => {
                headers.get_all(name.as_str()).iter().any(|v| {
                    v.to_str()
                        .map(|v| v.to_ascii_lowercase().contains(contains.as_str()))
                        .unwrap_or(false)
                })
            }
            MarkerLocation::Body { contains } => body_lower.contains(contains.as_str()),
        }
    }
}

/// The markers recognised by default.
pub fn default_captcha_markers() -> Vec<CaptchaMarker> {
    use CaptchaVendor::*;
    vec![
        // Challenge pages: unambiguous on any status.
        CaptchaMarker::header(Cloudflare, "cf-mitigated", "challenge"),
        CaptchaMarker::body(Cloudflare, "<title>just a moment...</title>"),
        CaptchaMarker::body(
            Cloudflare,
            "challenges.cloudflare.com/cdn-cgi/challenge-platform",
        ),
        CaptchaMarker::body(Cloudflare, "window._cf_chl_opt"),
        CaptchaMarker::body(DataDome, "captcha-delivery.com"),
        // DataDome tags every response of a protected site; only a refusal
        // carrying it is a challenge.
        CaptchaMarker::header(DataDome, "x-datadome", "").on_error_status_only(),
        CaptchaMarker::body(PerimeterX, "px-captcha"),
        CaptchaMarker::body(PerimeterX, "_pxcaptcha"),
        CaptchaMarker::body(Akamai, "sec-if-cpt-container"),
        CaptchaMarker::body(Akamai, "/_sec/cp_challenge/"),
        CaptchaMarker::body(Recaptcha, "our systems have detected unusual traffic"),
        // Widgets: also on ordinary forms, so only with an error status.
        CaptchaMarker::body(Recaptcha, "g-recaptcha").on_error_status_only(),
        CaptchaMarker::body(Recaptcha, "www.google.com/recaptcha/").on_error_status_only(),
        CaptchaMarker::body(Hcaptcha, "hcaptcha.com/1/api.js").on_error_status_only(),
        CaptchaMarker::body(Hcaptcha, "h-captcha").on_error_status_only(),
        CaptchaMarker::body(Cloudflare, "challenges.cloudflare.com/turnstile")
            .on_error_status_only(),
        CaptchaMarker::body(Cloudflare, "cf-turnstile").on_error_status_only(),
    ]
}

/// Provider headers that carry a gateway error, lower-case (the same list
/// the judge verifier uses).
pub use proxy_judge::PROVIDER_ERROR_HEADERS as GATEWAY_ERROR_HEADERS;

/// Turns responses into [`Signal`]s. The defaults follow the ban table of
/// the design; every list can be extended.
#[derive(Debug, Clone)]
pub struct Classifier {
    blocked: BTreeSet<u16>,
    rate_limited: BTreeSet<u16>,
    gateway: BTreeSet<u16>,
    gateway_headers: Vec<String>,
    captcha_markers: Vec<CaptchaMarker>,
    body_scan_bytes: usize,
}

impl Default for Classifier {
    fn default() -> Self {
        Self {
            blocked: BTreeSet::from([403]),
            rate_limited: BTreeSet::from([429]),
            gateway: BTreeSet::from(proxy_judge::GATEWAY_STATUSES),
            gateway_headers: GATEWAY_ERROR_HEADERS
                .iter()
                .map(|h| (*h).to_owned())
                .collect(),
            captcha_markers: default_captcha_markers(),
            body_scan_bytes: 64 * 1024,
        }
    }
}

impl Classifier {
    /// Also treat `status` as "blocked".
    pub fn with_blocked_status(mut self, status: u16) -> Self {
        self.blocked.insert(status);
        self
    }

    /// Also treat `status` as "rate limited".
    pub fn with_rate_limited_status(mut self, status: u16) -> Self {
        self.rate_limited.insert(status);
        self
    }

    /// Also treat `status` as a gateway error.
    pub fn with_gateway_status(mut self, status: u16) -> Self {
        self.gateway.insert(status);
        self
    }

    /// Also treat responses carrying header `name` as gateway errors.
    pub fn with_gateway_header(mut self, name: &str) -> Self {
        self.gateway_headers.push(name.to_ascii_lowercase());
        self
    }

    /// Adds a CAPTCHA marker.
    pub fn with_captcha_marker(mut self, marker: CaptchaMarker) -> Self {
        self.captcha_markers.push(marker);
        self
    }

    /// Removes every CAPTCHA marker of `vendor` (for sites whose ordinary
    /// pages trip one).
    pub fn without_captcha_vendor(mut self, vendor: CaptchaVendor) -> Self {
        self.captcha_markers.retain(|m| m.vendor != vendor);
        self
    }

    /// How much of the body is scanned for markers (default 64 KiB).
    pub fn with_body_scan_bytes(mut self, bytes: usize) -> Self {
        self.body_scan_bytes = bytes;
        self
    }

    /// Classifies a response.
    ///
    /// Order: 407 → provider error header → CAPTCHA → rate limit → block →
    /// gateway status → other 5xx → success. A CAPTCHA is checked before the
    /// status because challenge pages come as 403, 429 or 503.
    pub fn classify(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Signal {
        let code = status.as_u16();
        if code == 407 {
            return Signal::ProxyAuthRequired;
        }
        if let Some(provider_error) = self.provider_error(headers) {
            return Signal::GatewayError {
                status: Some(code),
                provider_error: Some(provider_error),
            };
        }
        let scanned = &body[..body.len().min(self.body_scan_bytes)];
        let body_lower = String::from_utf8_lossy(scanned).to_lowercase();
        if let Some(marker) = self
            .captcha_markers
            .iter()
            .find(|m| m.matches(status, headers, &body_lower))
        {
            return Signal::Captcha {
                vendor: marker.vendor,
            };
        }
        if self.rate_limited.contains(&code) {
            return Signal::RateLimited {
                retry_after: retry_after(headers, SystemTime::now()),
            };
        }
        if self.blocked.contains(&code) {
            return Signal::Blocked { status: code };
        }
        if self.gateway.contains(&code) {
            return Signal::GatewayError {
                status: Some(code),
                provider_error: None,
            };
        }
        if status.is_server_error() {
            return Signal::TargetError { status: code };
        }
        Signal::Success
    }

    /// The first provider error header, as `name: value`. RFC 9209
    /// `Proxy-Status` counts only when it carries an `error=` parameter.
    fn provider_error(&self, headers: &HeaderMap) -> Option<String> {
        for name in &self.gateway_headers {
            if let Some(value) = headers.get(name.as_str()) {
                let value = String::from_utf8_lossy(value.as_bytes());
                return Some(format!(
                    "{name}: {}",
                    value.chars().take(200).collect::<String>()
                ));
            }
        }
        proxy_judge::proxy_status_error(headers)
            .map(|v| format!("proxy-status: {}", v.chars().take(200).collect::<String>()))
    }
}

/// Parses `Retry-After` as delay-seconds or an HTTP date relative to `now`.
/// A date in the past means "now" (zero).
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    fn classify(status: u16, hs: &[(&str, &str)], body: &str) -> Signal {
        Classifier::default().classify(
            StatusCode::from_u16(status).unwrap(),
            &headers(hs),
            body.as_bytes(),
        )
    }

    #[test]
    fn plain_statuses() {
        assert_eq!(classify(200, &[], "<html>ok</html>"), Signal::Success);
        assert_eq!(classify(404, &[], "not found"), Signal::Success);
        assert_eq!(classify(301, &[("location", "/x")], ""), Signal::Success);
        assert_eq!(
            classify(403, &[], "Forbidden"),
            Signal::Blocked { status: 403 }
        );
        assert_eq!(classify(407, &[], ""), Signal::ProxyAuthRequired);
        assert_eq!(
            classify(500, &[], "oops"),
            Signal::TargetError { status: 500 }
        );
        assert_eq!(classify(504, &[], ""), Signal::TargetError { status: 504 });
        for status in [502, 503, 522, 525] {
            assert_eq!(
                classify(status, &[], ""),
                Signal::GatewayError {
                    status: Some(status),
                    provider_error: None
                }
            );
        }
    }

    #[test]
    fn rate_limits_with_retry_after() {
        assert_eq!(
            classify(429, &[("retry-after", "7")], ""),
            Signal::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(
            classify(429, &[], ""),
            Signal::RateLimited { retry_after: None }
        );
        assert_eq!(
            classify(429, &[("retry-after", "soon")], ""),
            Signal::RateLimited { retry_after: None }
        );
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let hs = headers(&[("retry-after", "Sun, 06 Nov 1994 08:50:07 GMT")]);
        assert_eq!(retry_after(&hs, now), Some(Duration::from_secs(30)));
        let past = headers(&[("retry-after", "Sun, 06 Nov 1994 08:00:00 GMT")]);
        assert_eq!(retry_after(&past, now), Some(Duration::ZERO));
    }

    #[test]
    fn provider_error_headers() {
        let signal = classify(
            502,
            &[
                ("x-brd-error", "No peers available"),
                ("x-brd-err-code", "client_10000"),
            ],
            "",
        );
        assert_eq!(
            signal,
            Signal::GatewayError {
                status: Some(502),
                provider_error: Some("x-brd-error: No peers available".into())
            }
        );
        let signal = classify(
            200,
            &[("X-Luminati-Error", "Proxy Error: No peers available")],
            "",
        );
        assert!(matches!(signal, Signal::GatewayError { .. }), "{signal:?}");
        let signal = classify(525, &[("x-error-description", "no exit found")], "");
        assert!(matches!(
            signal,
            Signal::GatewayError {
                status: Some(525),
                ..
            }
        ));
        assert_eq!(
            classify(
                200,
                &[("proxy-status", "gw.example; received-status=200")],
                ""
            ),
            Signal::Success
        );
        assert!(matches!(
            classify(
                502,
                &[("proxy-status", "gw.example; error=connection_refused")],
                ""
            ),
            Signal::GatewayError { .. }
        ));
    }

    /// Recorded challenge pages (trimmed to their tell-tale parts).
    #[test]
    fn captcha_pages() {
        let cloudflare = r#"<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>
            <meta http-equiv="refresh" content="390"><script>(function(){window._cf_chl_opt={cvId: '3'}})</script>"#;
        assert_eq!(
            classify(
                403,
                &[("cf-mitigated", "challenge"), ("server", "cloudflare")],
                cloudflare
            ),
            Signal::Captcha {
                vendor: CaptchaVendor::Cloudflare
            }
        );
        assert_eq!(
            classify(503, &[], cloudflare),
            Signal::Captcha {
                vendor: CaptchaVendor::Cloudflare
            }
        );
        let turnstile = r#"<div class="cf-turnstile" data-sitekey="0x4AAAA"></div><script src="https://challenges.cloudflare.com/turnstile/v0/api.js"></script>"#;
        assert_eq!(
            classify(403, &[], turnstile),
            Signal::Captcha {
                vendor: CaptchaVendor::Cloudflare
            }
        );
        let datadome = r#"<html><body><script>var dd={'rt':'c','cid':'AHrlqAAAAAMA','hsh':'...','host':'geo.captcha-delivery.com'}</script>"#;
        assert_eq!(
            classify(403, &[("x-datadome", "protected")], datadome),
            Signal::Captcha {
                vendor: CaptchaVendor::DataDome
            }
        );
        let px = r#"<div id="px-captcha"></div><script>window._pxAppId='PXabc';</script>"#;
        assert_eq!(
            classify(403, &[], px),
            Signal::Captcha {
                vendor: CaptchaVendor::PerimeterX
            }
        );
        let akamai = r#"<div id="sec-if-cpt-container"><script src="/_sec/cp_challenge/ak-challenge-3-3.js"></script>"#;
        assert_eq!(
            classify(200, &[], akamai),
            Signal::Captcha {
                vendor: CaptchaVendor::Akamai
            }
        );
        let google = "<title>https://www.google.com/search</title>Our systems have detected unusual traffic from your computer network. <div class=\"g-recaptcha\"";
        assert_eq!(
            classify(429, &[], google),
            Signal::Captcha {
                vendor: CaptchaVendor::Recaptcha
            }
        );
        let hcaptcha = r#"<script src="https://hcaptcha.com/1/api.js" async defer></script><div class="h-captcha">"#;
        assert_eq!(
            classify(403, &[], hcaptcha),
            Signal::Captcha {
                vendor: CaptchaVendor::Hcaptcha
            }
        );
    }

    #[test]
    fn widgets_on_ordinary_pages_are_not_challenges() {
        let contact_form = r#"<form><div class="g-recaptcha" data-sitekey="6Lc"></div><script src="https://www.google.com/recaptcha/api.js"></script></form>"#;
        assert_eq!(classify(200, &[], contact_form), Signal::Success);
        assert_eq!(
            classify(403, &[], contact_form),
            Signal::Captcha {
                vendor: CaptchaVendor::Recaptcha
            }
        );
    }

    #[test]
    fn users_can_extend_and_trim() {
        let classifier = Classifier::default()
            .with_blocked_status(451)
            .with_rate_limited_status(420)
            .with_gateway_header("X-Gateway-Fault")
            .with_captcha_marker(CaptchaMarker::body(
                CaptchaVendor::Other,
                "prove you are human",
            ))
            .without_captcha_vendor(CaptchaVendor::Akamai);
        let ok = StatusCode::OK;
        assert_eq!(
            classifier.classify(StatusCode::from_u16(451).unwrap(), &HeaderMap::new(), b""),
            Signal::Blocked { status: 451 }
        );
        assert!(matches!(
            classifier.classify(StatusCode::from_u16(420).unwrap(), &HeaderMap::new(), b""),
            Signal::RateLimited { .. }
        ));
        assert!(matches!(
            classifier.classify(ok, &headers(&[("x-gateway-fault", "1")]), b""),
            Signal::GatewayError { .. }
        ));
        assert_eq!(
            classifier.classify(ok, &HeaderMap::new(), b"Please PROVE you are human"),
            Signal::Captcha {
                vendor: CaptchaVendor::Other
            }
        );
        assert_eq!(
            classifier.classify(ok, &HeaderMap::new(), b"<div id=\"sec-if-cpt-container\">"),
            Signal::Success
        );
    }

    #[test]
    fn body_scan_is_bounded() {
        let classifier = Classifier::default().with_body_scan_bytes(16);
        let body = format!("{}<title>Just a moment...</title>", " ".repeat(100));
        assert_eq!(
            classifier.classify(StatusCode::FORBIDDEN, &HeaderMap::new(), body.as_bytes()),
            Signal::Blocked { status: 403 }
        );
    }
}
