//! Configuration: the TOML file, then the environment, then flags.
//!
//! | what | file | environment | flag |
//! |---|---|---|---|
//! | store | `[store] url` | `PROXYCTL_STORE` | `--store` |
//! | app id | `app_id` | `PROXYCTL_APP` | `--app` |
//! | acquire-loop settings | `[settings]` | `PROXY_*` (proxy-core) | `--ttl`, `--judge` |
//! | provider | `[provider]` | `PROXYCTL_PROVIDER_PASSWORD` | `--provider`, `--gateway`, `--username`, `--password`, `--country` |
//! | judge options | `[judge]` | — | `--allow-private-ips`, `--ca-file` |

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use proxy_core::{ProxyProvider, Settings};
use proxy_judge::{ClientOptions, JudgeVerifier};
use proxy_providers::{ProviderConfig, ProviderKind};
use serde::Deserialize;

use crate::cli::{JudgeArgs, ProviderArgs, StoreArgs};
use crate::error::{CliError, register_secret};
use crate::store_url::{OpenStore, StoreUrl};

/// The app id used when none is configured.
pub(crate) const DEFAULT_APP_ID: &str = "proxyctl";

/// The config file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    /// Application id recorded with reservations.
    #[serde(default)]
    pub(crate) app_id: Option<String>,
    /// `[store]`.
    #[serde(default)]
    pub(crate) store: Option<StoreSection>,
    /// `[settings]`: `proxy_core::Settings`.
    #[serde(default)]
    pub(crate) settings: Option<Settings>,
    /// `[provider]`: `proxy_providers::ProviderConfig`.
    #[serde(default)]
    pub(crate) provider: Option<ProviderConfig>,
    /// `[judge]`: verifier options.
    #[serde(default)]
    pub(crate) judge: JudgeSection,
}

/// `[store]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoreSection {
    /// Store URL.
    pub(crate) url: Option<String>,
}

/// `[judge]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JudgeSection {
    /// Per-judge request timeout, seconds.
    pub(crate) timeout: Option<f64>,
    /// Ask the next judge after this many seconds without an answer.
    pub(crate) hedge_delay: Option<f64>,
    /// Accept private and loopback exit addresses.
    #[serde(default)]
    pub(crate) allow_private_ips: bool,
    /// Reject proxies whose exit is our own address.
    #[serde(default)]
    pub(crate) anonymity_check: bool,
    /// Extra trusted root certificates (PEM file).
    pub(crate) ca_file: Option<PathBuf>,
}

/// The loaded configuration (file and environment; flags are applied by
/// the methods that take them).
#[derive(Debug, Default)]
pub(crate) struct Config {
    file: ConfigFile,
}

impl Config {
    /// Reads `path` if given; an explicitly named file that is missing is an
    /// error.
    pub(crate) fn load(path: Option<&Path>) -> Result<Self, CliError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| CliError::ConfigRead {
            path: path.to_owned(),
            source,
        })?;
        let file: ConfigFile = toml::from_str(&text).map_err(|source| CliError::ConfigParse {
            path: path.to_owned(),
            source,
        })?;
        if let Some(password) = file.provider.as_ref().and_then(|p| p.password.as_ref()) {
            register_secret(proxy_core::secrecy::ExposeSecret::expose_secret(password));
        }
        let store_url = file.store.as_ref().and_then(|s| s.url.as_deref());
        for password in store_url
            .map(crate::store_url::url_passwords)
            .unwrap_or_default()
        {
            register_secret(&password);
        }
        Ok(Self { file })
    }

    /// The store URL: flag or `PROXYCTL_STORE` (clap reads both), else the
    /// file's `[store] url`.
    pub(crate) fn store_url(&self, args: &StoreArgs) -> Result<StoreUrl, CliError> {
        self.store_url_or(args.store.as_deref())?
            .ok_or(CliError::Missing {
                what: "the store",
                hint: "pass --store URL, set PROXYCTL_STORE, or set [store] url in the --config file",
            })
    }

    /// Opens the store [`Config::store_url`] names; returns its URL too (for
    /// output, redacted).
    pub(crate) async fn open_store(
        &self,
        args: &StoreArgs,
    ) -> Result<(StoreUrl, OpenStore), CliError> {
        let url = self.store_url(args)?;
        let store = url.open().await?;
        Ok((url, store))
    }

    /// Like [`Config::store_url`], `None` when nothing is configured.
    pub(crate) fn store_url_or(&self, flag: Option<&str>) -> Result<Option<StoreUrl>, CliError> {
        let text = flag.or_else(|| self.file.store.as_ref().and_then(|s| s.url.as_deref()));
        let Some(text) = text else { return Ok(None) };
        let url = StoreUrl::parse(text)?;
        for password in url.passwords() {
            register_secret(&password);
        }
        Ok(Some(url))
    }

    /// The app id: flag or `PROXYCTL_APP`, else the file, else `proxyctl`.
    pub(crate) fn app_id(&self, flag: Option<&str>) -> String {
        flag.or(self.file.app_id.as_deref())
            .unwrap_or(DEFAULT_APP_ID)
            .to_owned()
    }

    /// `[settings]`, overridden by the `PROXY_*` environment variables and
    /// then by `--judge`.
    pub(crate) fn settings(&self, judges: &JudgeArgs) -> Result<Settings, CliError> {
        let mut settings = self
            .file
            .settings
            .clone()
            .unwrap_or_default()
            .with_process_env()?;
        if !judges.judges.is_empty() {
            let list = judges.judges.join(",");
            settings = settings
                .with_env_vars([("PROXY_JUDGES", list.as_str())])
                .map_err(|error| CliError::BadValue {
                    what: "--judge",
                    value: list.clone(),
                    reason: error.to_string(),
                })?;
        }
        Ok(settings)
    }

    /// The provider: `[provider]`, the password from
    /// `PROXYCTL_PROVIDER_PASSWORD` (clap puts it in `--password`), then
    /// the flags.
    pub(crate) fn provider(&self, args: &ProviderArgs) -> Result<Arc<dyn ProxyProvider>, CliError> {
        let config = self.provider_config(
            args.provider.as_deref(),
            args.username.as_deref(),
            args.password.as_deref(),
            args.country.as_deref(),
            None,
        )?;
        let mut config = config.ok_or(CliError::Missing {
            what: "the provider",
            hint: "set [provider] in the --config file or pass --provider NAME --username U --password PW",
        })?;
        if let Some(gateway) = &args.gateway {
            let (host, port) = split_host_port(gateway)?;
            config.host = Some(host);
            config.port = Some(port);
        }
        Ok(config.build()?)
    }

    /// The merged provider configuration, `None` when neither the file nor
    /// the flags name a provider.
    pub(crate) fn provider_config(
        &self,
        provider: Option<&str>,
        username: Option<&str>,
        password: Option<&str>,
        country: Option<&str>,
        protocol: Option<&str>,
    ) -> Result<Option<ProviderConfig>, CliError> {
        if let Some(password) = password {
            register_secret(password);
        }
        let mut config = match (self.file.provider.clone(), provider) {
            (Some(mut config), Some(name)) => {
                config.provider = name.parse::<ProviderKind>()?;
                config
            }
            (Some(config), None) => config,
            (None, Some(name)) => {
                let mut config = ProviderConfig::new(name.parse::<ProviderKind>()?, "", "");
                config.username = None;
                config.password = None;
                config
            }
            (None, None) => return Ok(None),
        };
        if let Some(username) = username {
            config.username = Some(username.to_owned());
        }
        if let Some(password) = password {
            config.password = Some(password.to_owned().into());
        }
        if let Some(country) = country {
            config.country = Some(country.to_owned());
        }
        if let Some(protocol) = protocol {
            config.protocol = protocol
                .parse()
                .map_err(|source| CliError::InvalidArgument {
                    what: "protocol",
                    source,
                })?;
        }
        Ok(Some(config))
    }

    /// The verifier: judges from [`Config::settings`], options from
    /// `[judge]` and the flags.
    pub(crate) fn verifier(
        &self,
        settings: &Settings,
        args: &JudgeArgs,
    ) -> Result<JudgeVerifier, CliError> {
        let section = &self.file.judge;
        let mut builder = JudgeVerifier::builder()
            .settings(settings)
            .allow_private_ips(args.allow_private_ips || section.allow_private_ips)
            .anonymity_check(section.anonymity_check)
            .client_options(self.client_options(args)?.max_redirects(3));
        if let Some(timeout) = section.timeout {
            builder = builder.timeout(seconds("[judge] timeout", timeout)?);
        }
        if let Some(delay) = section.hedge_delay {
            builder = builder.hedge_delay(seconds("[judge] hedge_delay", delay)?);
        }
        Ok(builder.build()?)
    }

    /// HTTP client options with the extra roots of `--ca-file` or
    /// `[judge] ca_file`.
    pub(crate) fn client_options(&self, args: &JudgeArgs) -> Result<ClientOptions, CliError> {
        let mut options = ClientOptions::default();
        let ca_file = args.ca_file.as_ref().or(self.file.judge.ca_file.as_ref());
        if let Some(path) = ca_file {
            let pem = std::fs::read(path).map_err(|source| CliError::ConfigRead {
                path: path.clone(),
                source,
            })?;
            options = options.add_root_certificate_pem(pem)?;
        }
        Ok(options)
    }
}

/// A positive number of seconds.
pub(crate) fn seconds(what: &'static str, value: f64) -> Result<Duration, CliError> {
    if !(value.is_finite() && value > 0.0) {
        return Err(CliError::BadValue {
            what,
            value: value.to_string(),
            reason: "must be a positive number of seconds".to_owned(),
        });
    }
    Duration::try_from_secs_f64(value).map_err(|e| CliError::BadValue {
        what,
        value: value.to_string(),
        reason: e.to_string(),
    })
}

/// `host:port`, `[v6]:port`.
pub(crate) fn split_host_port(text: &str) -> Result<(String, u16), CliError> {
    let bad = |reason: &str| CliError::BadValue {
        what: "gateway",
        value: text.to_owned(),
        reason: reason.to_owned(),
    };
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| bad("expected HOST:PORT"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad("expected HOST:PORT"));
    }
    let port: u16 = port.parse().map_err(|_| bad("the port must be 1-65535"))?;
    if port == 0 {
        return Err(bad("the port must be 1-65535"));
    }
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn example_config_parses() {
        let text = include_str!("../proxyctl.example.toml");
        let file: ConfigFile = toml::from_str(text).unwrap();
        assert!(file.store.unwrap().url.is_some());
        assert!(file.provider.unwrap().build().is_ok());
        assert!(file.settings.is_some());
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<ConfigFile>("[store]\nurl = \"memory://\"\nuri = 1").is_err());
        assert!(toml::from_str::<ConfigFile>("[settings]\nttl = 5").is_err());
    }

    #[test]
    fn host_port() {
        assert_eq!(
            split_host_port("127.0.0.1:8080").unwrap(),
            ("127.0.0.1".to_owned(), 8080)
        );
        assert_eq!(split_host_port("[::1]:80").unwrap(), ("::1".to_owned(), 80));
        assert!(split_host_port("host").is_err());
        assert!(split_host_port("host:0").is_err());
    }
}
