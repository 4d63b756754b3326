//! Every provider reproduces the username/password shapes documented in
//! `shared/PROVIDERS.md` (and the Python design we start from) exactly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use proxy_core::{Protocol, ProxyData, ProxyProvider, ProxyUrl, SessionId};
use proxy_providers::{
    BrightData, BrightDataOptions, Decodo, DecodoOptions, IpRoyal, IpRoyalOptions, NetNut,
    NetNutOptions, NetNutPool, Oxylabs, OxylabsOptions, ProviderConfig, ProviderKind, Soax,
    SoaxOptions, Template, TemplateOptions,
};
use secrecy::ExposeSecret;

fn session(id: &str) -> SessionId {
    SessionId::new(id).unwrap()
}

fn data(host: &str, port: u16, user: &str, country: Option<&str>) -> ProxyData {
    let data = ProxyData::new(host, port, user, "pw").unwrap();
    match country {
        Some(cc) => data.with_country(cc).unwrap(),
        None => data,
    }
}

fn username(provider: &impl ProxyProvider, id: &str) -> String {
    provider
        .build_proxy_url(&session(id))
        .unwrap()
        .username()
        .unwrap()
        .to_owned()
}

fn password(url: &ProxyUrl) -> String {
    url.password().unwrap().expose_secret().to_owned()
}

#[test]
fn bright_data_full_username_in_documented_order() {
    let brd = BrightData::from_data(
        data(
            "brd.superproxy.io",
            33335,
            "brd-customer-hl_1234abcd-zone-residential",
            Some("us"),
        ),
        BrightDataOptions {
            state: Some("NY".into()),
            city: Some("newyork".into()),
            zip: Some("10001".into()),
            asn: Some(7922),
            session_id_max_len: None,
        },
    )
    .unwrap();
    assert_eq!(
        username(&brd, "abc123"),
        "brd-customer-hl_1234abcd-zone-residential-country-us-state-ny-city-newyork-zip-10001-asn-7922-session-abc123"
    );
    assert_eq!(brd.label(), "brightdata:us:33335");
}

#[test]
fn bright_data_constructors_fill_the_documented_gateways() {
    let brd = BrightData::new("hl_1234abcd", "residential", "zone-pw").unwrap();
    let url = brd.build_proxy_url(&session("abc123")).unwrap();
    assert_eq!(
        url.username(),
        Some("brd-customer-hl_1234abcd-zone-residential-session-abc123")
    );
    assert_eq!(password(&url), "zone-pw");
    assert_eq!(url.endpoint(), "http://brd.superproxy.io:33335");

    let legacy = BrightData::legacy("acme", "static", "zone-pw").unwrap();
    let url = legacy.build_proxy_url(&session("abc123")).unwrap();
    assert_eq!(
        url.username(),
        Some("lum-customer-acme-zone-static-session-abc123")
    );
    assert_eq!(url.endpoint(), "http://zproxy.lum-superproxy.io:22225");
}

#[test]
fn bright_data_socks5h_on_22228() {
    let config = ProviderConfig {
        protocol: Protocol::Socks5h,
        zone: Some("residential".into()),
        ..ProviderConfig::new(ProviderKind::BrightData, "hl_1", "pw")
    };
    let url = config
        .build()
        .unwrap()
        .build_proxy_url(&session("s1"))
        .unwrap();
    assert_eq!(url.endpoint(), "socks5h://brd.superproxy.io:22228");
    assert_eq!(
        url.username(),
        Some("brd-customer-hl_1-zone-residential-session-s1")
    );
}

/// The design we start from: `f"http://{user}-country-{cc}-session-{id}:{password}@{host}:{port}"`
/// with `ProxyData(host="zproxy.lum-superproxy.io", port=22225,
/// username="lum-customer-xxx", password="secret", country="hr")`.
#[test]
fn bright_data_legacy_matches_the_original_python_provider() {
    let data = ProxyData::new(
        "zproxy.lum-superproxy.io",
        22225,
        "lum-customer-xxx",
        "secret",
    )
    .unwrap()
    .with_country("hr")
    .unwrap();
    let brd = BrightData::from_data(data, BrightDataOptions::default()).unwrap();
    let url = brd.build_proxy_url(&session("a1b2c3")).unwrap();
    assert_eq!(
        url.expose_url(),
        "http://lum-customer-xxx-country-hr-session-a1b2c3:secret@zproxy.lum-superproxy.io:22225"
    );
    // Without a country, the Python code adds only the session.
    let data = ProxyData::new(
        "zproxy.lum-superproxy.io",
        22225,
        "lum-customer-xxx",
        "secret",
    )
    .unwrap();
    let brd = BrightData::from_data(data, BrightDataOptions::default()).unwrap();
    assert_eq!(username(&brd, "a1b2c3"), "lum-customer-xxx-session-a1b2c3");
}

#[test]
fn oxylabs_full_username_in_documented_order() {
    let oxy = Oxylabs::from_data(
        data("pr.oxylabs.io", 7777, "acme", Some("us")),
        OxylabsOptions {
            city: Some("los_angeles".into()),
            state: Some("us_california".into()),
            zip: Some("90210".into()),
            session_lifetime: Some(Duration::from_secs(30 * 60)),
            session_id_max_len: None,
        },
    )
    .unwrap();
    assert_eq!(
        username(&oxy, "abc123"),
        "customer-acme-cc-US-city-los_angeles-st-us_california-postalcode-90210-sessid-abc123-sesstime-30"
    );
}

#[test]
fn oxylabs_state_gets_the_country_prefix_and_existing_prefixes_are_kept() {
    let oxy = Oxylabs::from_data(
        data("pr.oxylabs.io", 7777, "customer-acme", Some("us")),
        OxylabsOptions {
            state: Some("California".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        username(&oxy, "x1"),
        "customer-acme-cc-US-st-us_california-sessid-x1"
    );
}

/// The design's second example: `f"{username}-sessid-{session_id}"`.
#[test]
fn oxylabs_matches_the_original_python_example() {
    let oxy = Oxylabs::from_data(
        data("pr.oxylabs.io", 7777, "customer-acme", None),
        OxylabsOptions::default(),
    )
    .unwrap();
    assert_eq!(username(&oxy, "abc"), "customer-acme-sessid-abc");
    let url = oxy.build_proxy_url(&session("abc")).unwrap();
    assert_eq!(url.endpoint(), "http://pr.oxylabs.io:7777");
}

#[test]
fn decodo_full_username_and_socks() {
    let decodo = Decodo::from_data(
        data("gate.decodo.com", 7000, "acme", Some("us")).with_protocol(Protocol::Socks5h),
        DecodoOptions {
            session_lifetime: Some(Duration::from_secs(60 * 60)),
            session_id_max_len: None,
        },
    )
    .unwrap();
    let url = decodo.build_proxy_url(&session("abc123")).unwrap();
    assert_eq!(
        url.username(),
        Some("user-acme-country-us-session-abc123-sessionduration-60")
    );
    assert_eq!(url.endpoint(), "socks5h://gate.decodo.com:7000");

    let smartproxy = Decodo::smartproxy("user-acme", "pw").unwrap();
    let url = smartproxy.build_proxy_url(&session("abc123")).unwrap();
    assert_eq!(url.username(), Some("user-acme-session-abc123"));
    assert_eq!(url.endpoint(), "http://gate.smartproxy.com:7000");
}

#[test]
fn netnut_usernames() {
    let build = |country: Option<&str>, options: NetNutOptions| {
        let netnut =
            NetNut::from_data(data("gw.netnut.net", 5959, "acme", country), options).unwrap();
        username(&netnut, "12345")
    };
    assert_eq!(
        build(Some("us"), NetNutOptions::default()),
        "acme-res-us-sid-12345"
    );
    assert_eq!(
        build(None, NetNutOptions::default()),
        "acme-res-any-sid-12345"
    );
    // NetNut writes the United Kingdom as `uk`.
    assert_eq!(
        build(Some("gb"), NetNutOptions::default()),
        "acme-res-uk-sid-12345"
    );
    assert_eq!(
        build(
            Some("us"),
            NetNutOptions {
                state: Some("alabama".into()),
                city: Some("birmingham".into()),
                ..Default::default()
            }
        ),
        "acme-res_sc-us_alabama_birmingham-sid-12345"
    );
    let pool = |pool| NetNutOptions {
        pool,
        ..Default::default()
    };
    assert_eq!(
        build(Some("de"), pool(NetNutPool::Static)),
        "acme-stc-de-sid-12345"
    );
    assert_eq!(
        build(Some("de"), pool(NetNutPool::Mobile)),
        "acme-mob-de-sid-12345"
    );
    let netnut = NetNut::new("acme", "pw").unwrap();
    assert_eq!(netnut.label(), "netnut:any:5959");
}

#[test]
fn netnut_socks5h_on_9595() {
    let config = ProviderConfig {
        protocol: Protocol::Socks5h,
        country: Some("GB".into()),
        ..ProviderConfig::new(ProviderKind::NetNut, "acme", "pw")
    };
    let provider = config.build().unwrap();
    let url = provider.build_proxy_url(&session("99999")).unwrap();
    assert_eq!(url.endpoint(), "socks5h://gw.netnut.net:9595");
    assert_eq!(url.username(), Some("acme-res-uk-sid-99999"));
    // The label keeps the ISO code: it is ours, not NetNut's.
    assert_eq!(provider.label(), "netnut:gb:9595");
}

#[test]
fn iproyal_parameters_go_in_the_password() {
    let royal = IpRoyal::from_data(
        data("geo.iproyal.com", 12321, "acme", Some("us")),
        IpRoyalOptions {
            state: Some("california".into()),
            session_lifetime: None,
        },
    )
    .unwrap();
    let url = royal.build_proxy_url(&session("Ab12Cd34")).unwrap();
    assert_eq!(url.username(), Some("acme"));
    assert_eq!(
        password(&url),
        "pw_country-us_state-california_session-Ab12Cd34_lifetime-10m"
    );
}

#[test]
fn iproyal_lifetime_uses_one_unit() {
    let lifetime = |secs: u64| {
        let royal = IpRoyal::from_data(
            data("geo.iproyal.com", 12321, "acme", None),
            IpRoyalOptions {
                state: None,
                session_lifetime: Some(Duration::from_secs(secs)),
            },
        )
        .unwrap();
        let url = royal.build_proxy_url(&session("abcd1234")).unwrap();
        password(&url)
    };
    assert_eq!(lifetime(1), "pw_session-abcd1234_lifetime-1s");
    assert_eq!(lifetime(90), "pw_session-abcd1234_lifetime-90s");
    assert_eq!(lifetime(600), "pw_session-abcd1234_lifetime-10m");
    assert_eq!(lifetime(7200), "pw_session-abcd1234_lifetime-2h");
    assert_eq!(lifetime(7 * 86_400), "pw_session-abcd1234_lifetime-7d");
}

#[test]
fn iproyal_socks5h_on_32325() {
    let config = ProviderConfig {
        protocol: Protocol::Socks5h,
        ..ProviderConfig::new(ProviderKind::IpRoyal, "acme", "pw")
    };
    let url = config
        .build()
        .unwrap()
        .build_proxy_url(&session("abcd1234"))
        .unwrap();
    assert_eq!(url.endpoint(), "socks5h://geo.iproyal.com:32325");
}

#[test]
fn soax_full_username_in_documented_order() {
    let soax = Soax::from_data(
        data("proxy.soax.com", 5000, "123456", Some("us")),
        SoaxOptions {
            city: Some("New York".into()),
            region: Some("new+york".into()),
            isp: Some("verizon".into()),
            session_lifetime: Some(Duration::from_secs(600)),
            session_id_max_len: None,
        },
    )
    .unwrap();
    let url = soax.build_proxy_url(&session("abc123")).unwrap();
    assert_eq!(
        url.username(),
        Some(
            "package-123456-country-us-city-new+york-region-new+york-isp-verizon-sessionid-abc123-sessionlength-600"
        )
    );
    assert_eq!(password(&url), "pw");
    assert_eq!(url.endpoint(), "http://proxy.soax.com:5000");
    // Default session length: SOAX's residential default, 360 s.
    let soax = Soax::new("package-123456", "key").unwrap();
    assert_eq!(
        username(&soax, "abc123"),
        "package-123456-sessionid-abc123-sessionlength-360"
    );
}

#[test]
fn template_on_both_sides() {
    let royal_like = Template::from_data(
        data("gw.example", 9000, "acme", Some("gb")),
        TemplateOptions {
            username_template: Some("{username}".into()),
            password_template: Some(
                "{password}_c-{country}_C-{country_upper}_s-{session}_t-{lifetime_minutes}m_{lifetime}s_{{x}}".into(),
            ),
            session_lifetime: Some(Duration::from_secs(120)),
            ..Default::default()
        },
    )
    .unwrap();
    let url = royal_like.build_proxy_url(&session("abc")).unwrap();
    assert_eq!(url.username(), Some("acme"));
    assert_eq!(password(&url), "pw_c-gb_C-GB_s-abc_t-2m_120s_{x}");
    assert_eq!(royal_like.label(), "template:gb:9000");
}

#[test]
fn template_with_every_value() {
    let gw = Template::from_data(
        data("gw.example", 9000, "acme", Some("us")),
        TemplateOptions {
            username_template: Some(
                "{username}-st-{state}-ci-{city}-z-{zip}-a-{asn}-i-{isp}-s-{session}".into(),
            ),
            state: Some("ca".into()),
            city: Some("sf".into()),
            zip: Some("94103".into()),
            asn: Some(7922),
            isp: Some("comcast".into()),
            password_template: Some("{password}-{country}".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let url = gw.build_proxy_url(&session("q1")).unwrap();
    assert_eq!(
        url.username(),
        Some("acme-st-ca-ci-sf-z-94103-a-7922-i-comcast-s-q1")
    );
    assert_eq!(password(&url), "pw-us");
}

#[test]
fn config_fills_every_documented_gateway() {
    let cases = [
        (
            ProviderKind::BrightData,
            Protocol::Http,
            "http://brd.superproxy.io:33335",
        ),
        (
            ProviderKind::BrightData,
            Protocol::Socks5h,
            "socks5h://brd.superproxy.io:22228",
        ),
        (
            ProviderKind::BrightDataLegacy,
            Protocol::Http,
            "http://zproxy.lum-superproxy.io:22225",
        ),
        (
            ProviderKind::Oxylabs,
            Protocol::Http,
            "http://pr.oxylabs.io:7777",
        ),
        (
            ProviderKind::Oxylabs,
            Protocol::Socks5h,
            "socks5h://pr.oxylabs.io:7777",
        ),
        (
            ProviderKind::Decodo,
            Protocol::Http,
            "http://gate.decodo.com:7000",
        ),
        (
            ProviderKind::Decodo,
            Protocol::Socks5h,
            "socks5h://gate.decodo.com:7000",
        ),
        (
            ProviderKind::Smartproxy,
            Protocol::Http,
            "http://gate.smartproxy.com:7000",
        ),
        (
            ProviderKind::NetNut,
            Protocol::Http,
            "http://gw.netnut.net:5959",
        ),
        (
            ProviderKind::NetNut,
            Protocol::Socks5h,
            "socks5h://gw.netnut.net:9595",
        ),
        (
            ProviderKind::IpRoyal,
            Protocol::Http,
            "http://geo.iproyal.com:12321",
        ),
        (
            ProviderKind::IpRoyal,
            Protocol::Socks5h,
            "socks5h://geo.iproyal.com:32325",
        ),
        (
            ProviderKind::Soax,
            Protocol::Http,
            "http://proxy.soax.com:5000",
        ),
    ];
    for (kind, protocol, endpoint) in cases {
        let user = match kind {
            ProviderKind::BrightData => "brd-customer-c1-zone-z1",
            ProviderKind::BrightDataLegacy => "lum-customer-c1-zone-z1",
            _ => "acme",
        };
        let config = ProviderConfig {
            protocol,
            ..ProviderConfig::new(kind, user, "pw")
        };
        let provider = config.build().unwrap();
        let url = provider
            .build_proxy_url(&provider.new_session_id())
            .unwrap();
        assert_eq!(url.endpoint(), endpoint, "{kind} {protocol}");
        assert_eq!(
            provider.label(),
            format!("{}:any:{}", provider.name(), url.port())
        );
    }
}

#[test]
fn session_placement_reads_back_what_each_provider_wrote() {
    let cases: Vec<(ProviderKind, Box<dyn ProxyProvider>)> = vec![
        (
            ProviderKind::BrightData,
            Box::new(BrightData::new("c1", "z1", "pw").unwrap()),
        ),
        (
            ProviderKind::Oxylabs,
            Box::new(
                Oxylabs::from_data(
                    data("pr.oxylabs.io", 7777, "acme", Some("us")),
                    OxylabsOptions {
                        session_lifetime: Some(Duration::from_secs(600)),
                        ..Default::default()
                    },
                )
                .unwrap(),
            ),
        ),
        (
            ProviderKind::Decodo,
            Box::new(
                Decodo::from_data(
                    data("gate.decodo.com", 7000, "acme", Some("us")),
                    DecodoOptions {
                        session_lifetime: Some(Duration::from_secs(600)),
                        ..Default::default()
                    },
                )
                .unwrap(),
            ),
        ),
        (
            ProviderKind::NetNut,
            Box::new(NetNut::new("acme", "pw").unwrap()),
        ),
        (
            ProviderKind::IpRoyal,
            Box::new(IpRoyal::new("acme", "pw").unwrap()),
        ),
        (ProviderKind::Soax, Box::new(Soax::new("1", "key").unwrap())),
    ];
    for (kind, provider) in cases {
        let session = provider.new_session_id();
        let url = provider.build_proxy_url(&session).unwrap();
        let placement = kind.session_placement().unwrap();
        let found = placement.find(
            url.username().unwrap(),
            url.password().unwrap().expose_secret(),
        );
        assert_eq!(found, Some(session.as_str()), "{kind}");
    }
    assert_eq!(ProviderKind::Template.session_placement(), None);
}
