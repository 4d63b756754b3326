//! A custom provider driven by format strings, for gateways we don't ship.

use std::fmt;
use std::time::Duration;

use proxy_core::{InvalidInput, ProxyData, ProxyProvider, ProxyUrl, SessionId};
use secrecy::{ExposeSecret, SecretString};

use crate::error::ProviderError;
use crate::session::{CredentialSide, SessionRule};
use crate::targeting;

/// A value a template can insert with `{name}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Placeholder {
    /// `{username}`: the account username of the [`ProxyData`].
    Username,
    /// `{password}`: the account password (password template only).
    Password,
    /// `{session}`: the session id, filled in for each URL.
    Session,
    /// `{country}`: the ISO country code, lower case (`us`).
    Country,
    /// `{country_upper}`: the ISO country code, upper case (`US`).
    CountryUpper,
    /// `{state}`: the `state` option, verbatim.
    State,
    /// `{city}`: the `city` option, verbatim.
    City,
    /// `{zip}`: the `zip` option, verbatim.
    Zip,
    /// `{asn}`: the `asn` option, in decimal.
    Asn,
    /// `{isp}`: the `isp` option, verbatim.
    Isp,
    /// `{lifetime}`: the session lifetime in whole seconds.
    Lifetime,
    /// `{lifetime_minutes}`: the session lifetime in whole minutes.
    LifetimeMinutes,
}

impl Placeholder {
    /// Every placeholder, in the order of [`Placeholder::NAMES`].
    pub const ALL: [Placeholder; 12] = [
        Placeholder::Username,
        Placeholder::Password,
        Placeholder::Session,
        Placeholder::Country,
        Placeholder::CountryUpper,
        Placeholder::State,
        Placeholder::City,
        Placeholder::Zip,
        Placeholder::Asn,
        Placeholder::Isp,
        Placeholder::Lifetime,
        Placeholder::LifetimeMinutes,
    ];
    /// The names written between braces.
    pub const NAMES: [&'static str; 12] = [
        "username",
        "password",
        "session",
        "country",
        "country_upper",
        "state",
        "city",
        "zip",
        "asn",
        "isp",
        "lifetime",
        "lifetime_minutes",
    ];

    /// The name written between braces.
    pub fn name(self) -> &'static str {
        match self {
            Placeholder::Username => "username",
            Placeholder::Password => "password",
            Placeholder::Session => "session",
            Placeholder::Country => "country",
            Placeholder::CountryUpper => "country_upper",
            Placeholder::State => "state",
            Placeholder::City => "city",
            Placeholder::Zip => "zip",
            Placeholder::Asn => "asn",
            Placeholder::Isp => "isp",
            Placeholder::Lifetime => "lifetime",
            Placeholder::LifetimeMinutes => "lifetime_minutes",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{}}}", self.name())
    }
}

#[derive(Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Value(Placeholder),
}

/// A parsed format string.
#[derive(Clone)]
struct FormatString {
    side: CredentialSide,
    segments: Vec<Segment>,
}

impl FormatString {
    /// Parses `{name}` placeholders; `{{` and `}}` are literal braces.
    fn parse(side: CredentialSide, text: &str) -> Result<Self, ProviderError> {
        let error = |reason: String| ProviderError::Template { side, reason };
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if chars.peek().is_some_and(|&(_, next)| next == '{') => {
                    chars.next();
                    literal.push('{');
                }
                '{' => {
                    let rest = &text[at + 1..];
                    let Some(len) = rest.find('}') else {
                        return Err(error(format!(
                            "unclosed `{{` at byte {at} (write `{{{{` for a literal brace)"
                        )));
                    };
                    let name = &rest[..len];
                    let Some(placeholder) = Placeholder::from_name(name) else {
                        return Err(error(unknown_placeholder(side, name, at)));
                    };
                    if !literal.is_empty() {
                        segments.push(Segment::Literal(std::mem::take(&mut literal)));
                    }
                    segments.push(Segment::Value(placeholder));
                    // Skip the name and the closing brace.
                    for _ in 0..name.chars().count() + 1 {
                        chars.next();
                    }
                }
                '}' if chars.peek().is_some_and(|&(_, next)| next == '}') => {
                    chars.next();
                    literal.push('}');
                }
                '}' => {
                    return Err(error(format!(
                        "unmatched `}}` at byte {at} (write `}}}}` for a literal brace)"
                    )));
                }
                c if c.is_control() => {
                    return Err(error(format!("control character at byte {at}")));
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        Ok(Self { side, segments })
    }

    fn uses(&self, placeholder: Placeholder) -> bool {
        self.segments.contains(&Segment::Value(placeholder))
    }

    fn placeholders(&self) -> Vec<&'static str> {
        self.segments
            .iter()
            .filter_map(|s| match s {
                Segment::Value(p) => Some(p.name()),
                Segment::Literal(_) => None,
            })
            .collect()
    }

    fn literals(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Literal(text) => Some(text.as_str()),
            Segment::Value(_) => None,
        })
    }

    fn render(&self, values: &Values, data: &ProxyData, session: &SessionId) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Value(Placeholder::Username) => out.push_str(data.username()),
                Segment::Value(Placeholder::Password) => {
                    out.push_str(data.password().expose_secret());
                }
                Segment::Value(Placeholder::Session) => out.push_str(session.as_str()),
                Segment::Value(Placeholder::Country) => {
                    out.push_str(data.country().unwrap_or_default());
                }
                Segment::Value(Placeholder::CountryUpper) => {
                    out.push_str(&data.country().unwrap_or_default().to_ascii_uppercase());
                }
                Segment::Value(p) => out.push_str(values.get(*p).unwrap_or_default()),
            }
        }
        out
    }
}

/// The error text for an unknown `{name}`. In the password template the
/// name is echoed only if it looks like a placeholder name (a typo), since
/// the template's literal text might be secret.
fn unknown_placeholder(side: CredentialSide, name: &str, at: usize) -> String {
    let choices = Placeholder::NAMES.join(", ");
    let identifier = !name.is_empty()
        && name.len() <= 32
        && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if side == CredentialSide::Username || identifier {
        format!("unknown placeholder {{{name}}} at byte {at}; expected one of {choices}")
    } else {
        format!("unknown placeholder at byte {at}; expected one of {choices}")
    }
}

/// The option values, rendered once at construction.
#[derive(Debug, Clone, Default)]
struct Values {
    state: Option<String>,
    city: Option<String>,
    zip: Option<String>,
    asn: Option<String>,
    isp: Option<String>,
    lifetime: Option<String>,
    lifetime_minutes: Option<String>,
}

impl Values {
    fn get(&self, placeholder: Placeholder) -> Option<&str> {
        match placeholder {
            Placeholder::State => self.state.as_deref(),
            Placeholder::City => self.city.as_deref(),
            Placeholder::Zip => self.zip.as_deref(),
            Placeholder::Asn => self.asn.as_deref(),
            Placeholder::Isp => self.isp.as_deref(),
            Placeholder::Lifetime => self.lifetime.as_deref(),
            Placeholder::LifetimeMinutes => self.lifetime_minutes.as_deref(),
            Placeholder::Username
            | Placeholder::Password
            | Placeholder::Session
            | Placeholder::Country
            | Placeholder::CountryUpper => None,
        }
    }
}

/// Format strings and values for [`Template`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateOptions {
    /// Format of the proxy username. Default `{username}`. May not use
    /// `{password}` (usernames appear in logs).
    pub username_template: Option<String>,
    /// Format of the proxy password. Default `{password}`.
    pub password_template: Option<String>,
    /// Value of `{state}`.
    pub state: Option<String>,
    /// Value of `{city}`.
    pub city: Option<String>,
    /// Value of `{zip}`.
    pub zip: Option<String>,
    /// Value of `{asn}`.
    pub asn: Option<u32>,
    /// Value of `{isp}`.
    pub isp: Option<String>,
    /// Value of `{lifetime}` (whole seconds) and `{lifetime_minutes}`
    /// (whole minutes).
    pub session_lifetime: Option<Duration>,
    /// Longest accepted session id (alphanumeric). Default
    /// [`DEFAULT_SESSION_ID_MAX_LEN`](crate::DEFAULT_SESSION_ID_MAX_LEN).
    pub session_id_max_len: Option<usize>,
}

/// A gateway we don't ship, described by format strings for the username
/// and/or the password.
///
/// Placeholders: `{username}`, `{password}`, `{session}`, `{country}`,
/// `{country_upper}`, `{state}`, `{city}`, `{zip}`, `{asn}`, `{isp}`,
/// `{lifetime}` (seconds), `{lifetime_minutes}`; `{{` and `}}` are literal
/// braces. Checked at construction: an unknown placeholder, a placeholder
/// without a value, a value (or country) that no template uses, `{password}`
/// in the username, and templates without `{session}` are all errors.
/// Any protocol is accepted; the host and port are the ones in
/// [`ProxyData`].
///
/// ```
/// use proxy_core::{ProxyData, ProxyProvider, SessionId};
/// use proxy_providers::{Template, TemplateOptions};
///
/// let data = ProxyData::new("gw.example", 8000, "acme", "s3cret")?.with_country("de")?;
/// let gw = Template::from_data(data, TemplateOptions {
///     username_template: Some("{username}-geo-{country_upper}-sticky-{session}".into()),
///     ..Default::default()
/// })?;
/// let url = gw.build_proxy_url(&SessionId::new("abc123")?)?;
/// assert_eq!(url.username(), Some("acme-geo-DE-sticky-abc123"));
/// assert_eq!(gw.label(), "template:de:8000");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Template {
    data: ProxyData,
    username: FormatString,
    password: FormatString,
    values: Values,
    session_rule: SessionRule,
}

impl Template {
    /// Provider name used in labels and configuration.
    pub const NAME: &'static str = "template";
    /// Settings this provider understands (for configuration errors).
    pub const OPTIONS: &'static [&'static str] = &[
        "country",
        "state",
        "city",
        "zip",
        "asn",
        "isp",
        "session_lifetime",
        "session_id_max_len",
        "username_template",
        "password_template",
    ];
    /// The username format used when none is given.
    pub const DEFAULT_USERNAME_TEMPLATE: &'static str = "{username}";
    /// The password format used when none is given.
    pub const DEFAULT_PASSWORD_TEMPLATE: &'static str = "{password}";

    /// A template for the username only; the password is sent as is.
    pub fn new(data: ProxyData, username_template: &str) -> Result<Self, ProviderError> {
        Self::from_data(
            data,
            TemplateOptions {
                username_template: Some(username_template.to_owned()),
                ..TemplateOptions::default()
            },
        )
    }

    /// Parses and checks both templates against `data` and `options`.
    pub fn from_data(data: ProxyData, options: TemplateOptions) -> Result<Self, ProviderError> {
        const NAME: &str = Template::NAME;
        let username = FormatString::parse(
            CredentialSide::Username,
            options
                .username_template
                .as_deref()
                .unwrap_or(Self::DEFAULT_USERNAME_TEMPLATE),
        )?;
        let password = FormatString::parse(
            CredentialSide::Password,
            options
                .password_template
                .as_deref()
                .unwrap_or(Self::DEFAULT_PASSWORD_TEMPLATE),
        )?;
        let username_error = |reason: &str| ProviderError::Template {
            side: CredentialSide::Username,
            reason: reason.to_owned(),
        };
        if username.uses(Placeholder::Password) {
            return Err(username_error(
                "{password} may only be used in the password template: usernames appear in logs",
            ));
        }
        if username.literals().any(|text| text.contains(':')) {
            return Err(username_error(
                "contains `:`, which HTTP Basic authentication cannot carry in a username",
            ));
        }
        if !username.uses(Placeholder::Session) && !password.uses(Placeholder::Session) {
            return Err(username_error(
                "neither template uses {session}: the session id would be dropped and the exit never pinned",
            ));
        }
        targeting::country(NAME, data.country())?;
        let values = Self::values(&options)?;

        let used = |p: Placeholder| username.uses(p) || password.uses(p);
        let country_used = used(Placeholder::Country) || used(Placeholder::CountryUpper);
        let missing = |p: Placeholder| match p {
            Placeholder::Username => data.username().is_empty(),
            Placeholder::Password => data.password().expose_secret().is_empty(),
            Placeholder::Session => false,
            Placeholder::Country | Placeholder::CountryUpper => data.country().is_none(),
            other => values.get(other).is_none(),
        };
        for template in [&username, &password] {
            if let Some(p) = Placeholder::ALL
                .into_iter()
                .find(|&p| template.uses(p) && missing(p))
            {
                return Err(ProviderError::Template {
                    side: template.side,
                    reason: format!("{p} is used but has no value"),
                });
            }
        }
        // A value nobody uses is a parameter silently dropped: refuse it.
        let unused = [
            ("country", data.country().is_some() && !country_used),
            (
                "username",
                !data.username().is_empty() && !used(Placeholder::Username),
            ),
            (
                "password",
                !data.password().expose_secret().is_empty() && !used(Placeholder::Password),
            ),
            ("state", values.state.is_some() && !used(Placeholder::State)),
            ("city", values.city.is_some() && !used(Placeholder::City)),
            ("zip", values.zip.is_some() && !used(Placeholder::Zip)),
            ("asn", values.asn.is_some() && !used(Placeholder::Asn)),
            ("isp", values.isp.is_some() && !used(Placeholder::Isp)),
            (
                "session_lifetime",
                options.session_lifetime.is_some()
                    && !used(Placeholder::Lifetime)
                    && !used(Placeholder::LifetimeMinutes),
            ),
        ];
        if let Some((option, _)) = unused.iter().find(|(_, unused)| *unused) {
            return Err(ProviderError::Template {
                side: CredentialSide::Username,
                reason: format!("`{option}` is set but neither template uses it"),
            });
        }
        for (p, value) in [
            (Placeholder::Username, Some(data.username())),
            (Placeholder::State, values.state.as_deref()),
            (Placeholder::City, values.city.as_deref()),
            (Placeholder::Zip, values.zip.as_deref()),
            (Placeholder::Isp, values.isp.as_deref()),
        ] {
            if username.uses(p) && value.is_some_and(|v| v.contains(':')) {
                return Err(username_error(&format!(
                    "the value of {p} contains `:`, which HTTP Basic authentication cannot carry in a username"
                )));
            }
        }
        Ok(Self {
            data,
            username,
            password,
            values,
            session_rule: SessionRule::alphanumeric_up_to(NAME, options.session_id_max_len)?,
        })
    }

    fn values(options: &TemplateOptions) -> Result<Values, ProviderError> {
        const NAME: &str = Template::NAME;
        let text = |option: &'static str, value: &Option<String>| {
            value
                .as_deref()
                .map(|v| {
                    let bad = if v.is_empty() {
                        Some("empty")
                    } else if v.chars().any(char::is_control) {
                        Some("contains a control character")
                    } else {
                        None
                    };
                    match bad {
                        Some(reason) => Err(ProviderError::InvalidOption {
                            provider: NAME,
                            option,
                            value: v.to_owned(),
                            reason: reason.to_owned(),
                        }),
                        None => Ok(v.to_owned()),
                    }
                })
                .transpose()
        };
        let lifetime = options
            .session_lifetime
            .map(|d| targeting::lifetime(NAME, d, targeting::LifetimeUnit::Seconds, 1, u64::MAX))
            .transpose()?;
        Ok(Values {
            state: text("state", &options.state)?,
            city: text("city", &options.city)?,
            zip: text("zip", &options.zip)?,
            asn: options
                .asn
                .map(|a| targeting::asn(NAME, a).map(|a| a.to_string()))
                .transpose()?,
            isp: text("isp", &options.isp)?,
            lifetime: lifetime.map(|s| s.to_string()),
            // Only whole minutes have a minutes value; a template using
            // {lifetime_minutes} then reports the missing value.
            lifetime_minutes: lifetime
                .filter(|s| s % 60 == 0)
                .map(|s| (s / 60).to_string()),
        })
    }

    /// The account and gateway this template was built from.
    pub fn data(&self) -> &ProxyData {
        &self.data
    }

    /// The session ids this template accepts.
    pub fn session_rule(&self) -> &SessionRule {
        &self.session_rule
    }

    /// Where the session id goes: the username if its template uses
    /// `{session}`, else the password.
    pub fn session_side(&self) -> CredentialSide {
        if self.username.uses(Placeholder::Session) {
            CredentialSide::Username
        } else {
            CredentialSide::Password
        }
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The password template's literal text may be secret: show only
        // which placeholders it uses.
        f.debug_struct("Template")
            .field("data", &self.data)
            .field("username_placeholders", &self.username.placeholders())
            .field("password_placeholders", &self.password.placeholders())
            .field("values", &self.values)
            .field("session_rule", &self.session_rule)
            .finish()
    }
}

impl ProxyProvider for Template {
    fn build_proxy_url(&self, session: &SessionId) -> Result<ProxyUrl, InvalidInput> {
        self.session_rule.check(session)?;
        let username = self.username.render(&self.values, &self.data, session);
        let password = self.password.render(&self.values, &self.data, session);
        ProxyUrl::from_gateway(&self.data).with_credentials(username, SecretString::from(password))
    }

    fn new_session_id(&self) -> SessionId {
        self.session_rule.generate()
    }

    fn name(&self) -> &str {
        Self::NAME
    }

    fn country(&self) -> Option<&str> {
        self.data.country()
    }

    fn port(&self) -> u16 {
        self.data.port()
    }
}
