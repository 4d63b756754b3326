//! `provider url`: the proxy URL a provider builds for a session.

use proxy_core::SessionId;
use serde::Serialize;

use crate::cli::ProviderUrlArgs;
use crate::config::Config;
use crate::error::CliError;
use crate::output::print;

/// What `provider url` prints.
#[derive(Debug, Serialize)]
struct ProviderUrl {
    provider: String,
    label: String,
    session: String,
    username: Option<String>,
    endpoint: String,
    /// The full URL; the password is `***` unless `--reveal`.
    url: String,
    revealed: bool,
}

/// `provider url`.
pub(crate) fn url(config: &Config, args: &ProviderUrlArgs, json: bool) -> Result<(), CliError> {
    let mut provider_config = config
        .provider_config(
            args.provider.as_deref(),
            args.username.as_deref(),
            args.password.as_deref(),
            args.country.as_deref(),
            args.protocol.as_deref(),
        )?
        .ok_or(CliError::Missing {
            what: "the provider",
            hint: "pass --provider NAME (or set [provider] in the --config file)",
        })?;
    if let Some(host) = &args.host {
        provider_config.host = Some(host.clone());
    }
    if let Some(port) = args.port {
        provider_config.port = Some(port);
    }
    let provider = provider_config.build()?;
    let session = match &args.session {
        Some(id) => SessionId::new(id.as_str()).map_err(|source| CliError::InvalidArgument {
            what: "--session",
            source,
        })?,
        None => provider.new_session_id(),
    };
    let url = provider
        .build_proxy_url(&session)
        .map_err(|source| CliError::InvalidArgument {
            what: "--session for this provider",
            source,
        })?;
    let shown = if args.reveal {
        url.expose_url()
    } else {
        url.redacted()
    };
    let report = ProviderUrl {
        provider: provider.name().to_owned(),
        label: provider.label(),
        session: session.to_string(),
        username: url.username().map(str::to_owned),
        endpoint: url.endpoint(),
        url: shown,
        revealed: args.reveal,
    };
    // The password is printed on purpose here, so it bypasses the scrubber.
    if json {
        let text = serde_json::to_string(&report).map_err(|e| CliError::Io {
            what: "encoding JSON".to_owned(),
            source: std::io::Error::other(e),
        })?;
        return print_revealed(&text, args.reveal);
    }
    print(format!("provider  {}", report.label))?;
    print(format!("session   {}", report.session))?;
    print(format!("endpoint  {}", report.endpoint))?;
    print_revealed(&format!("url       {}", report.url), args.reveal)
}

/// Prints `text`, scrubbed of secrets unless `reveal`.
fn print_revealed(text: &str, reveal: bool) -> Result<(), CliError> {
    if !reveal {
        return print(text);
    }
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{text}").map_err(|source| CliError::Io {
        what: "writing to stdout".to_owned(),
        source,
    })
}
