//! Properties of every provider: generated session ids obey the provider's
//! rule, `build_proxy_url` accepts exactly the ids that do, and every URL
//! parses back (with the `url` crate and `ProxyUrl::parse`) into the same
//! username and password for arbitrary credentials.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use percent_encoding::percent_decode_str;
use proptest::prelude::*;
use proxy_core::{InvalidInput, Protocol, ProxyProvider, ProxyUrl, SessionId};
use proxy_providers::{ProviderConfig, ProviderError, ProviderKind};
use secrecy::ExposeSecret;

/// Every kind with a username that passes its account checks.
fn provider(
    kind: ProviderKind,
    user: &str,
    password: &str,
    protocol: Protocol,
) -> Result<Arc<dyn ProxyProvider>, ProviderError> {
    let user = match kind {
        ProviderKind::BrightData => format!("brd-customer-{user}"),
        ProviderKind::BrightDataLegacy => format!("lum-customer-{user}"),
        _ => user.to_owned(),
    };
    let mut config = ProviderConfig::new(kind, user, password);
    config.protocol = protocol;
    if kind == ProviderKind::Template {
        config.host = Some("gw.example".into());
        config.port = Some(8000);
        config.username_template = Some("{username}-s-{session}".into());
    }
    if kind == ProviderKind::BrightDataLegacy && protocol == Protocol::Socks5h {
        config.port = Some(22228);
    }
    config.build()
}

fn supports_socks(kind: ProviderKind) -> bool {
    kind.protocols().contains(&Protocol::Socks5h)
}

/// The documented rules, written out independently of the crate's
/// `SessionRule` so the two can disagree.
fn obeys_documented_rule(kind: ProviderKind, id: &str) -> bool {
    let alphanumeric = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric());
    match kind {
        ProviderKind::NetNut => {
            id.bytes().all(|b| b.is_ascii_digit())
                && !id.starts_with('0')
                && id
                    .parse::<u64>()
                    .is_ok_and(|n| (10_000..=999_999_999).contains(&n))
        }
        ProviderKind::IpRoyal => alphanumeric && id.len() == 8,
        // Documented as alphanumeric (or undocumented); default max 32.
        _ => alphanumeric && id.len() <= 32,
    }
}

fn decode(text: &str) -> String {
    percent_decode_str(text).decode_utf8().unwrap().into_owned()
}

#[test]
fn generated_session_ids_obey_each_providers_rule() {
    for kind in ProviderKind::ALL {
        let provider = provider(kind, "acme", "pw", Protocol::Http).unwrap();
        for _ in 0..2000 {
            let id = provider.new_session_id();
            assert!(
                obeys_documented_rule(kind, id.as_str()),
                "{kind}: generated {id:?}"
            );
            provider.build_proxy_url(&id).unwrap();
        }
    }
}

#[test]
fn generated_session_ids_differ() {
    for kind in ProviderKind::ALL {
        let provider = provider(kind, "acme", "pw", Protocol::Http).unwrap();
        let ids: std::collections::HashSet<_> =
            (0..500).map(|_| provider.new_session_id()).collect();
        // NetNut draws from ~1e9 numbers, the others from 62^8 or more:
        // a collision in 500 draws has probability below 1e-3.
        assert!(ids.len() >= 499, "{kind}: {} distinct of 500", ids.len());
    }
}

/// Reserved URL characters, percent signs, spaces and non-ASCII text.
fn credential() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9@:%/#?&=+ !$'()*,;\\[\\]{}<>\"\\\\^|._~é中😀-]{1,40}",
        "\\PC{1,40}",
    ]
}

/// The same without `:` (HTTP Basic cannot carry it in a username) and `-`
/// (so no random username holds a marker such as `-session-`).
fn account_name() -> impl Strategy<Value = String> {
    credential().prop_map(|s| s.replace([':', '-'], "x"))
}

fn session_id() -> impl Strategy<Value = String> {
    prop_oneof![
        "[!-~]{1,40}",
        "[a-zA-Z0-9]{1,40}",
        "[a-zA-Z0-9]{8}",
        "[0-9]{1,11}",
    ]
}

/// Targeting words, including the providers' own marker words.
fn targeting_word() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("session".to_owned()),
        Just("sessid".to_owned()),
        Just("sid".to_owned()),
        Just("sessionid".to_owned()),
        Just("lifetime".to_owned()),
        "[a-z0-9]{1,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn session_placement_finds_the_session_whatever_the_targeting(
        city in targeting_word(),
        state in targeting_word(),
    ) {
        let configs = [
            (ProviderKind::BrightData, "brd-customer-c1-zone-z1", Some(city.clone()), None),
            (ProviderKind::Oxylabs, "acme", Some(city.clone()), Some(state.clone())),
            (ProviderKind::NetNut, "acme", Some(city.clone()), Some(state.clone())),
            (ProviderKind::IpRoyal, "acme", None, Some(state.clone())),
            (ProviderKind::Soax, "1", Some(city.clone()), Some(state.clone())),
        ];
        for (kind, user, city, state) in configs {
            let mut config = ProviderConfig::new(kind, user, "pw");
            config.country = Some("us".into());
            config.city = city;
            config.state = state;
            let provider = config.build().unwrap_or_else(|e| panic!("{kind}: {e}"));
            let session = provider.new_session_id();
            let url = provider.build_proxy_url(&session).unwrap();
            let found = kind.session_placement().unwrap().find(
                url.username().unwrap(),
                url.password().unwrap().expose_secret(),
            );
            prop_assert_eq!(found, Some(session.as_str()), "{}: {}", kind, url);
        }
    }

    #[test]
    fn session_max_len_is_respected(max_len in 1usize..=128) {
        for kind in [
            ProviderKind::BrightData,
            ProviderKind::Oxylabs,
            ProviderKind::Decodo,
            ProviderKind::Soax,
            ProviderKind::Template,
        ] {
            let mut config = ProviderConfig::new(kind, "acme", "pw");
            if kind == ProviderKind::BrightData {
                config.zone = Some("z1".into());
            }
            if kind == ProviderKind::Template {
                config.host = Some("gw.example".into());
                config.port = Some(8000);
                config.username_template = Some("{username}-{session}".into());
            }
            config.session_id_max_len = Some(max_len);
            let provider = config.build().unwrap();
            let id = provider.new_session_id();
            prop_assert!(id.as_str().len() <= max_len && !id.as_str().is_empty());
            prop_assert!(id.as_str().bytes().all(|b| b.is_ascii_alphanumeric()));
            let at_limit = SessionId::new("a".repeat(max_len)).unwrap();
            prop_assert!(provider.build_proxy_url(&at_limit).is_ok());
            if max_len < 128 {
                let over = SessionId::new("a".repeat(max_len + 1)).unwrap();
                let rejected = matches!(
                    provider.build_proxy_url(&over),
                    Err(InvalidInput::SessionId { .. })
                );
                prop_assert!(rejected);
            }
        }
    }

    #[test]
    fn build_accepts_exactly_the_documented_session_ids(id in session_id()) {
        let session = SessionId::new(id.clone()).unwrap();
        for kind in ProviderKind::ALL {
            let provider = provider(kind, "acme", "pw", Protocol::Http).unwrap();
            let result = provider.build_proxy_url(&session);
            if obeys_documented_rule(kind, &id) {
                prop_assert!(result.is_ok(), "{} rejected {:?}: {:?}", kind, id, result);
            } else {
                let rejected = matches!(result, Err(InvalidInput::SessionId { ref value, .. }) if *value == id);
                prop_assert!(rejected, "{} accepted {:?}", kind, id);
            }
        }
    }

    #[test]
    fn every_url_parses_back_to_the_same_credentials(
        user in account_name(),
        password in credential(),
        socks in any::<bool>(),
    ) {
        for kind in ProviderKind::ALL {
            let protocol = if socks && supports_socks(kind) { Protocol::Socks5h } else { Protocol::Http };
            let password = match kind {
                // Decodo account passwords cannot contain `@` or `:`.
                ProviderKind::Decodo | ProviderKind::Smartproxy => password.replace(['@', ':'], "x"),
                // IPRoyal appends `_…-` parameters: keep the markers out.
                ProviderKind::IpRoyal => password.replace('_', "x"),
                _ => password.clone(),
            };
            let provider = provider(kind, &user, &password, protocol)
                .unwrap_or_else(|e| panic!("{kind}: {e}"));
            let url = provider.build_proxy_url(&provider.new_session_id()).unwrap();
            let built_user = url.username().unwrap().to_owned();
            let built_password = url.password().unwrap().expose_secret().to_owned();
            // The account credentials survive inside the built ones.
            prop_assert!(built_user.contains(&user), "{}: {:?} lost {:?}", kind, built_user, user);
            prop_assert!(built_password.starts_with(&password));

            let exposed = url.expose_url();
            let parsed = url::Url::parse(&exposed).unwrap();
            prop_assert_eq!(parsed.scheme(), protocol.scheme());
            prop_assert_eq!(parsed.host_str(), Some(url.host()));
            prop_assert_eq!(parsed.port(), Some(url.port()));
            prop_assert_eq!(decode(parsed.username()), built_user.clone());
            prop_assert_eq!(decode(parsed.password().unwrap()), built_password.clone());
            prop_assert_eq!(parsed.path(), if protocol.scheme() == "http" { "/" } else { "" });

            let reparsed = ProxyUrl::parse(&exposed).unwrap();
            prop_assert_eq!(reparsed.username(), Some(built_user.as_str()));
            prop_assert_eq!(reparsed.password().unwrap().expose_secret(), built_password.as_str());
            prop_assert_eq!(reparsed.protocol(), protocol);
        }
    }

    #[test]
    fn urls_never_show_the_password(password in "\\PC{0,30}") {
        // `@` and `:` are not valid in Decodo passwords.
        let password = format!("Zq9SECRET{}", password.replace(['@', ':'], "x"));
        let encoded = url::form_urlencoded::byte_serialize(password.as_bytes()).collect::<String>();
        for kind in ProviderKind::ALL {
            let provider = provider(kind, "acme", &password, Protocol::Http).unwrap();
            let url = provider.build_proxy_url(&provider.new_session_id()).unwrap();
            let shown = format!("{url} {url:?} {provider:?} {} {}", url.redacted(), provider.label());
            prop_assert!(!shown.contains("Zq9SECRET"), "{}: {}", kind, shown);
            prop_assert!(!shown.contains(&encoded));
        }
    }

    #[test]
    fn socks5_limit_is_checked_on_the_final_credentials(len in 1usize..300) {
        let user = "a".repeat(len);
        let oxy = provider(ProviderKind::Oxylabs, &user, "pw", Protocol::Socks5h).unwrap();
        let session = SessionId::new("abc123").unwrap();
        let final_len = format!("customer-{user}-sessid-abc123").len();
        let result = oxy.build_proxy_url(&session);
        prop_assert_eq!(result.is_ok(), final_len <= 255, "{} bytes", final_len);
        if final_len > 255 {
            let username_rejected = matches!(result, Err(InvalidInput::Credential { field: "username", .. }));
            prop_assert!(username_rejected);
        }
        // Over HTTP there is no such limit.
        let http = provider(ProviderKind::Oxylabs, &user, "pw", Protocol::Http).unwrap();
        prop_assert!(http.build_proxy_url(&session).is_ok());

        // IPRoyal's parameters count against the password's 255 bytes.
        let password = "p".repeat(len);
        let royal = provider(ProviderKind::IpRoyal, "acme", &password, Protocol::Socks5h).unwrap();
        let session = SessionId::new("abcd1234").unwrap();
        let final_len = format!("{password}_session-abcd1234_lifetime-10m").len();
        let result = royal.build_proxy_url(&session);
        prop_assert_eq!(result.is_ok(), final_len <= 255);
        if let Err(err) = result {
            let password_rejected = matches!(err, InvalidInput::Credential { field: "password", .. });
            prop_assert!(password_rejected);
            prop_assert!(!err.to_string().contains(&password));
        }
    }
}
