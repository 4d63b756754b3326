//! The CAPTCHA hook.

use std::fmt::Debug;

use async_trait::async_trait;
use proxy_core::{BoxError, Proxy};

use crate::classify::CaptchaVendor;
use crate::page::Page;

/// A challenge met while scraping, handed to a [`CaptchaSolver`].
#[derive(Debug)]
#[non_exhaustive]
pub struct CaptchaChallenge<'a> {
    /// Whose challenge it is.
    pub vendor: CaptchaVendor,
    /// The challenge page.
    pub page: &'a Page,
    /// The proxy the page came through. A solver that talks to the site
    /// must use this proxy (`client`), or the site sees another address.
    pub proxy: &'a Proxy,
    /// The HTTP client bound to that proxy.
    pub client: &'a reqwest::Client,
}

/// What a solver achieved.
#[derive(Debug)]
#[non_exhaustive]
pub enum CaptchaOutcome {
    /// Solved, and this is the page the original request should have
    /// returned.
    Page(Box<Page>),
    /// Solved (for example a clearance cookie was obtained); send the
    /// original request again on the same proxy.
    Retry,
    /// Not solved: the session cools the IP down and rotates.
    Unsolved,
}

/// Solves CAPTCHAs (a service such as 2Captcha, or your own code).
///
/// Called by [`ProxySession`](crate::ProxySession) when a response is a
/// challenge page. Without a solver, a challenge cools the IP down and
/// rotates. An error counts as [`CaptchaOutcome::Unsolved`].
#[async_trait]
pub trait CaptchaSolver: Send + Sync + Debug + 'static {
    /// Tries to get past `challenge`.
    async fn solve(&self, challenge: &CaptchaChallenge<'_>) -> Result<CaptchaOutcome, BoxError>;
}
