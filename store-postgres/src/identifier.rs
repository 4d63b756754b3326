//! Schema and table names: validated once, quoted everywhere.

use std::fmt;

use crate::error::PostgresStoreError;

/// Longest accepted schema or table name, in bytes.
///
/// PostgreSQL truncates identifiers at 63 bytes; the longest name derived
/// from the table (`<table>_generation_seq`) adds 15 bytes, so 40 keeps every
/// derived name whole and distinct.
pub const MAX_IDENTIFIER_BYTES: usize = 40;

/// A schema or table name the store accepts: 1 to [`MAX_IDENTIFIER_BYTES`]
/// bytes of lower-case ASCII letters, digits and `_`, not starting with a
/// digit, and (for schemas) not starting with `pg_`.
///
/// Lower case only, because PostgreSQL folds unquoted names to lower case:
/// a name that means the same quoted and unquoted can be used from `psql`
/// without surprises. The store still double-quotes every name it sends, so
/// SQL keywords such as `user` or `order` are fine.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Identifier(String);

impl Identifier {
    /// Validates `name` as the `kind` (`"schema"` or `"table"`) name.
    pub(crate) fn new(kind: &'static str, name: &str) -> Result<Self, PostgresStoreError> {
        let invalid = |reason: &'static str| PostgresStoreError::InvalidIdentifier {
            kind,
            name: name.to_owned(),
            reason,
        };
        let first = name.bytes().next().ok_or_else(|| invalid("empty"))?;
        if name.len() > MAX_IDENTIFIER_BYTES {
            return Err(invalid("longer than 40 bytes"));
        }
        if first.is_ascii_digit() {
            return Err(invalid("starts with a digit"));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(invalid(
                "only lower-case ASCII letters, digits and '_' are allowed",
            ));
        }
        if kind == "schema" && name.starts_with("pg_") {
            return Err(invalid(
                "names starting with pg_ are reserved by PostgreSQL",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// A name known to be valid (the defaults), without checking.
    pub(crate) fn trusted(name: &'static str) -> Self {
        Self(name.to_owned())
    }

    /// The bare name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name double-quoted for SQL. Validation admits no `"`, so no
    /// escaping is needed.
    pub(crate) fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }
}

impl fmt::Debug for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_lower_case_names_and_keywords() {
        for name in ["proxy_reservation", "a", "_x", "leases_2", "user", "order"] {
            let id = Identifier::new("table", name).unwrap();
            assert_eq!(id.as_str(), name);
            assert_eq!(id.quoted(), format!("\"{name}\""));
        }
        Identifier::new("table", &"t".repeat(MAX_IDENTIFIER_BYTES)).unwrap();
    }

    #[test]
    fn rejects_names_that_would_need_escaping_or_be_truncated() {
        let long = "t".repeat(MAX_IDENTIFIER_BYTES + 1);
        let cases = [
            ("", "empty"),
            ("1table", "digit"),
            ("Proxy", "lower-case"),
            ("a-b", "lower-case"),
            ("a b", "lower-case"),
            ("a\"b", "lower-case"),
            ("a;drop table x", "lower-case"),
            ("é", "lower-case"),
            (long.as_str(), "40 bytes"),
        ];
        for (name, why) in cases {
            match Identifier::new("table", name) {
                Err(PostgresStoreError::InvalidIdentifier {
                    kind,
                    name: bad,
                    reason,
                }) => {
                    assert_eq!(kind, "table");
                    assert_eq!(bad, name);
                    assert!(reason.contains(why), "{name:?}: {reason}");
                }
                other => panic!("{name:?} must be rejected, got {other:?}"),
            }
        }
    }

    #[test]
    fn pg_prefix_is_reserved_for_schemas_only() {
        assert!(Identifier::new("schema", "pg_temp").is_err());
        assert!(Identifier::new("table", "pg_leases").is_ok());
    }
}
