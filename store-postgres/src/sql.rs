//! The store's SQL: one statement per operation, built once per store for
//! its table name.
//!
//! # Clocks
//!
//! Writes decide expiry with `clock_timestamp()`, evaluated when the row is
//! examined, i.e. after any lock wait; `now()` is the start of the
//! transaction, so a statement that had waited for a lock would judge
//! expiry by a stale time (refusing a takeover that is due) and grant
//! leases that started in the past. Reads and purge use `now()`: a
//! single-statement transaction starts when the statement arrives, and one
//! instant for every row keeps a listing consistent. Either way the
//! database's clock decides, never the application server's.
//!
//! A row expires at `reserved_at + ttl_seconds` seconds, the rule of the
//! original design, so its applications and this store agree on expiry
//! when they share the table.

use sqlx::SqlStr;

use crate::identifier::Identifier;

/// A statement parameter.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'a> {
    Text(&'a str),
    Int(i64),
    /// `NULL` for an `int8` parameter (no `LIMIT`).
    NullInt,
}

/// `reserved_at + ttl_seconds`: when a row expires.
fn expires(alias: &str) -> String {
    format!("({alias}.reserved_at + {alias}.ttl_seconds * interval '1 second')")
}

/// The columns a listing reads, in [`ListRow`](crate::store) order.
const LIST_COLUMNS: &str = "r.id, r.generation, r.ip_address, r.target_domain, r.app_id, \
     r.reserved_at, r.released, r.released_at, r.cooling_down";

/// The statements of one store, for its table.
#[derive(Debug)]
pub(crate) struct Statements {
    pub(crate) try_reserve: SqlStr,
    pub(crate) release: SqlStr,
    pub(crate) release_with_cooldown: SqlStr,
    pub(crate) renew: SqlStr,
    pub(crate) release_by_id: SqlStr,
    pub(crate) purge_released: SqlStr,
    /// Indexed by [`list_variant`].
    list: Vec<SqlStr>,
}

/// Which listing statement serves a filter.
pub(crate) fn list_variant(by_domain: bool, by_app: bool, include_released: bool) -> usize {
    usize::from(by_domain) | usize::from(by_app) << 1 | usize::from(include_released) << 2
}

fn sql(text: String) -> SqlStr {
    // Dynamic only by the table name, a validated and quoted identifier;
    // every value travels as a parameter (or, in simple-query mode, as a
    // literal escaped by `inline`). Shared (`Arc<str>`), so handing the
    // statement to sqlx for each execution copies no text.
    sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(std::sync::Arc::<str>::from(text)))
}

impl Statements {
    pub(crate) fn new(table: &QualifiedTable) -> Self {
        let t = &table.quoted;
        // A grant is found by its key first, through the unique partial
        // index (a lookup among the key's few entries), then checked for its
        // id and generation. Found by id alone, the planner may prefer a
        // full scan of that same partial index (the `released = false`
        // condition matches its predicate), which on a small or freshly
        // analysed table it costs like a primary-key lookup, but which
        // grows with every dead entry churn leaves until vacuum.
        let live = format!(
            "r.ip_address = $1::varchar AND r.target_domain = $2::varchar \
             AND r.released = false AND r.id = $3::bigint AND r.generation = $4::bigint \
             AND r.cooling_down = false AND {} > clock_timestamp()",
            expires("r")
        );

        // One statement, one round trip, atomic under READ COMMITTED:
        //
        // - No row of the key is active: the INSERT goes in. Concurrent
        //   inserters of the same key meet in the unique partial index
        //   `uq_…_ip_address`: the later one waits for the earlier one's
        //   transaction and then takes the ON CONFLICT path instead of failing.
        // - A row occupies the key: ON CONFLICT DO UPDATE locks that row and
        //   evaluates the WHERE on its *latest committed version*, not on the
        //   statement's snapshot. If another transaction updated or deleted
        //   the row meanwhile, PostgreSQL retries the whole insert-or-lock
        //   step against the current index contents. So of K concurrent
        //   takeovers of an expired row, the first to lock it rewrites it as
        //   a fresh grant; the others then see that live version, the WHERE
        //   fails, no row is returned, and they report Taken. A release that
        //   commits first leaves no conflicting row, so the retry inserts.
        // - The takeover gives the row a new id and generation (both drawn by
        //   the INSERT's column defaults), so the expired holder's lease and
        //   an operator's `release_by_id` of the old id no longer match it.
        //
        // A data-modifying CTE that first releases the expired row and then
        // inserts would not be safe: both parts run on one snapshot, so the
        // INSERT still conflicts with the row its own CTE just released.
        let try_reserve = format!(
            "INSERT INTO {t} AS r (ip_address, target_domain, app_id, reserved_at, ttl_seconds) \
             VALUES ($1::varchar, $2::varchar, $3::varchar, clock_timestamp(), $4::integer) \
             ON CONFLICT (ip_address, target_domain) WHERE released = false \
             DO UPDATE SET id = EXCLUDED.id, generation = EXCLUDED.generation, \
                 app_id = EXCLUDED.app_id, reserved_at = clock_timestamp(), \
                 ttl_seconds = EXCLUDED.ttl_seconds, cooling_down = false, released_at = NULL \
             WHERE {expired} <= clock_timestamp() \
             RETURNING r.id, r.generation, r.reserved_at, {returned_expiry} AS expires_at",
            expired = expires("r"),
            returned_expiry = expires("r"),
        );

        // Release, cooldown and renew act on one grant: (id, generation),
        // still live. A stale lease matches no row and changes nothing.
        let release = format!(
            "UPDATE {t} AS r SET released = true, released_at = clock_timestamp() WHERE {live}"
        );
        // The cooldown keeps the row (and with it the key) but draws a new
        // generation, so the former holder's lease no longer matches it.
        let release_with_cooldown = format!(
            "UPDATE {t} AS r SET cooling_down = true, generation = DEFAULT, \
                 reserved_at = clock_timestamp(), ttl_seconds = $5::integer \
             WHERE {live}"
        );
        // Renewal keeps reserved_at (when the lease was granted) and extends
        // ttl_seconds to the whole seconds elapsed plus the new TTL, so
        // expiry stays reserved_at + ttl_seconds for every reader of the
        // table, and the lease lasts at least `ttl` from now.
        let renew = format!(
            "UPDATE {t} AS r SET ttl_seconds = \
                 greatest(0, ceil(extract(epoch FROM clock_timestamp() - r.reserved_at)))::integer \
                 + $5::integer \
             WHERE {live} \
             RETURNING r.reserved_at, {returned_expiry} AS expires_at",
            returned_expiry = expires("r"),
        );
        // The operator's release: whatever grant has this id, held or
        // cooling down, as long as it is active. `IS NOT TRUE` (the column is
        // NOT NULL, so it means `= false`) keeps the planner on the primary
        // key: `= false` would match the partial index's predicate and
        // invite a full scan of it (see `live`).
        let release_by_id = format!(
            "UPDATE {t} AS r SET released = true, released_at = clock_timestamp() \
             WHERE r.id = $1::bigint AND r.released IS NOT TRUE \
             AND {expiry} > clock_timestamp()",
            expiry = expires("r"),
        );
        // History only: released rows by release time (ix_…_purge), and rows
        // that expired unreleased before the cutoff (few: the active rows,
        // found through the unique partial index). A concurrent takeover of
        // such a row is safe: under READ COMMITTED the DELETE re-checks the
        // row's new, live version and leaves it.
        let purge_released = format!(
            "DELETE FROM {t} AS r \
             WHERE (r.released = true \
                    AND coalesce(r.released_at, r.reserved_at) \
                        < now() - $1::bigint * interval '1 microsecond') \
                OR (r.released = false \
                    AND {expiry} < now() - $1::bigint * interval '1 microsecond')",
            expiry = expires("r"),
        );

        let list = (0..8)
            .map(|variant| {
                let (by_domain, by_app, include_released) =
                    (variant & 1 != 0, variant & 2 != 0, variant & 4 != 0);
                let mut conditions = Vec::new();
                let mut next = 1;
                if by_domain {
                    conditions.push(format!("r.target_domain = ${next}::varchar"));
                    next += 1;
                }
                if by_app {
                    conditions.push(format!("r.app_id = ${next}::varchar"));
                    next += 1;
                }
                if !include_released {
                    conditions.push(format!("r.released = false AND {} > now()", expires("r")));
                }
                let conditions = if conditions.is_empty() {
                    "true".to_owned()
                } else {
                    conditions.join(" AND ")
                };
                sql(format!(
                    "SELECT {LIST_COLUMNS}, {expiry} AS expires_at, {expiry} <= now() AS expired \
                     FROM {t} AS r WHERE {conditions} \
                     ORDER BY r.reserved_at DESC, r.generation DESC LIMIT ${next}::bigint",
                    expiry = expires("r"),
                ))
            })
            .collect();

        Self {
            try_reserve: sql(try_reserve),
            release: sql(release),
            release_with_cooldown: sql(release_with_cooldown),
            renew: sql(renew),
            release_by_id: sql(release_by_id),
            purge_released: sql(purge_released),
            list,
        }
    }

    /// The listing statement for a filter shape; parameters are the domain
    /// (if filtered), the app (if filtered) and the limit, in that order.
    pub(crate) fn list(&self, by_domain: bool, by_app: bool, include_released: bool) -> &SqlStr {
        // `list` has all 8 variants by construction.
        &self.list[list_variant(by_domain, by_app, include_released)]
    }
}

/// The table (and its schema) with the names derived from it.
#[derive(Debug, Clone)]
pub(crate) struct QualifiedTable {
    pub(crate) schema: Option<Identifier>,
    pub(crate) table: Identifier,
    /// `"schema"."table"` or `"table"`, for SQL.
    pub(crate) quoted: String,
    /// `schema.table` or `table`, for messages.
    pub(crate) display: String,
    /// The unique partial index that arbitrates exclusion.
    pub(crate) unique_index: String,
}

impl QualifiedTable {
    pub(crate) fn new(schema: Option<Identifier>, table: Identifier) -> Self {
        let quoted = qualify(schema.as_ref(), &table.quoted());
        let display = match &schema {
            Some(schema) => format!("{schema}.{table}"),
            None => table.as_str().to_owned(),
        };
        let unique_index = format!("uq_{table}_ip_address");
        Self {
            schema,
            table,
            quoted,
            display,
            unique_index,
        }
    }

    /// A name derived from the table (`<table><suffix>`), quoted and
    /// schema-qualified like the table.
    pub(crate) fn sibling(&self, suffix: &str) -> String {
        qualify(
            self.schema.as_ref(),
            &format!("\"{}{suffix}\"", self.table.as_str()),
        )
    }
}

fn qualify(schema: Option<&Identifier>, quoted_name: &str) -> String {
    match schema {
        Some(schema) => format!("{}.{quoted_name}", schema.quoted()),
        None => quoted_name.to_owned(),
    }
}

/// Renders `sql` for the simple-query protocol: each `$n` is replaced by
/// parameter `n` as a literal.
///
/// Text becomes an escape-string literal (`E'…'` with `\` and `'`
/// doubled), which PostgreSQL reads the same way whatever
/// `standard_conforming_strings` says, the rule of libpq's
/// `PQescapeLiteral`. The statements cast every parameter (`$1::varchar`),
/// so literals get the same types as bound parameters.
pub(crate) fn inline(sql: &str, params: &[Param<'_>]) -> Result<String, sqlx::Error> {
    let mut out = String::with_capacity(sql.len() + 64);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let param = after[..digits]
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|n| params.get(n))
            .ok_or_else(|| {
                sqlx::Error::InvalidArgument(format!(
                    "statement refers to ${} but has {} parameters",
                    &after[..digits],
                    params.len()
                ))
            })?;
        match param {
            Param::Text(text) => {
                // A NUL would end the protocol's query string early.
                if text.contains('\0') {
                    return Err(sqlx::Error::InvalidArgument(
                        "text parameter contains a NUL character".to_owned(),
                    ));
                }
                out.push_str("E'");
                for c in text.chars() {
                    match c {
                        '\'' => out.push_str("''"),
                        '\\' => out.push_str("\\\\"),
                        c => out.push(c),
                    }
                }
                out.push('\'');
            }
            Param::Int(value) => out.push_str(&format!("({value})")),
            Param::NullInt => out.push_str("NULL"),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(schema: Option<&str>, name: &str) -> QualifiedTable {
        QualifiedTable::new(
            schema.map(|s| Identifier::new("schema", s).unwrap()),
            Identifier::new("table", name).unwrap(),
        )
    }

    #[test]
    fn names_are_quoted_and_qualified() {
        let plain = table(None, "proxy_reservation");
        assert_eq!(plain.quoted, "\"proxy_reservation\"");
        assert_eq!(plain.unique_index, "uq_proxy_reservation_ip_address");
        let custom = table(Some("scraping"), "user");
        assert_eq!(custom.quoted, "\"scraping\".\"user\"");
        assert_eq!(custom.display, "scraping.user");
        assert_eq!(
            custom.sibling("_migrations"),
            "\"scraping\".\"user_migrations\""
        );
        let statements = Statements::new(&custom);
        assert!(
            statements
                .try_reserve
                .as_str()
                .starts_with("INSERT INTO \"scraping\".\"user\" AS r")
        );
    }

    #[test]
    fn inline_escapes_text_and_numbers_parameters() {
        let sql = "SELECT $1::varchar, $2::bigint, $10::varchar, $3::bigint";
        let mut params = vec![Param::Text("o'neil\\; --"), Param::Int(-7), Param::NullInt];
        params.extend((4..=9).map(|_| Param::Int(0)));
        params.push(Param::Text("é✓"));
        assert_eq!(
            inline(sql, &params).unwrap(),
            "SELECT E'o''neil\\\\; --'::varchar, (-7)::bigint, E'é✓'::varchar, NULL::bigint"
        );
    }

    #[test]
    fn inline_rejects_nul_and_missing_parameters() {
        assert!(inline("SELECT $1", &[Param::Text("a\0b")]).is_err());
        assert!(inline("SELECT $2", &[Param::Int(1)]).is_err());
        assert!(inline("SELECT $0", &[Param::Int(1)]).is_err());
    }

    #[test]
    fn every_list_variant_numbers_its_parameters() {
        let statements = Statements::new(&table(None, "t"));
        for by_domain in [false, true] {
            for by_app in [false, true] {
                for released in [false, true] {
                    let sql = statements.list(by_domain, by_app, released).as_str();
                    let count = 1 + usize::from(by_domain) + usize::from(by_app);
                    assert!(sql.contains(&format!("LIMIT ${count}::bigint")), "{sql}");
                    assert_eq!(sql.contains("r.target_domain ="), by_domain, "{sql}");
                    assert_eq!(sql.contains("r.app_id ="), by_app, "{sql}");
                    assert_eq!(sql.contains("r.released = false"), !released, "{sql}");
                }
            }
        }
    }
}
