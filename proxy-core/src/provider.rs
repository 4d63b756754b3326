//! The provider abstraction: how a gateway URL is built for a session.

use std::fmt::Debug;
use std::sync::Arc;

use crate::input::InvalidInput;
use crate::proxy::{ProxyUrl, SessionId};

/// A residential proxy provider: one gateway, with the session id (and the
/// targeting) carried in the proxy credentials.
///
/// Implementations are pure: building a URL does no I/O. Only
/// [`build_proxy_url`](ProxyProvider::build_proxy_url) is required.
///
/// ```
/// use proxy_core::{InvalidInput, ProxyData, ProxyProvider, ProxyUrl, SessionId};
///
/// #[derive(Debug)]
/// struct MyGateway(ProxyData);
///
/// impl ProxyProvider for MyGateway {
///     fn build_proxy_url(&self, session: &SessionId) -> Result<ProxyUrl, InvalidInput> {
///         ProxyUrl::from_gateway(&self.0).with_credentials(
///             format!("{}-session-{session}", self.0.username()),
///             self.0.password().clone(),
///         )
///     }
///     fn port(&self) -> u16 {
///         self.0.port()
///     }
/// }
///
/// let gw = MyGateway(ProxyData::new("gw.example", 8000, "acme", "secret")?);
/// let url = gw.build_proxy_url(&SessionId::new("abc123")?)?;
/// assert_eq!(url.username(), Some("acme-session-abc123"));
/// assert_eq!(gw.label(), "custom:any:8000");
/// # Ok::<(), InvalidInput>(())
/// ```
pub trait ProxyProvider: Send + Sync + Debug + 'static {
    /// Builds the proxy URL that pins `session` to one exit.
    ///
    /// Fails when the session id breaks the provider's rules or the
    /// resulting credentials cannot be used (for example the SOCKS5 length
    /// limit).
    fn build_proxy_url(&self, session: &SessionId) -> Result<ProxyUrl, InvalidInput>;

    /// A fresh session id in this provider's alphabet and length.
    ///
    /// The default is 32 lower-case hex characters.
    fn new_session_id(&self) -> SessionId {
        SessionId::random_hex()
    }

    /// A short provider name for labels (`"brightdata"`, `"oxylabs"`…).
    fn name(&self) -> &str {
        "custom"
    }

    /// The lower-case country this provider targets, if any.
    fn country(&self) -> Option<&str> {
        None
    }

    /// The gateway port, for labels.
    fn port(&self) -> u16 {
        0
    }

    /// A credential-free label for logs and metrics:
    /// `provider:country:port` (`any` when no country is targeted).
    fn label(&self) -> String {
        format!(
            "{}:{}:{}",
            self.name(),
            self.country().unwrap_or("any"),
            self.port()
        )
    }
}

macro_rules! forward_provider {
    ($ty:ty) => {
        impl<T: ProxyProvider + ?Sized> ProxyProvider for $ty {
            fn build_proxy_url(&self, session: &SessionId) -> Result<ProxyUrl, InvalidInput> {
                (**self).build_proxy_url(session)
            }
            fn new_session_id(&self) -> SessionId {
                (**self).new_session_id()
            }
            fn name(&self) -> &str {
                (**self).name()
            }
            fn country(&self) -> Option<&str> {
                (**self).country()
            }
            fn port(&self) -> u16 {
                (**self).port()
            }
            fn label(&self) -> String {
                (**self).label()
            }
        }
    };
}

forward_provider!(Arc<T>);
forward_provider!(Box<T>);
