//! The tool's error type, its exit codes, and the one-line error report.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Mutex, OnceLock};

use proxy_core::{AcquireError, InvalidInput, SettingsError, StoreError};
use proxy_judge::JudgeError;
use proxy_providers::ProviderError;
use testkit::net::NetError;

use crate::store_url::StoreUrlError;

/// Exit codes, as documented in `--help` and the README.
pub(crate) mod exit {
    /// The command failed (acquire gave up, nothing to release, no judge
    /// answered, a benchmark could not run).
    pub(crate) const FAILURE: u8 = 1;
    /// Bad command line: unknown flag, missing or invalid argument value
    /// (clap uses 2 too).
    pub(crate) const USAGE: u8 = 2;
    /// Bad configuration: config file missing or invalid, unknown store
    /// scheme, provider settings, credentials refused (407), store schema
    /// missing.
    pub(crate) const CONFIGURATION: u8 = 3;
    /// The store could not be reached, or a write's outcome is unknown.
    pub(crate) const STORE_UNAVAILABLE: u8 = 4;
    /// The demo or `bench acquire` saw two holders of one exit IP at once.
    pub(crate) const INVARIANT_VIOLATED: u8 = 5;
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// An argument value is invalid (domain, app id, TTL…).
    #[error("invalid {what}")]
    InvalidArgument {
        /// Which argument.
        what: &'static str,
        /// Why.
        #[source]
        source: InvalidInput,
    },
    /// An argument value is invalid, without a typed source.
    #[error("invalid {what} {value:?}: {reason}")]
    BadValue {
        /// Which argument.
        what: &'static str,
        /// The value (never a secret).
        value: String,
        /// Why.
        reason: String,
    },
    /// The config file could not be read.
    #[error("cannot read config file {}", path.display())]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid.
    #[error("invalid config file {}", path.display())]
    ConfigParse {
        /// The file.
        path: PathBuf,
        /// The TOML error (with line and column).
        #[source]
        source: toml::de::Error,
    },
    /// A required setting is missing.
    #[error("{what} is not configured: {hint}")]
    Missing {
        /// What is missing.
        what: &'static str,
        /// How to set it.
        hint: &'static str,
    },
    /// The store URL is not usable.
    #[error(transparent)]
    StoreUrl(#[from] StoreUrlError),
    /// Opening the store failed.
    #[error("cannot open store {url}")]
    StoreOpen {
        /// The URL, password redacted.
        url: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// A store operation failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Acquiring a proxy failed.
    #[error(transparent)]
    Acquire(#[from] AcquireError),
    /// The provider settings are invalid.
    #[error("invalid provider settings")]
    Provider(#[from] ProviderError),
    /// The acquire-loop settings are invalid.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The judge settings are invalid, or the judge server could not start.
    #[error(transparent)]
    Judge(#[from] JudgeError),
    /// The in-process fake network could not start.
    #[error("cannot start the fake network")]
    FakeNetwork(#[from] NetError),
    /// `release` found nothing active with that id.
    #[error("no active reservation has id {id}")]
    NotHeld {
        /// The id asked for.
        id: String,
    },
    /// `judges check` got no answer from any judge.
    #[error("no judge answered ({asked} asked)")]
    NoJudgeAnswered {
        /// How many were asked.
        asked: usize,
    },
    /// Two workers held one exit IP for the domain at the same time.
    #[error("invariant violated: {overlaps} overlapping holds of the same exit IP")]
    Overlaps {
        /// Overlapping pairs.
        overlaps: usize,
    },
    /// Workers stopped before finishing the jobs.
    #[error("{what}")]
    Incomplete {
        /// What did not finish.
        what: String,
    },
    /// Reading a file, writing output, or waiting for a signal failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl CliError {
    /// The exit code for this error.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::InvalidArgument { .. } | CliError::BadValue { .. } => exit::USAGE,
            CliError::ConfigRead { .. }
            | CliError::ConfigParse { .. }
            | CliError::Missing { .. }
            | CliError::StoreUrl(_)
            | CliError::Provider(_)
            | CliError::Settings(_)
            | CliError::Judge(_) => exit::CONFIGURATION,
            CliError::StoreOpen { source, .. } | CliError::Store(source) => store_code(source),
            CliError::Acquire(error) => match error {
                AcquireError::Configuration { .. } | AcquireError::Provider { .. } => {
                    exit::CONFIGURATION
                }
                AcquireError::Store { source, .. } => store_code(source),
                _ => exit::FAILURE,
            },
            CliError::Overlaps { .. } => exit::INVARIANT_VIOLATED,
            CliError::FakeNetwork(_)
            | CliError::NotHeld { .. }
            | CliError::NoJudgeAnswered { .. }
            | CliError::Incomplete { .. }
            | CliError::Io { .. } => exit::FAILURE,
        }
    }
}

/// Acquire errors after which no worker can make progress (bad
/// configuration, provider settings, or a failing store): the demo and
/// `bench acquire` stop every worker on them.
pub(crate) fn is_fatal(error: &AcquireError) -> bool {
    matches!(
        error,
        AcquireError::Configuration { .. }
            | AcquireError::Provider { .. }
            | AcquireError::Store { .. }
    )
}

fn store_code(error: &StoreError) -> u8 {
    match error {
        StoreError::Unavailable { .. } | StoreError::OutcomeUnknown { .. } => {
            exit::STORE_UNAVAILABLE
        }
        StoreError::Configuration { .. } => exit::CONFIGURATION,
        StoreError::InvalidInput(_) => exit::USAGE,
        _ => exit::FAILURE,
    }
}

/// Passwords met while running (store URLs, provider settings, `--via`):
/// every error line is scrubbed of them before it is printed, whatever a
/// driver put into its message.
fn secrets() -> &'static Mutex<Vec<String>> {
    static SECRETS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(|| Mutex::new(Vec::new()))
}

/// What `ProxyUrl::expose_url` percent-encodes in credentials.
const USERINFO: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Remembers `secret` (and its percent-encoded form) for [`scrub`].
pub(crate) fn register_secret(secret: &str) {
    // Very short secrets would scrub ordinary words; they are still never
    // printed by our own code.
    if secret.len() < 3 {
        return;
    }
    let form_encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let percent_encoded = percent_encoding::utf8_percent_encode(secret, USERINFO).to_string();
    if let Ok(mut list) = secrets().lock() {
        for s in [secret.to_owned(), form_encoded, percent_encoded] {
            if !list.contains(&s) {
                list.push(s);
            }
        }
    }
}

/// `text` with every registered secret replaced by `***`.
pub(crate) fn scrub(text: &str) -> String {
    let mut text = text.to_owned();
    if let Ok(list) = secrets().lock() {
        for secret in list.iter() {
            text = text.replace(secret.as_str(), "***");
        }
    }
    text
}

/// The error and its sources on one line, `a: b: c`, leaving out a source
/// whose text the line already holds, scrubbed of secrets.
pub(crate) fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    scrub(&line.replace('\n', " "))
}

/// Prints `error` as one line on stderr and returns its exit code.
pub(crate) fn report(error: &CliError) -> ExitCode {
    eprintln!("proxyctl: error: {}", one_line(error));
    ExitCode::from(error.exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_scrubbed_from_error_lines() {
        register_secret("p@ss word");
        let error = CliError::BadValue {
            what: "thing",
            value: "x".into(),
            reason: "saw p@ss word and p%40ss+word".into(),
        };
        let line = one_line(&error);
        assert!(!line.contains("p@ss"), "{line}");
        assert!(line.contains("saw *** and ***"), "{line}");
    }

    #[test]
    fn codes() {
        assert_eq!(
            CliError::Overlaps { overlaps: 1 }.exit_code(),
            exit::INVARIANT_VIOLATED
        );
        assert_eq!(
            CliError::Store(StoreError::Unavailable {
                store: "x",
                source: "down".into()
            })
            .exit_code(),
            exit::STORE_UNAVAILABLE
        );
    }
}
