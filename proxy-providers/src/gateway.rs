//! Documented gateway endpoints and the protocol/port checks made against them.

use proxy_core::{Protocol, ProxyData};

use crate::error::ProviderError;

/// A provider's documented gateway: the defaults used when the user gives no
/// host or port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gateway {
    /// Gateway host name.
    pub host: &'static str,
    /// Port for plain HTTP proxying (CONNECT for HTTPS targets).
    pub http_port: u16,
    /// Port for SOCKS5 with DNS at the proxy, where documented.
    pub socks5h_port: Option<u16>,
}

impl Gateway {
    /// The documented port for `protocol`, if there is one.
    pub fn port(&self, protocol: Protocol) -> Option<u16> {
        match protocol {
            Protocol::Http => Some(self.http_port),
            Protocol::Socks5h => self.socks5h_port,
            Protocol::Https | Protocol::Socks5 => None,
        }
    }

    /// `ProxyData` for this gateway with the documented port for `protocol`.
    pub(crate) fn data(
        &self,
        provider: &'static str,
        supported: &'static [Protocol],
        protocol: Protocol,
        username: String,
        password: secrecy::SecretString,
    ) -> Result<ProxyData, ProviderError> {
        check_protocol(provider, supported, protocol)?;
        let port = self.port(protocol).ok_or(ProviderError::Protocol {
            provider,
            protocol,
            supported,
        })?;
        Ok(ProxyData::new(self.host, port, username, password)?.with_protocol(protocol))
    }
}

/// Rejects a protocol the provider does not document.
pub(crate) fn check_protocol(
    provider: &'static str,
    supported: &'static [Protocol],
    protocol: Protocol,
) -> Result<(), ProviderError> {
    if supported.contains(&protocol) {
        Ok(())
    } else {
        Err(ProviderError::Protocol {
            provider,
            protocol,
            supported,
        })
    }
}

/// Rejects the protocol, and — on one of the provider's documented hosts —
/// the documented port of another protocol. Other ports pass: providers
/// also run country entry nodes and sticky-port ranges.
pub(crate) fn check_endpoint(
    provider: &'static str,
    supported: &'static [Protocol],
    gateways: &[Gateway],
    data: &ProxyData,
) -> Result<(), ProviderError> {
    check_protocol(provider, supported, data.protocol())?;
    for gateway in gateways.iter().filter(|g| g.host == data.host()) {
        let documented = [Some(gateway.http_port), gateway.socks5h_port];
        let Some(expected) = gateway.port(data.protocol()) else {
            continue;
        };
        if expected != data.port() && documented.contains(&Some(data.port())) {
            return Err(ProviderError::PortMismatch {
                provider,
                host: data.host().to_owned(),
                port: data.port(),
                protocol: data.protocol(),
                expected,
            });
        }
    }
    Ok(())
}
