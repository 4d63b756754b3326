//! A fully read response.

use std::borrow::Cow;
use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use url::Url;

/// A response whose body has been read (the body is needed to recognise
/// CAPTCHA pages, so it is read before the response is judged).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Page {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
    /// Final URL (after redirects).
    pub url: Url,
    /// The exit IP the request left through.
    pub exit_ip: IpAddr,
    /// From sending to the end of the body.
    pub elapsed: Duration,
}

impl Page {
    /// Assembles a page (for solvers and tests).
    pub fn new(
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        url: Url,
        exit_ip: IpAddr,
        elapsed: Duration,
    ) -> Self {
        Self {
            status,
            headers,
            body,
            url,
            exit_ip,
            elapsed,
        }
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}
