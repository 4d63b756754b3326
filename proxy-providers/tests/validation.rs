//! Every validation error path, and no password in any `Debug`, `Display`
//! or error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use proxy_core::{InvalidInput, Protocol, ProxyData, ProxyProvider, SessionId};
use proxy_providers::{
    BrightData, BrightDataOptions, CredentialSide, Decodo, DecodoOptions, IpRoyal, IpRoyalOptions,
    NetNut, NetNutOptions, NetNutPool, Oxylabs, OxylabsOptions, ProviderConfig, ProviderError,
    ProviderKind, Soax, SoaxOptions, Template, TemplateOptions,
};

const SECRET: &str = "Hunter2-S3CRET";

fn data(host: &str, port: u16, user: &str, country: Option<&str>) -> ProxyData {
    let data = ProxyData::new(host, port, user, SECRET).unwrap();
    match country {
        Some(cc) => data.with_country(cc).unwrap(),
        None => data,
    }
}

fn brd(country: Option<&str>) -> ProxyData {
    data(
        "brd.superproxy.io",
        33335,
        "brd-customer-c1-zone-z1",
        country,
    )
}

fn oxy(country: Option<&str>) -> ProxyData {
    data("pr.oxylabs.io", 7777, "acme", country)
}

fn template_data(country: Option<&str>) -> ProxyData {
    data("gw.example", 8000, "acme", country)
}

/// The error, checked to hide the password in `Display` and `Debug`.
fn err<T: std::fmt::Debug>(result: Result<T, ProviderError>) -> ProviderError {
    let err = result.unwrap_err();
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains(SECRET), "password leaked: {shown}");
        assert!(!shown.contains("S3CRET"), "password leaked: {shown}");
    }
    err
}

fn invalid_option(err: &ProviderError) -> (&'static str, &'static str, &str) {
    match err {
        ProviderError::InvalidOption {
            provider,
            option,
            value,
            ..
        } => (provider, option, value.as_str()),
        other => panic!("expected InvalidOption, got {other:?}"),
    }
}

fn requires(err: &ProviderError) -> (&'static str, &'static str) {
    match err {
        ProviderError::Requires {
            option, requires, ..
        } => (option, requires),
        other => panic!("expected Requires, got {other:?}"),
    }
}

// ---------------------------------------------------------------- protocols

#[test]
fn undocumented_protocols_are_refused() {
    let e = err(BrightData::from_data(
        brd(None).with_protocol(Protocol::Socks5),
        BrightDataOptions::default(),
    ));
    assert!(matches!(
        e,
        ProviderError::Protocol {
            provider: "brightdata",
            protocol: Protocol::Socks5,
            ..
        }
    ));
    assert!(e.to_string().contains("supported: http, socks5h"), "{e}");
    let e = err(Oxylabs::from_data(
        oxy(None).with_protocol(Protocol::Https),
        OxylabsOptions::default(),
    ));
    assert!(matches!(e, ProviderError::Protocol { .. }));
    let e = err(Soax::from_data(
        data("proxy.soax.com", 5000, "1", None).with_protocol(Protocol::Socks5h),
        SoaxOptions::default(),
    ));
    assert!(matches!(
        e,
        ProviderError::Protocol {
            provider: "soax",
            ..
        }
    ));
    // Templates take any protocol.
    for protocol in [
        Protocol::Http,
        Protocol::Https,
        Protocol::Socks5,
        Protocol::Socks5h,
    ] {
        Template::new(
            template_data(None).with_protocol(protocol),
            "{username}-{session}",
        )
        .unwrap();
    }
}

#[test]
fn documented_port_of_another_protocol_is_refused() {
    let e = err(NetNut::from_data(
        data("gw.netnut.net", 5959, "acme", None).with_protocol(Protocol::Socks5h),
        NetNutOptions::default(),
    ));
    match e {
        ProviderError::PortMismatch { port, expected, .. } => {
            assert_eq!((port, expected), (5959, 9595));
        }
        other => panic!("{other:?}"),
    }
    let e = err(BrightData::from_data(
        data("brd.superproxy.io", 22228, "brd-customer-c1-zone-z1", None),
        BrightDataOptions::default(),
    ));
    assert!(matches!(
        e,
        ProviderError::PortMismatch {
            expected: 33335,
            ..
        }
    ));
    let e = err(IpRoyal::from_data(
        data("geo.iproyal.com", 12321, "acme", None).with_protocol(Protocol::Socks5h),
        IpRoyalOptions::default(),
    ));
    assert!(matches!(
        e,
        ProviderError::PortMismatch {
            expected: 32325,
            ..
        }
    ));
    // Other ports (sticky ports, entry nodes, your own relay) are allowed.
    Oxylabs::from_data(
        data("pr.oxylabs.io", 10001, "acme", None),
        OxylabsOptions::default(),
    )
    .unwrap();
    NetNut::from_data(
        data("relay.example", 5959, "acme", None).with_protocol(Protocol::Socks5h),
        NetNutOptions::default(),
    )
    .unwrap();
}

// ---------------------------------------------------------------- countries

#[test]
fn countries_must_be_assigned_iso_codes() {
    let e = err(Decodo::from_data(
        data("gate.decodo.com", 7000, "acme", Some("UK")),
        DecodoOptions::default(),
    ));
    assert_eq!(invalid_option(&e), ("decodo", "country", "uk"));
    assert!(e.to_string().contains("\"gb\""), "{e}");
    let e = err(Oxylabs::from_data(
        oxy(Some("zz")),
        OxylabsOptions::default(),
    ));
    assert_eq!(invalid_option(&e), ("oxylabs", "country", "zz"));
    let e = err(Template::new(
        template_data(Some("xx")),
        "{username}-{country}-{session}",
    ));
    assert_eq!(invalid_option(&e).1, "country");
    // Malformed codes are rejected by the core before any provider sees them.
    let mut config = ProviderConfig::new(ProviderKind::NetNut, "acme", SECRET);
    config.country = Some("usa".into());
    assert!(matches!(
        err(config.build()),
        ProviderError::Input(InvalidInput::Country { .. })
    ));
}

// ---------------------------------------------------------------- Bright Data

#[test]
fn bright_data_targeting_errors() {
    let with = |country, options| BrightData::from_data(brd(country), options);
    for (option, options) in [
        (
            "state",
            BrightDataOptions {
                state: Some("ny".into()),
                ..Default::default()
            },
        ),
        (
            "city",
            BrightDataOptions {
                city: Some("newyork".into()),
                ..Default::default()
            },
        ),
        (
            "zip",
            BrightDataOptions {
                zip: Some("10001".into()),
                ..Default::default()
            },
        ),
    ] {
        assert_eq!(requires(&err(with(None, options))), (option, "country"));
    }
    let bad = |options: BrightDataOptions| err(with(Some("us"), options));
    for state in ["new", "n", "n1", ""] {
        let e = bad(BrightDataOptions {
            state: Some(state.into()),
            ..Default::default()
        });
        assert_eq!(invalid_option(&e), ("brightdata", "state", state));
    }
    for zip in ["1000", "100011", "abcde"] {
        let e = bad(BrightDataOptions {
            zip: Some(zip.into()),
            ..Default::default()
        });
        assert_eq!(invalid_option(&e).1, "zip");
    }
    for city in ["new york", "new-york", "new_york", "", "x:y"] {
        let e = bad(BrightDataOptions {
            city: Some(city.into()),
            ..Default::default()
        });
        assert_eq!(invalid_option(&e).1, "city", "{city:?}");
    }
    let e = bad(BrightDataOptions {
        city: Some("a".repeat(65)),
        ..Default::default()
    });
    assert_eq!(invalid_option(&e).1, "city");
    let e = bad(BrightDataOptions {
        asn: Some(0),
        ..Default::default()
    });
    assert_eq!(invalid_option(&e), ("brightdata", "asn", "0"));
    for max_len in [0, 129] {
        let e = bad(BrightDataOptions {
            session_id_max_len: Some(max_len),
            ..Default::default()
        });
        assert_eq!(invalid_option(&e).1, "session_id_max_len");
    }
}

#[test]
fn bright_data_account_errors() {
    let e = err(BrightData::new("c-1", "z1", SECRET));
    assert!(matches!(e, ProviderError::Username { value, .. } if value == "c-1"));
    let e = err(BrightData::new("", "z1", SECRET));
    assert!(matches!(e, ProviderError::Username { .. }));
    let e = err(BrightData::new("c1", "zone-1", SECRET));
    assert_eq!(invalid_option(&e), ("brightdata", "zone", "zone-1"));
    let e = err(BrightData::legacy("c1", "", SECRET));
    assert_eq!(invalid_option(&e).1, "zone");
    for username in [
        "hl_1234",
        "customer-c1-zone-z1",
        "brd-customer-c1:zone",
        "brd-customer-c1-zone-z1-session-x",
        "",
    ] {
        let e = err(BrightData::from_data(
            data("brd.superproxy.io", 33335, username, None),
            BrightDataOptions::default(),
        ));
        assert!(
            matches!(&e, ProviderError::Username { provider: "brightdata", value, .. } if value == username),
            "{username}: {e:?}"
        );
    }
    // A parameter given twice (in the username and as an option) is refused.
    let e = err(BrightData::from_data(
        data(
            "brd.superproxy.io",
            33335,
            "brd-customer-c1-zone-z1-country-de",
            Some("us"),
        ),
        BrightDataOptions::default(),
    ));
    assert!(e.to_string().contains("-country-"), "{e}");
}

// ---------------------------------------------------------------- Oxylabs

#[test]
fn oxylabs_errors() {
    for (option, options) in [
        (
            "city",
            OxylabsOptions {
                city: Some("los_angeles".into()),
                ..Default::default()
            },
        ),
        (
            "state",
            OxylabsOptions {
                state: Some("us_california".into()),
                ..Default::default()
            },
        ),
        (
            "zip",
            OxylabsOptions {
                zip: Some("90210".into()),
                ..Default::default()
            },
        ),
    ] {
        assert_eq!(
            requires(&err(Oxylabs::from_data(oxy(None), options))),
            (option, "country")
        );
    }
    let bad = |options| err(Oxylabs::from_data(oxy(Some("us")), options));
    let e = bad(OxylabsOptions {
        city: Some("los-angeles".into()),
        ..Default::default()
    });
    assert_eq!(invalid_option(&e), ("oxylabs", "city", "los-angeles"));
    let e = bad(OxylabsOptions {
        state: Some("new york".into()),
        ..Default::default()
    });
    assert_eq!(invalid_option(&e).1, "state");
    let e = bad(OxylabsOptions {
        zip: Some("902 10".into()),
        ..Default::default()
    });
    assert_eq!(invalid_option(&e).1, "zip");
    for lifetime in [0, 90, 1441 * 60] {
        let e = bad(OxylabsOptions {
            session_lifetime: Some(Duration::from_secs(lifetime)),
            ..Default::default()
        });
        assert_eq!(invalid_option(&e).1, "session_lifetime", "{lifetime}");
        assert!(
            e.to_string()
                .contains("whole number of minutes from 1 to 1440")
        );
    }
    for username in ["", "customer-", "a:b", "acme-sessid-1"] {
        let e = err(Oxylabs::from_data(
            data("pr.oxylabs.io", 7777, username, None),
            OxylabsOptions::default(),
        ));
        assert!(matches!(e, ProviderError::Username { .. }), "{username}");
    }
    let e = err(Oxylabs::from_data(
        data("pr.oxylabs.io", 7777, "acme-sesstime-5", None),
        OxylabsOptions {
            session_lifetime: Some(Duration::from_secs(600)),
            ..Default::default()
        },
    ));
    assert!(matches!(e, ProviderError::Username { .. }));
}

// ---------------------------------------------------------------- Decodo

#[test]
fn decodo_errors() {
    for bad in ["p@ss", "pa:ss"] {
        let data =
            ProxyData::new("gate.decodo.com", 7000, "acme", format!("{SECRET}{bad}")).unwrap();
        let e = err(Decodo::from_data(data, DecodoOptions::default()));
        assert!(matches!(
            e,
            ProviderError::Password {
                provider: "decodo",
                ..
            }
        ));
        assert!(!e.to_string().contains(bad), "{e}");
    }
    let decodo = |options| {
        err(Decodo::from_data(
            data("gate.decodo.com", 7000, "acme", None),
            options,
        ))
    };
    for lifetime in [0, 30, 1441 * 60] {
        let e = decodo(DecodoOptions {
            session_lifetime: Some(Duration::from_secs(lifetime)),
            ..Default::default()
        });
        assert_eq!(invalid_option(&e).1, "session_lifetime");
    }
    let e = decodo(DecodoOptions {
        session_id_max_len: Some(0),
        ..Default::default()
    });
    assert_eq!(invalid_option(&e).1, "session_id_max_len");
    let e = err(Decodo::new("acme-session-1", SECRET));
    assert!(matches!(e, ProviderError::Username { .. }));
}

// ---------------------------------------------------------------- NetNut

#[test]
fn netnut_errors() {
    let netnut = |country, options| {
        err(NetNut::from_data(
            data("gw.netnut.net", 5959, "acme", country),
            options,
        ))
    };
    let e = netnut(
        Some("us"),
        NetNutOptions {
            state: Some("alabama".into()),
            ..Default::default()
        },
    );
    assert_eq!(requires(&e), ("state", "city"));
    let e = netnut(
        Some("us"),
        NetNutOptions {
            city: Some("birmingham".into()),
            ..Default::default()
        },
    );
    assert_eq!(requires(&e), ("city", "state"));
    let both = NetNutOptions {
        state: Some("alabama".into()),
        city: Some("birmingham".into()),
        ..Default::default()
    };
    assert_eq!(requires(&netnut(None, both.clone())), ("state", "country"));
    let e = netnut(
        Some("us"),
        NetNutOptions {
            pool: NetNutPool::Mobile,
            ..both.clone()
        },
    );
    assert_eq!(invalid_option(&e), ("netnut", "pool", "mobile"));
    let e = netnut(
        Some("us"),
        NetNutOptions {
            city: Some("new york".into()),
            ..both
        },
    );
    assert_eq!(invalid_option(&e).1, "city");
    for username in ["acme-res-us", "acme-sid-1", "acme-stc-de", "a:b", ""] {
        let e = err(NetNut::new(username, SECRET));
        assert!(matches!(e, ProviderError::Username { .. }), "{username}");
    }
    let e = err("cellular".parse::<NetNutPool>());
    assert!(e.to_string().contains("residential, static, mobile"), "{e}");
    assert_eq!("STC".parse::<NetNutPool>().unwrap(), NetNutPool::Static);
}

// ---------------------------------------------------------------- IPRoyal

#[test]
fn iproyal_errors() {
    let royal = |country, options| {
        err(IpRoyal::from_data(
            data("geo.iproyal.com", 12321, "acme", country),
            options,
        ))
    };
    let e = royal(
        None,
        IpRoyalOptions {
            state: Some("california".into()),
            ..Default::default()
        },
    );
    assert_eq!(requires(&e), ("state", "country"));
    let e = royal(
        Some("us"),
        IpRoyalOptions {
            state: Some("new_york".into()),
            ..Default::default()
        },
    );
    assert_eq!(invalid_option(&e).1, "state");
    for lifetime in [
        Duration::ZERO,
        Duration::from_millis(1500),
        Duration::from_secs(7 * 86_400 + 1),
    ] {
        let e = royal(
            None,
            IpRoyalOptions {
                session_lifetime: Some(lifetime),
                ..Default::default()
            },
        );
        assert_eq!(invalid_option(&e).1, "session_lifetime");
    }
    let empty = ProxyData::new("geo.iproyal.com", 12321, "acme", "").unwrap();
    let e = err(IpRoyal::from_data(empty, IpRoyalOptions::default()));
    assert!(matches!(e, ProviderError::Password { .. }));
    for marker in ["_session-x", "_lifetime-1h"] {
        let data = ProxyData::new(
            "geo.iproyal.com",
            12321,
            "acme",
            format!("{SECRET}{marker}"),
        )
        .unwrap();
        let e = err(IpRoyal::from_data(data, IpRoyalOptions::default()));
        assert!(matches!(e, ProviderError::Password { .. }), "{marker}");
    }
    let data = ProxyData::new(
        "geo.iproyal.com",
        12321,
        "acme",
        format!("{SECRET}_country-de"),
    )
    .unwrap()
    .with_country("us")
    .unwrap();
    assert!(matches!(
        err(IpRoyal::from_data(data, IpRoyalOptions::default())),
        ProviderError::Password { .. }
    ));
    let e = err(IpRoyal::new("a:b", SECRET));
    assert!(matches!(e, ProviderError::Username { .. }));
}

// ---------------------------------------------------------------- SOAX

#[test]
fn soax_errors() {
    let soax = |country, options| {
        err(Soax::from_data(
            data("proxy.soax.com", 5000, "1", country),
            options,
        ))
    };
    let e = soax(
        None,
        SoaxOptions {
            city: Some("berlin".into()),
            ..Default::default()
        },
    );
    assert_eq!(requires(&e), ("city", "country"));
    let e = soax(
        None,
        SoaxOptions {
            region: Some("bavaria".into()),
            ..Default::default()
        },
    );
    assert_eq!(requires(&e), ("region", "country"));
    let e = soax(
        Some("us"),
        SoaxOptions {
            isp: Some("t-mobile".into()),
            ..Default::default()
        },
    );
    assert_eq!(invalid_option(&e), ("soax", "isp", "t-mobile"));
    let e = soax(
        None,
        SoaxOptions {
            session_lifetime: Some(Duration::ZERO),
            ..Default::default()
        },
    );
    assert!(e.to_string().contains("rotate"), "{e}");
    for lifetime in [Duration::from_secs(86_401), Duration::from_millis(10_500)] {
        let e = soax(
            None,
            SoaxOptions {
                session_lifetime: Some(lifetime),
                ..Default::default()
            },
        );
        assert_eq!(invalid_option(&e).1, "session_lifetime");
    }
    let e = err(Soax::new("1-sessionid-2", SECRET));
    assert!(matches!(e, ProviderError::Username { .. }));
}

// ---------------------------------------------------------------- Template

fn template(
    country: Option<&str>,
    username: &str,
    password: Option<&str>,
    options: TemplateOptions,
) -> Result<Template, ProviderError> {
    Template::from_data(
        template_data(country),
        TemplateOptions {
            username_template: Some(username.into()),
            password_template: password.map(Into::into),
            ..options
        },
    )
}

fn template_reason(err: &ProviderError) -> (CredentialSide, &str) {
    match err {
        ProviderError::Template { side, reason } => (*side, reason.as_str()),
        other => panic!("expected Template, got {other:?}"),
    }
}

#[test]
fn template_parse_errors() {
    let none = TemplateOptions::default;
    let e = err(template(None, "{username}-{sesion}", None, none()));
    let (side, reason) = template_reason(&e);
    assert_eq!(side, CredentialSide::Username);
    assert!(reason.contains("{sesion}"), "{reason}");
    assert!(
        reason.contains("expected one of username, password, session"),
        "{reason}"
    );
    let e = err(template(None, "{username}-{session", None, none()));
    assert!(template_reason(&e).1.contains("unclosed"));
    let e = err(template(None, "{username}}-{session}", None, none()));
    assert!(template_reason(&e).1.contains("unmatched"));
    let e = err(template(None, "{username}\t{session}", None, none()));
    assert!(template_reason(&e).1.contains("control"));
    // Password template: a typo is named, other text is not echoed.
    let e = err(template(
        None,
        "{username}",
        Some("{password}_{sesion}"),
        none(),
    ));
    let (side, reason) = template_reason(&e);
    assert_eq!(side, CredentialSide::Password);
    assert!(reason.contains("{sesion}"), "{reason}");
    let e = err(template(
        None,
        "{username}",
        Some("{Hunter2 S3CRET}{session}"),
        none(),
    ));
    assert!(!template_reason(&e).1.contains("Hunter2"));
    // Escaped braces are literal.
    let gw = template(None, "{{{username}}}-{session}", None, none()).unwrap();
    let url = gw.build_proxy_url(&SessionId::new("s1").unwrap()).unwrap();
    assert_eq!(url.username(), Some("{acme}-s1"));
}

#[test]
fn template_semantic_errors() {
    let none = TemplateOptions::default;
    let e = err(template(
        None,
        "{username}-{password}-{session}",
        None,
        none(),
    ));
    assert!(
        template_reason(&e)
            .1
            .contains("{password} may only be used")
    );
    let e = err(template(None, "{username}", None, none()));
    assert!(template_reason(&e).1.contains("{session}"));
    let e = err(template(None, "{username}:x-{session}", None, none()));
    assert!(template_reason(&e).1.contains("`:`"));
    // A used placeholder without a value.
    let e = err(template(
        None,
        "{username}-{country}-{session}",
        None,
        none(),
    ));
    assert!(
        template_reason(&e)
            .1
            .contains("{country} is used but has no value")
    );
    let e = err(template(None, "{username}-{city}-{session}", None, none()));
    assert!(
        template_reason(&e)
            .1
            .contains("{city} is used but has no value")
    );
    let e = err(template(
        None,
        "{username}-{lifetime_minutes}-{session}",
        None,
        TemplateOptions {
            session_lifetime: Some(Duration::from_secs(90)),
            ..none()
        },
    ));
    assert!(
        template_reason(&e)
            .1
            .contains("{lifetime_minutes} is used but has no value")
    );
    let empty_user = ProxyData::new("gw.example", 8000, "", SECRET).unwrap();
    let e = err(Template::new(empty_user, "{username}-{session}"));
    assert!(template_reason(&e).1.contains("{username} is used"));
    let empty_password = ProxyData::new("gw.example", 8000, "acme", "").unwrap();
    let e = err(Template::new(empty_password, "{username}-{session}"));
    let (side, reason) = template_reason(&e);
    assert_eq!(side, CredentialSide::Password);
    assert!(reason.contains("{password} is used"), "{reason}");
    // A value no template uses would be silently dropped.
    let e = err(template(Some("us"), "{username}-{session}", None, none()));
    assert!(
        template_reason(&e)
            .1
            .contains("`country` is set but neither template uses it")
    );
    for (option, options) in [
        (
            "city",
            TemplateOptions {
                city: Some("x".into()),
                ..none()
            },
        ),
        (
            "state",
            TemplateOptions {
                state: Some("x".into()),
                ..none()
            },
        ),
        (
            "zip",
            TemplateOptions {
                zip: Some("x".into()),
                ..none()
            },
        ),
        (
            "asn",
            TemplateOptions {
                asn: Some(1),
                ..none()
            },
        ),
        (
            "isp",
            TemplateOptions {
                isp: Some("x".into()),
                ..none()
            },
        ),
        (
            "session_lifetime",
            TemplateOptions {
                session_lifetime: Some(Duration::from_secs(60)),
                ..none()
            },
        ),
    ] {
        let e = err(template(None, "{username}-{session}", None, options));
        assert!(
            template_reason(&e)
                .1
                .contains(&format!("`{option}` is set")),
            "{option}: {e}"
        );
    }
    let e = err(template(None, "{session}", None, none()));
    assert!(template_reason(&e).1.contains("`username` is set"));
    let e = err(template(
        None,
        "{username}-{session}",
        Some("fixed"),
        none(),
    ));
    assert!(template_reason(&e).1.contains("`password` is set"));
    // Bad values.
    let e = err(template(
        None,
        "{username}-{city}-{session}",
        None,
        TemplateOptions {
            city: Some("a:b".into()),
            ..none()
        },
    ));
    assert!(template_reason(&e).1.contains("`:`"));
    let e = err(template(
        None,
        "{username}-{city}-{session}",
        None,
        TemplateOptions {
            city: Some(String::new()),
            ..none()
        },
    ));
    assert_eq!(invalid_option(&e), ("template", "city", ""));
    let e = err(template(
        None,
        "{username}-{asn}-{session}",
        None,
        TemplateOptions {
            asn: Some(0),
            ..none()
        },
    ));
    assert_eq!(invalid_option(&e).1, "asn");
    let e = err(template(
        None,
        "{username}-{lifetime}-{session}",
        None,
        TemplateOptions {
            session_lifetime: Some(Duration::ZERO),
            ..none()
        },
    ));
    assert_eq!(invalid_option(&e).1, "session_lifetime");
    // Sessions in the password only.
    let gw = template(None, "{username}", Some("{password}-{session}"), none()).unwrap();
    assert_eq!(gw.session_side(), CredentialSide::Password);
}

// ---------------------------------------------------------------- sessions

#[test]
fn build_rejects_ids_outside_each_rule() {
    let providers: Vec<(Box<dyn ProxyProvider>, &str)> = vec![
        (
            Box::new(BrightData::new("c1", "z1", SECRET).unwrap()),
            "ab-c",
        ),
        (
            Box::new(BrightData::new("c1", "z1", SECRET).unwrap()),
            "ab*c",
        ),
        (Box::new(Oxylabs::new("acme", SECRET).unwrap()), "ab_c"),
        (Box::new(Decodo::new("acme", SECRET).unwrap()), "a"),
        (Box::new(NetNut::new("acme", SECRET).unwrap()), "abc123"),
        (Box::new(NetNut::new("acme", SECRET).unwrap()), "9999"),
        (Box::new(IpRoyal::new("acme", SECRET).unwrap()), "abc1234"),
        (Box::new(Soax::new("1", SECRET).unwrap()), "a.b"),
    ];
    for (provider, id) in providers {
        let session = SessionId::new(id).unwrap();
        let result = provider.build_proxy_url(&session);
        if id == "a" {
            // One letter is a valid Decodo id: the check is not vacuous.
            assert!(result.is_ok());
            continue;
        }
        match result {
            Err(InvalidInput::SessionId { value, reason }) => {
                assert_eq!(value, id);
                assert!(reason.contains("this provider needs"), "{reason}");
            }
            other => panic!("{}: {id:?} gave {other:?}", provider.name()),
        }
    }
    let long = SessionId::new("a".repeat(33)).unwrap();
    assert!(
        BrightData::new("c1", "z1", SECRET)
            .unwrap()
            .build_proxy_url(&long)
            .is_err()
    );
}

// ---------------------------------------------------------------- config

#[test]
fn config_errors_list_the_choices() {
    let e =
        toml::from_str::<ProviderConfig>("provider = \"oxylab\"\nusername = \"u\"").unwrap_err();
    assert!(e.to_string().contains("unknown provider \"oxylab\""), "{e}");
    assert!(e.to_string().contains(
        "expected one of brightdata, brightdata-legacy, oxylabs, decodo, smartproxy, netnut, iproyal, soax, template"
    ), "{e}");
    let missing = toml::from_str::<ProviderConfig>("username = \"u\"").unwrap_err();
    assert!(
        missing
            .to_string()
            .contains("no `provider` given: expected one of brightdata"),
        "{missing}"
    );
    let unknown_field =
        toml::from_str::<ProviderConfig>("provider = \"oxylabs\"\nsesstime = 5").unwrap_err();
    assert!(
        unknown_field
            .to_string()
            .contains("unknown field `sesstime`"),
        "{unknown_field}"
    );
    assert!(
        unknown_field.to_string().contains("session_lifetime"),
        "{unknown_field}"
    );

    let e = err("nope".parse::<ProviderKind>());
    assert!(matches!(&e, ProviderError::UnknownProvider { name } if name == "nope"));
    for kind in ProviderKind::ALL {
        assert_eq!(kind.name().parse::<ProviderKind>().unwrap(), kind);
        assert_eq!(
            kind.to_string()
                .to_uppercase()
                .parse::<ProviderKind>()
                .unwrap(),
            kind
        );
    }
}

#[test]
fn config_missing_fields() {
    let config: ProviderConfig =
        toml::from_str("provider = \"oxylabs\"\nusername = \"u\"").unwrap();
    let e = err(config.build());
    assert!(matches!(
        e,
        ProviderError::MissingField {
            provider: ProviderKind::Oxylabs,
            field: "password"
        }
    ));
    assert!(
        e.to_string().contains("(required: username, password)"),
        "{e}"
    );
    let config: ProviderConfig =
        serde_json::from_str(r#"{"provider": "soax", "password": "x"}"#).unwrap();
    assert!(matches!(
        err(config.build()),
        ProviderError::MissingField {
            field: "username",
            ..
        }
    ));
    let config: ProviderConfig =
        toml::from_str("provider = \"template\"\nusername_template = \"{session}\"").unwrap();
    let e = err(config.build());
    assert!(matches!(
        e,
        ProviderError::MissingField { field: "host", .. }
    ));
    assert!(e.to_string().contains("(required: host, port)"), "{e}");
    let config: ProviderConfig = toml::from_str(
        "provider = \"template\"\nhost = \"gw.example\"\nusername_template = \"{session}\"",
    )
    .unwrap();
    assert!(matches!(
        err(config.build()),
        ProviderError::MissingField { field: "port", .. }
    ));
    // Template without username or password: an IP-allow-listed gateway.
    let config: ProviderConfig = toml::from_str(
        "provider = \"template\"\nhost = \"gw.example\"\nport = 9\nusername_template = \"s-{session}\"\npassword_template = \"\"",
    )
    .unwrap();
    let url = config
        .build()
        .unwrap()
        .build_proxy_url(&SessionId::new("q").unwrap())
        .unwrap();
    assert_eq!(url.username(), Some("s-q"));
}

#[test]
fn config_rejects_options_the_provider_does_not_support() {
    let cases: [(ProviderKind, &str, &str); 8] = [
        (ProviderKind::Decodo, "city = \"berlin\"", "city"),
        (ProviderKind::Oxylabs, "asn = 7922", "asn"),
        (
            ProviderKind::NetNut,
            "session_lifetime = 60",
            "session_lifetime",
        ),
        (ProviderKind::IpRoyal, "city = \"x\"", "city"),
        (ProviderKind::Soax, "zip = \"90210\"", "zip"),
        (ProviderKind::BrightData, "pool = \"static\"", "pool"),
        (
            ProviderKind::Oxylabs,
            "username_template = \"{session}\"",
            "username_template",
        ),
        (ProviderKind::Template, "zone = \"z\"", "zone"),
    ];
    for (kind, line, option) in cases {
        let text = format!(
            "provider = \"{kind}\"\nusername = \"u\"\npassword = \"{SECRET}\"\nhost = \"gw.example\"\nport = 1\n{line}"
        );
        let config: ProviderConfig = toml::from_str(&text).unwrap();
        let e = err(config.build());
        match &e {
            ProviderError::Unsupported {
                provider,
                option: o,
                supported,
            } => {
                assert_eq!((*provider, *o), (kind.name(), option));
                assert_eq!(*supported, kind.supported_options());
            }
            other => panic!("{kind}: {other:?}"),
        }
        assert!(e.to_string().contains("it supports: country"), "{e}");
    }
}

#[test]
fn config_values() {
    let build = |text: &str| toml::from_str::<ProviderConfig>(text).map(|c| c.build());
    // Lifetimes: whole seconds or a duration text.
    for (value, expected) in [
        ("1800", "-sesstime-30"),
        ("\"30m\"", "-sesstime-30"),
        ("\"1h 30m\"", "-sesstime-90"),
    ] {
        let provider = build(&format!(
            "provider = \"oxylabs\"\nusername = \"u\"\npassword = \"p\"\nsession_lifetime = {value}"
        ))
        .unwrap()
        .unwrap();
        let url = provider
            .build_proxy_url(&SessionId::new("s").unwrap())
            .unwrap();
        assert!(
            url.username().unwrap().ends_with(expected),
            "{value}: {url}"
        );
    }
    for value in ["\"soon\"", "-5"] {
        let e = build(&format!(
            "provider = \"oxylabs\"\nusername = \"u\"\npassword = \"p\"\nsession_lifetime = {value}"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("session_lifetime"), "{value}: {e}");
    }
    // Bright Data: `zone` turns `username` into the customer id.
    let provider = build(
        "provider = \"brightdata-legacy\"\nusername = \"c1\"\nzone = \"z1\"\npassword = \"p\"\ncountry = \"hr\"",
    )
    .unwrap()
    .unwrap();
    let url = provider
        .build_proxy_url(&SessionId::new("s1").unwrap())
        .unwrap();
    assert_eq!(
        url.username(),
        Some("lum-customer-c1-zone-z1-country-hr-session-s1")
    );
    assert_eq!(url.endpoint(), "http://zproxy.lum-superproxy.io:22225");
    // No documented SOCKS5 port on the legacy gateway: name one.
    let e = err(build("provider = \"brightdata-legacy\"\nusername = \"lum-customer-c1\"\npassword = \"p\"\nprotocol = \"socks5h\"").unwrap());
    assert_eq!(invalid_option(&e).1, "protocol");
    assert!(e.to_string().contains("set `port`"), "{e}");
    // SOAX has no SOCKS5.
    let e = err(build(
        "provider = \"soax\"\nusername = \"1\"\npassword = \"p\"\nprotocol = \"socks5h\"",
    )
    .unwrap());
    assert!(matches!(
        e,
        ProviderError::Protocol {
            provider: "soax",
            ..
        }
    ));
    // SOAX's region is our `state`; NetNut's pool parses by name.
    let provider = build(
        "provider = \"soax\"\nusername = \"1\"\npassword = \"p\"\ncountry = \"us\"\nstate = \"california\"",
    )
    .unwrap()
    .unwrap();
    let url = provider
        .build_proxy_url(&SessionId::new("s").unwrap())
        .unwrap();
    assert_eq!(
        url.username(),
        Some("package-1-country-us-region-california-sessionid-s-sessionlength-360")
    );
    let provider =
        build("provider = \"netnut\"\nusername = \"u\"\npassword = \"p\"\npool = \"mobile\"")
            .unwrap()
            .unwrap();
    let url = provider
        .build_proxy_url(&SessionId::new("12345").unwrap())
        .unwrap();
    assert_eq!(url.username(), Some("u-mob-any-sid-12345"));
    assert!(build("provider = \"netnut\"\npool = \"cellular\"").is_err());
    // Host and port overrides.
    let provider = build(
        "provider = \"oxylabs\"\nusername = \"u\"\npassword = \"p\"\nhost = \"us-pr.oxylabs.io\"\nport = 10001",
    )
    .unwrap()
    .unwrap();
    assert_eq!(provider.label(), "oxylabs:any:10001");
    let e =
        err(build("provider = \"oxylabs\"\nusername = \"u\"\npassword = \"p\"\nport = 0").unwrap());
    assert!(matches!(e, ProviderError::Input(InvalidInput::Port)));
}

// ---------------------------------------------------------------- redaction

#[test]
fn no_type_shows_the_password() {
    let providers: Vec<Box<dyn ProxyProvider>> = vec![
        Box::new(BrightData::new("c1", "z1", SECRET).unwrap()),
        Box::new(Oxylabs::new("acme", SECRET).unwrap()),
        Box::new(Decodo::new("acme", SECRET).unwrap()),
        Box::new(NetNut::new("acme", SECRET).unwrap()),
        Box::new(IpRoyal::new("acme", SECRET).unwrap()),
        Box::new(Soax::new("1", SECRET).unwrap()),
        Box::new(
            Template::from_data(
                template_data(None),
                TemplateOptions {
                    username_template: Some("{username}-{session}".into()),
                    // A literal secret in the password template is not shown either.
                    password_template: Some(format!("{{password}}-{SECRET}")),
                    ..Default::default()
                },
            )
            .unwrap(),
        ),
    ];
    for provider in &providers {
        let url = provider
            .build_proxy_url(&provider.new_session_id())
            .unwrap();
        let shown = format!(
            "{provider:?} {url} {url:?} {} {}",
            url.redacted(),
            provider.label()
        );
        assert!(!shown.contains("S3CRET"), "{shown}");
        assert!(
            url.expose_url().contains("S3CRET"),
            "the URL itself carries it"
        );
    }
    let config = ProviderConfig::new(ProviderKind::Oxylabs, "acme", SECRET);
    assert!(!format!("{config:?}").contains("S3CRET"));
    let config: ProviderConfig = toml::from_str(&format!(
        "provider = \"iproyal\"\nusername = \"u\"\npassword = \"{SECRET}\""
    ))
    .unwrap();
    assert!(!format!("{config:?}").contains("S3CRET"));
    for shown in [
        ProviderKind::IpRoyal.to_string(),
        NetNutPool::Static.to_string(),
        CredentialSide::Password.to_string(),
        format!("{:?}", ProviderKind::IpRoyal.session_placement()),
    ] {
        assert!(!shown.contains("S3CRET"));
    }
}
