//! `judges check` and `serve-judge`.

use std::time::{Duration, Instant};

use proxy_core::ProxyUrl;
use proxy_core::secrecy::ExposeSecret;
use proxy_judge::reqwest;
use proxy_judge::{DEFAULT_MAX_ANSWER_BYTES, client_for, direct_client, is_public, parse_answer};
use serde::Serialize;

use crate::cli::{JudgesCheckArgs, ServeJudgeArgs};
use crate::config::{Config, seconds};
use crate::error::{CliError, one_line, register_secret};
use crate::output::{ms, print, print_json, table};

/// One judge's answer.
#[derive(Debug, Serialize)]
struct JudgeAnswer {
    judge: String,
    ok: bool,
    ip: Option<String>,
    public: Option<bool>,
    status: Option<u16>,
    latency_ms: f64,
    error: Option<String>,
}

/// `judges check`.
pub(crate) async fn check(
    config: &Config,
    args: &JudgesCheckArgs,
    json: bool,
) -> Result<(), CliError> {
    let settings = config.settings(&args.judges)?;
    let mut options = config
        .client_options(&args.judges)?
        .timeout(seconds("--timeout", args.timeout)?)
        .max_redirects(3);
    options.connect_timeout = Some(options.timeout.unwrap_or(Duration::from_secs(10)));
    let via = args.via.as_deref().map(parse_via).transpose()?;
    let client = match &via {
        Some(proxy) => client_for(proxy, &options)?,
        None => direct_client(&options)?,
    };
    let asks = settings.judges.iter().map(|judge| ask(&client, judge));
    let answers = futures::future::join_all(asks).await;
    let answered = answers.iter().filter(|a| a.ok).count();
    let route = via
        .as_ref()
        .map_or_else(|| "direct".to_owned(), ProxyUrl::redacted);
    if json {
        #[derive(Serialize)]
        struct Report<'a> {
            via: &'a str,
            answered: usize,
            asked: usize,
            judges: &'a [JudgeAnswer],
        }
        print_json(&Report {
            via: &route,
            answered,
            asked: answers.len(),
            judges: &answers,
        })?;
    } else {
        let mut out = table(["judge", "answer", "IP seen", "latency"]);
        for answer in &answers {
            let seen = match (&answer.ip, answer.public) {
                (Some(ip), Some(false)) => format!("{ip} (not public)"),
                (Some(ip), _) => ip.clone(),
                (None, _) => "—".to_owned(),
            };
            out.add_row([
                answer.judge.clone(),
                match &answer.error {
                    None => "ok".to_owned(),
                    Some(error) => error.clone(),
                },
                seen,
                format!("{:.1} ms", answer.latency_ms),
            ]);
        }
        print(format!("judges asked {route}:"))?;
        print(out)?;
        print(format!("{answered} of {} judges answered", answers.len()))?;
    }
    if answered == 0 {
        return Err(CliError::NoJudgeAnswered {
            asked: answers.len(),
        });
    }
    Ok(())
}

/// Asks one judge and reads its answer.
async fn ask(client: &reqwest::Client, judge: &str) -> JudgeAnswer {
    let started = Instant::now();
    let mut answer = JudgeAnswer {
        judge: judge.to_owned(),
        ok: false,
        ip: None,
        public: None,
        status: None,
        latency_ms: 0.0,
        error: None,
    };
    let result = async {
        let response = client.get(judge).send().await.map_err(|e| one_line(&e))?;
        let status = response.status();
        answer.status = Some(status.as_u16());
        if status == reqwest::StatusCode::PROXY_AUTHENTICATION_REQUIRED {
            return Err("the proxy refused the credentials (407)".to_owned());
        }
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        let body = response.bytes().await.map_err(|e| one_line(&e))?;
        parse_answer(&body, DEFAULT_MAX_ANSWER_BYTES).map_err(|e| e.to_string())
    }
    .await;
    answer.latency_ms = ms(started.elapsed());
    match result {
        Ok(ip) => {
            answer.ok = true;
            answer.public = Some(is_public(ip));
            answer.ip = Some(ip.to_string());
        }
        Err(error) => answer.error = Some(error),
    }
    answer
}

/// Parses `--via` and registers its password for scrubbing.
///
/// `ProxyUrl::parse` percent-decodes the credentials (a `+` stays a `+`)
/// and redacts them in its own errors, so the password it holds is the one
/// to keep out of every output line.
fn parse_via(text: &str) -> Result<ProxyUrl, CliError> {
    let proxy = ProxyUrl::parse(text).map_err(|source| CliError::InvalidArgument {
        what: "--via proxy URL",
        source,
    })?;
    if let Some(password) = proxy.password() {
        register_secret(password.expose_secret());
    }
    Ok(proxy)
}

/// `serve-judge`: serves until Ctrl-C (or SIGTERM).
pub(crate) async fn serve(args: &ServeJudgeArgs, json: bool) -> Result<(), CliError> {
    let server = proxy_judge::server::bind(args.listen).await?;
    let addr = server.local_addr();
    if json {
        #[derive(Serialize)]
        struct Listening {
            listen: String,
            judges: [String; 3],
        }
        print_json(&Listening {
            listen: addr.to_string(),
            judges: [
                format!("http://{addr}/ip"),
                format!("http://{addr}/json"),
                format!("http://{addr}/"),
            ],
        })?;
    } else {
        print(format!(
            "judge listening on {addr}: http://{addr}/ip (httpbin), http://{addr}/json (ipify), \
             http://{addr}/ (plain text); Ctrl-C stops"
        ))?;
    }
    shutdown_signal().await?;
    server.shutdown().await;
    Ok(())
}

/// Waits for Ctrl-C or, on Unix, SIGTERM.
async fn shutdown_signal() -> Result<(), CliError> {
    let io = |source| CliError::Io {
        what: "waiting for a shutdown signal".to_owned(),
        source,
    };
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(io)?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.map_err(io),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map_err(io)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::error::scrub;

    #[test]
    fn via_password_with_plus_is_scrubbed() {
        let proxy = parse_via("http://user:vi+a%2Bpw@127.0.0.1:8080").unwrap();
        assert_eq!(
            proxy.password().map(|p| p.expose_secret().to_owned()),
            Some("vi+a+pw".to_owned())
        );
        let line = scrub("proxy said vi+a+pw, sent as vi%2Ba%2Bpw");
        assert_eq!(line, "proxy said ***, sent as ***");
    }
}
