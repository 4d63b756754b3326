//! `demo` (placeholder until proxy-client lands).

use crate::cli::DemoArgs;
use crate::config::Config;
use crate::error::CliError;

/// `demo`.
pub(crate) async fn run(_config: &Config, _args: &DemoArgs, _json: bool) -> Result<(), CliError> {
    Ok(())
}
