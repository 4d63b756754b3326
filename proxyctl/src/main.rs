#![doc = include_str!("../README.md")]

mod bench;
mod cli;
mod config;
mod demo;
mod error;
mod holds;
mod judges;
mod local_network;
mod operations;
mod output;
mod provider;
mod store_url;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{BenchCommand, Cli, Command, JudgesCommand, ProviderCommand};
use crate::config::Config;
use crate::error::{CliError, exit, report};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // Help and version are not errors; everything else is usage (2).
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(exit::USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(source) => {
            return report(&CliError::Io {
                what: "starting the Tokio runtime".to_owned(),
                source,
            });
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => report(&error),
    }
}

/// Log output on stderr: `RUST_LOG` if set, else warnings, more with `-v`.
fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let config = Config::load(cli.config.as_deref())?;
    let json = cli.json;
    match &cli.command {
        Command::Demo(args) => demo::run(&config, args, json).await,
        Command::Migrate(args) => operations::migrate(&config, args, json).await,
        Command::Acquire(args) => operations::acquire(&config, args, json).await,
        Command::Release(args) => operations::release(&config, args, json).await,
        Command::List(args) => operations::list(&config, args, json).await,
        Command::Sweep(args) => operations::sweep(&config, args, json).await,
        Command::Judges(JudgesCommand::Check(args)) => judges::check(&config, args, json).await,
        Command::ServeJudge(args) => judges::serve(args, json).await,
        Command::Provider(ProviderCommand::Url(args)) => provider::url(&config, args, json),
        Command::Bench(BenchCommand::Store(args)) => bench::store(&config, args, json).await,
        Command::Bench(BenchCommand::Acquire(args)) => bench::acquire(&config, args, json).await,
    }
}
