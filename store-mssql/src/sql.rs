//! The T-SQL the store sends, built once per store for its schema.
//!
//! Every value travels as a parameter (`@P1`, `@P2`…, bound by tiberius
//! through `sp_executesql`); only the schema name is spliced into the text,
//! and only after [`Schema::new`] has accepted it as a regular identifier
//! and bracket-quoted it.
//!
//! Parameters arrive as `nvarchar`. The key columns are `varchar` with a
//! binary collation, so each batch converts the IP and domain once into
//! `varchar` variables: comparing a `varchar` column with an `nvarchar`
//! value would convert the column instead and could turn the index seek
//! into a scan. Both are ASCII after normalisation, so nothing is lost.
//!
//! A row expires at `DATEADD(second, ttl_seconds, reserved_at)`, the rule of
//! the original design (and of store-postgres), so its applications and
//! this store agree on expiry when they share the table.
//!
//! # Clock
//!
//! `SYSUTCDATETIME()` is read once per statement, when it starts; a
//! statement that first waits for a row lock judges expiry by that slightly
//! earlier instant. For a takeover this only delays it (never early); for
//! release, renew and cooldown the only concurrent writer of a row is a
//! takeover or an operator release, after which `released = 1` no longer
//! matches.

use std::fmt;

use crate::error::MssqlStoreError;

/// Name of the reservation table.
pub const TABLE: &str = "proxy_reservation";
/// Name of the sequence that issues fencing generations.
pub const GENERATION_SEQUENCE: &str = "proxy_reservation_generation";
/// Name of the table that records applied migrations.
pub const MIGRATIONS_TABLE: &str = "proxy_reservation_migrations";

/// Longest identifier SQL Server accepts (`sysname`).
const MAX_IDENTIFIER_CHARS: usize = 128;

/// A validated schema name.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Schema(String);

impl Schema {
    /// Accepts a regular identifier: an ASCII letter or `_` first, then
    /// letters, digits and `_`, at most 128 characters. Anything else
    /// (spaces, brackets, quotes, dots) is refused rather than escaped, so
    /// the name reads the same in every tool.
    pub(crate) fn new(name: &str) -> Result<Self, MssqlStoreError> {
        let reject = |reason: &str| MssqlStoreError::InvalidOption {
            option: "schema",
            value: name.to_owned(),
            reason: reason.to_owned(),
        };
        let mut chars = name.chars();
        match chars.next() {
            None => return Err(reject("empty")),
            Some(first) if !(first.is_ascii_alphabetic() || first == '_') => {
                return Err(reject("must start with an ASCII letter or '_'"));
            }
            Some(_) => {}
        }
        if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(reject("only ASCII letters, digits and '_' are allowed"));
        }
        if name.len() > MAX_IDENTIFIER_CHARS {
            return Err(reject("longer than 128 characters"));
        }
        Ok(Self(name.to_owned()))
    }

    /// The bare name.
    pub(crate) fn name(&self) -> &str {
        &self.0
    }

    /// `[schema].[object]`, bracket-quoted (a `]` would be doubled, though
    /// [`Schema::new`] never lets one through).
    pub(crate) fn qualify(&self, object: &str) -> String {
        format!("{}.{}", quote_identifier(&self.0), quote_identifier(object))
    }
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// `[name]` with `]` doubled: T-SQL's delimited identifier.
pub(crate) fn quote_identifier(name: &str) -> String {
    format!("[{}]", name.replace(']', "]]"))
}

/// The statements of one store, for one schema.
#[derive(Debug, Clone)]
pub(crate) struct Statements {
    pub(crate) reserve: String,
    pub(crate) release: String,
    pub(crate) release_with_cooldown: String,
    pub(crate) renew: String,
    pub(crate) release_by_id: String,
    pub(crate) purge: String,
    table: String,
}

/// When a row expires, for a statement on the table.
pub(crate) const EXPIRES_AT: &str = "DATEADD(second, ttl_seconds, reserved_at)";

/// Columns read for a lease, with its expiry as `expires_at`.
pub(crate) const LEASE_COLUMNS: &str = "id, generation, ip_address, target_domain, app_id, \
     reserved_at, DATEADD(second, ttl_seconds, reserved_at) AS expires_at, released, released_at, \
     cooling_down";

/// Rows a purge deletes per statement, so that it never escalates to a
/// table lock that would stall reservers.
pub(crate) const PURGE_CHUNK: u32 = 5000;

impl Statements {
    pub(crate) fn new(schema: &Schema) -> Self {
        let table = schema.qualify(TABLE);
        let sequence = schema.qualify(GENERATION_SEQUENCE);
        Self {
            reserve: reserve_sql(&table),
            release: format!(
                "DECLARE @now datetime2(7) = SYSUTCDATETIME();
UPDATE {table}
   SET released = 1, released_at = @now
OUTPUT inserted.id
 WHERE id = @P1 AND generation = @P2
   AND released = 0 AND cooling_down = 0 AND {EXPIRES_AT} > @now;"
            ),
            // The cooldown keeps the row (and so the key's place in the
            // unique index) and gets a new generation, which makes the
            // former holder's lease stale.
            release_with_cooldown: format!(
                "DECLARE @now datetime2(7) = SYSUTCDATETIME();
UPDATE {table}
   SET cooling_down = 1,
       generation = NEXT VALUE FOR {sequence},
       reserved_at = @now,
       ttl_seconds = @P3
OUTPUT inserted.id
 WHERE id = @P1 AND generation = @P2
   AND released = 0 AND cooling_down = 0 AND {EXPIRES_AT} > @now;"
            ),
            // Renewal keeps reserved_at (when the lease was granted) and
            // sets ttl_seconds to the whole seconds elapsed, rounded up,
            // plus the new TTL, so that expiry stays reserved_at +
            // ttl_seconds for every reader of the table (at most a second
            // later than asked, never earlier).
            renew: format!(
                "DECLARE @now datetime2(7) = SYSUTCDATETIME();
UPDATE {table}
   SET ttl_seconds = CAST(CEILING(DATEDIFF_BIG(microsecond, reserved_at, @now) / 1000000.0) AS int) + @P3
OUTPUT {}
 WHERE id = @P1 AND generation = @P2
   AND released = 0 AND cooling_down = 0 AND {EXPIRES_AT} > @now;",
                inserted_columns()
            ),
            release_by_id: format!(
                "DECLARE @now datetime2(7) = SYSUTCDATETIME();
UPDATE {table}
   SET released = 1, released_at = @now
OUTPUT inserted.id
 WHERE id = @P1 AND released = 0 AND {EXPIRES_AT} > @now;"
            ),
            purge: purge_sql(&table),
            table,
        }
    }

    /// The listing query for a filter; parameters in the order of
    /// [`ListQuery::domain`], [`ListQuery::app_id`], [`ListQuery::limit`]
    /// (each present only when set).
    pub(crate) fn list(&self, query: &ListQuery) -> String {
        let mut conditions = Vec::new();
        let mut next_param = 1;
        let mut param = || {
            let name = format!("@P{next_param}");
            next_param += 1;
            name
        };
        if query.domain {
            conditions.push(format!(
                "target_domain = CONVERT(varchar(255), {})",
                param()
            ));
        }
        if query.app_id {
            conditions.push(format!("app_id = {}", param()));
        }
        if !query.include_released {
            conditions.push(format!("released = 0 AND {EXPIRES_AT} > @now"));
        }
        let top = if query.limit {
            format!("TOP ({}) ", param())
        } else {
            String::new()
        };
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("\n WHERE {}", conditions.join("\n   AND "))
        };
        format!(
            "DECLARE @now datetime2(7) = SYSUTCDATETIME();
SELECT {top}{LEASE_COLUMNS}, @now AS as_of
  FROM {table}{filter}
 ORDER BY reserved_at DESC, generation DESC;",
            table = self.table
        )
    }
}

/// Which optional conditions a listing has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ListQuery {
    pub(crate) domain: bool,
    pub(crate) app_id: bool,
    pub(crate) include_released: bool,
    pub(crate) limit: bool,
}

/// [`LEASE_COLUMNS`] as seen by an `OUTPUT` clause.
fn inserted_columns() -> String {
    "inserted.id, inserted.generation, inserted.ip_address, inserted.target_domain, \
     inserted.app_id, inserted.reserved_at, \
     DATEADD(second, inserted.ttl_seconds, inserted.reserved_at) AS expires_at, \
     inserted.released, inserted.released_at, inserted.cooling_down"
        .to_owned()
}

/// The reserve batch: one round trip, one transaction, the unique filtered
/// index as the arbiter.
///
/// Parameters: `@P1` IP, `@P2` domain, `@P3` app id, `@P4` TTL in seconds.
/// Result: one row (the granted lease) or none (the key is taken).
///
/// Why exactly one of K concurrent reservers wins, for a free key and for an
/// expired one:
///
/// - The `UPDATE` releases an expired row of the key. It locks that row
///   exclusively (under READ COMMITTED SNAPSHOT too: `UPDATE` locates its
///   rows with update locks on the current data, not on row versions). A
///   second batch for the same key blocks on that lock until the first
///   commits, then sees `released = 1`, no longer matches and updates
///   nothing. If the first rolls back, the second releases the row itself.
/// - The `INSERT` then meets the unique index on `(ip_address,
///   target_domain) WHERE released = 0`. A uniqueness check waits for an
///   uncommitted key of another transaction, whatever the isolation level,
///   so of K concurrent inserts of one key exactly one commits and the rest
///   fail with 2601.
/// - 2601/2627 are caught here: with `XACT_ABORT ON` the error dooms the
///   transaction, the `CATCH` block rolls it back (undoing this batch's own
///   `UPDATE`, which only ever released an already-expired row; the winner
///   ran its own) and the batch returns no row: `Taken`. Catching it in
///   T-SQL rather than in the client keeps a normal collision from arriving
///   as a server error (which tiberius logs at ERROR level). Any other
///   error is re-thrown with its number (`THROW;`).
/// - The granted row is written to a table variable by `OUTPUT … INTO` and
///   selected only after `COMMIT`, so a row reaches the client only for a
///   committed reservation. (Table variables ignore rollbacks.)
///
/// No `MERGE`: without `HOLDLOCK` two MERGEs can both see "no row" and both
/// insert (the index would still stop the second, but MERGE adds nothing to
/// the UPDATE + INSERT pair and has a long list of known issues).
fn reserve_sql(table: &str) -> String {
    format!(
        "SET XACT_ABORT ON;
DECLARE @ip varchar(45) = CONVERT(varchar(45), @P1);
DECLARE @domain varchar(255) = CONVERT(varchar(255), @P2);
DECLARE @now datetime2(7);
DECLARE @granted TABLE (
    id bigint NOT NULL,
    generation bigint NOT NULL,
    reserved_at datetime2(7) NOT NULL,
    expires_at datetime2(7) NOT NULL
);
BEGIN TRY
    BEGIN TRANSACTION;
    UPDATE {table}
       SET released = 1, released_at = {EXPIRES_AT}
     WHERE ip_address = @ip AND target_domain = @domain
       AND released = 0 AND {EXPIRES_AT} <= SYSUTCDATETIME();
    SET @now = SYSUTCDATETIME();
    INSERT INTO {table} (ip_address, target_domain, app_id, reserved_at, ttl_seconds)
    OUTPUT inserted.id, inserted.generation, inserted.reserved_at,
           DATEADD(second, inserted.ttl_seconds, inserted.reserved_at)
      INTO @granted
    VALUES (@ip, @domain, @P3, @now, @P4);
    COMMIT TRANSACTION;
END TRY
BEGIN CATCH
    IF XACT_STATE() <> 0 ROLLBACK TRANSACTION;
    IF ERROR_NUMBER() NOT IN (2601, 2627)
    BEGIN
        THROW;
    END;
END CATCH;
SELECT id, generation, reserved_at, expires_at FROM @granted;"
    )
}

/// Deletes released history and expired rows older than a cutoff, in
/// chunks. (Rows released by applications of the original design have no
/// `released_at`; their grant time stands in.) Parameters: `@P1` whole seconds, `@P2` extra milliseconds.
/// Result: one row, the number of rows deleted.
fn purge_sql(table: &str) -> String {
    format!(
        "DECLARE @cutoff datetime2(7) = DATEADD(millisecond, -@P2, DATEADD(second, -@P1, SYSUTCDATETIME()));
DECLARE @deleted bigint = 0, @batch bigint = 1;
WHILE @batch > 0
BEGIN
    DELETE TOP ({PURGE_CHUNK}) FROM {table}
     WHERE (released = 1 AND released_at < @cutoff)
        OR (released = 1 AND released_at IS NULL AND reserved_at < @cutoff)
        OR (released = 0 AND {EXPIRES_AT} < @cutoff);
    SET @batch = ROWCOUNT_BIG();
    SET @deleted = @deleted + @batch;
END;
SELECT @deleted AS deleted;"
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn statements() -> Statements {
        Statements::new(&Schema::new("dbo").unwrap())
    }

    #[test]
    fn schema_names_are_regular_identifiers() {
        for good in ["dbo", "proxy", "_x", "Proxy_2", &"a".repeat(128)] {
            assert_eq!(Schema::new(good).unwrap().name(), good);
        }
        for bad in [
            "",
            "1abc",
            "my schema",
            "a]b",
            "dbo].[x",
            "a.b",
            "a;DROP TABLE x",
            "\"q\"",
            "sch\u{e9}ma",
            &"a".repeat(129),
        ] {
            match Schema::new(bad) {
                Err(MssqlStoreError::InvalidOption { option, value, .. }) => {
                    assert_eq!(option, "schema");
                    assert_eq!(value, bad);
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn identifiers_are_bracket_quoted() {
        assert_eq!(quote_identifier("dbo"), "[dbo]");
        assert_eq!(quote_identifier("a]b"), "[a]]b]");
        assert_eq!(
            Schema::new("proxy").unwrap().qualify(TABLE),
            "[proxy].[proxy_reservation]"
        );
    }

    #[test]
    fn statements_use_the_schema_everywhere() {
        let s = Statements::new(&Schema::new("proxy").unwrap());
        for sql in [
            &s.reserve,
            &s.release,
            &s.release_with_cooldown,
            &s.renew,
            &s.release_by_id,
            &s.purge,
            &s.list(&ListQuery::default()),
        ] {
            assert!(sql.contains("[proxy].[proxy_reservation]"), "{sql}");
            assert!(!sql.contains("[dbo]"), "{sql}");
            assert!(!sql.contains("MERGE"), "{sql}");
        }
        // A new row takes its generation from the column default; a
        // cooldown draws a new one explicitly.
        assert!(s.reserve.contains(
            "INSERT INTO [proxy].[proxy_reservation] (ip_address, target_domain, app_id, reserved_at, ttl_seconds)"
        ));
        assert!(!s.reserve.contains("NEXT VALUE"));
        assert!(
            s.release_with_cooldown
                .contains("generation = NEXT VALUE FOR [proxy].[proxy_reservation_generation]")
        );
    }

    #[test]
    fn reserve_is_one_transaction_with_the_index_as_arbiter() {
        let sql = statements().reserve;
        let order = [
            "SET XACT_ABORT ON;",
            "BEGIN TRY",
            "BEGIN TRANSACTION;",
            "UPDATE [dbo].[proxy_reservation]",
            "released = 0 AND DATEADD(second, ttl_seconds, reserved_at) <= SYSUTCDATETIME();",
            "INSERT INTO [dbo].[proxy_reservation]",
            "INTO @granted",
            "COMMIT TRANSACTION;",
            "BEGIN CATCH",
            "IF XACT_STATE() <> 0 ROLLBACK TRANSACTION;",
            "IF ERROR_NUMBER() NOT IN (2601, 2627)",
            "THROW;",
            "END CATCH;",
            "SELECT id, generation, reserved_at, expires_at FROM @granted;",
        ];
        let mut at = 0;
        for part in order {
            let found = sql[at..]
                .find(part)
                .unwrap_or_else(|| panic!("{part:?} missing or out of order in\n{sql}"));
            at += found + part.len();
        }
        // Values only as parameters; keys converted once to varchar.
        assert!(sql.contains("CONVERT(varchar(45), @P1)"));
        assert!(sql.contains("CONVERT(varchar(255), @P2)"));
        assert!(sql.contains(
            "INSERT INTO [dbo].[proxy_reservation] (ip_address, target_domain, app_id, reserved_at, ttl_seconds)"
        ));
        assert!(sql.contains("VALUES (@ip, @domain, @P3, @now, @P4);"));
        // A taken-over row is marked released at the moment it expired.
        assert!(
            sql.contains(
                "SET released = 1, released_at = DATEADD(second, ttl_seconds, reserved_at)"
            )
        );
        assert!(!sql.contains("GETDATE"), "store clock is SYSUTCDATETIME");
    }

    #[test]
    fn lease_statements_are_keyed_by_id_and_generation() {
        let s = statements();
        for sql in [&s.release, &s.release_with_cooldown, &s.renew] {
            assert!(sql.contains("WHERE id = @P1 AND generation = @P2"), "{sql}");
            assert!(
                sql.contains(
                    "released = 0 AND cooling_down = 0 AND DATEADD(second, ttl_seconds, reserved_at) > @now"
                ),
                "{sql}"
            );
            assert!(sql.contains("OUTPUT inserted."), "{sql}");
        }
        assert!(s.release_by_id.contains(
            "WHERE id = @P1 AND released = 0 AND DATEADD(second, ttl_seconds, reserved_at) > @now"
        ));
        assert!(!s.release_by_id.contains("generation"));
        assert!(s.renew.contains("inserted.app_id"));
        assert!(s.release.contains("SET released = 1, released_at = @now"));
        // Renewal keeps reserved_at and extends ttl_seconds past the time
        // already elapsed.
        assert!(s.renew.contains(
            "SET ttl_seconds = CAST(CEILING(DATEDIFF_BIG(microsecond, reserved_at, @now) / 1000000.0) AS int) + @P3"
        ));
        assert!(!s.renew.contains("reserved_at ="));
    }

    #[test]
    fn list_builds_only_the_conditions_it_needs() {
        let s = statements();
        let all = s.list(&ListQuery::default());
        assert!(
            all.contains("WHERE released = 0 AND DATEADD(second, ttl_seconds, reserved_at) > @now"),
            "{all}"
        );
        assert!(!all.contains("@P1"));
        assert!(!all.contains("TOP"));

        let history = s.list(&ListQuery {
            include_released: true,
            ..ListQuery::default()
        });
        assert!(!history.contains("WHERE"), "{history}");

        let full = s.list(&ListQuery {
            domain: true,
            app_id: true,
            include_released: false,
            limit: true,
        });
        assert!(
            full.contains("target_domain = CONVERT(varchar(255), @P1)"),
            "{full}"
        );
        assert!(full.contains("app_id = @P2"), "{full}");
        assert!(full.contains("TOP (@P3)"), "{full}");
        assert!(full.contains("ORDER BY reserved_at DESC, generation DESC"));

        let app_only = s.list(&ListQuery {
            app_id: true,
            limit: true,
            ..ListQuery::default()
        });
        assert!(app_only.contains("app_id = @P1"), "{app_only}");
        assert!(app_only.contains("TOP (@P2)"), "{app_only}");
        // Literal comparison: no LIKE, so % and _ are data.
        assert!(!full.contains("LIKE"));
    }

    #[test]
    fn purge_deletes_in_chunks_and_only_history() {
        let sql = statements().purge;
        assert!(sql.contains(&format!("DELETE TOP ({PURGE_CHUNK})")));
        assert!(sql.contains("(released = 1 AND released_at < @cutoff)"));
        assert!(sql.contains("(released = 1 AND released_at IS NULL AND reserved_at < @cutoff)"));
        assert!(
            sql.contains("(released = 0 AND DATEADD(second, ttl_seconds, reserved_at) < @cutoff)")
        );
        assert!(sql.contains("DATEADD(second, -@P1, SYSUTCDATETIME())"));
        assert!(sql.contains("SELECT @deleted"));
    }
}
