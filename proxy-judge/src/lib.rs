#![doc = include_str!("../README.md")]

mod answer;
mod classify;
mod client;
mod error;
mod health;
pub mod server;
mod verifier;

pub use answer::{AnswerError, DEFAULT_MAX_ANSWER_BYTES, is_public, parse_answer};
pub use classify::{
    GATEWAY_STATUSES, PROVIDER_ERROR_HEADERS, TransportFailure, TransportFailureKind,
    classify_transport_error, provider_errors, proxy_status_error,
};
pub use client::{ClientOptions, DEFAULT_USER_AGENT, RootCertificate, client_for, direct_client};
pub use error::JudgeError;
pub use health::JudgeStatus;
pub use verifier::{
    DEFAULT_COOL_OFF, DEFAULT_DEMOTE_AFTER, DEFAULT_HEDGE_DELAY, DEFAULT_JUDGE_TIMEOUT,
    JudgeVerifier, JudgeVerifierBuilder,
};

/// Re-exported so users build clients and certificates with the same version.
pub use reqwest;
