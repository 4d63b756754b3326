//! The embedded `migrations/mssql/*.sql` scripts and how they are applied.

use tiberius::ToSql;

use crate::connection::Connection;
use crate::error::MssqlStoreError;
use crate::sql::{MIGRATIONS_TABLE, Schema};

/// One embedded migration script.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Migration {
    /// Strictly increasing, starting at 1; the file's `NNNN_` prefix.
    pub(crate) version: i32,
    /// The file name without prefix and extension.
    pub(crate) name: &'static str,
    /// The script, with `$(SCHEMA)` placeholders and `GO` separators.
    pub(crate) script: &'static str,
}

/// Every migration, oldest first.
pub(crate) const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "proxy_reservation",
    script: include_str!("../../migrations/mssql/0001_proxy_reservation.sql"),
}];

/// The placeholder replaced by the schema name (sqlcmd's syntax).
pub(crate) const SCHEMA_PLACEHOLDER: &str = "$(SCHEMA)";

/// How long `migrate()` waits for another process's migration to finish.
const MIGRATION_LOCK_TIMEOUT_MS: i32 = 60_000;

impl Migration {
    /// The script's batches for `schema`: `$(SCHEMA)` replaced, split at
    /// lines holding only `GO`, batches of nothing but comments dropped.
    pub(crate) fn batches(&self, schema: &Schema) -> Vec<String> {
        let script = self.script.replace(SCHEMA_PLACEHOLDER, schema.name());
        let mut batches = Vec::new();
        let mut current = String::new();
        for line in script.lines() {
            if line.trim().eq_ignore_ascii_case("go") {
                batches.push(std::mem::take(&mut current));
            } else {
                current.push_str(line);
                current.push('\n');
            }
        }
        batches.push(current);
        batches.retain(|batch| has_statement(batch));
        batches
    }

    /// A fingerprint of the script as shipped (line endings normalised, so a
    /// checkout with CRLF endings gives the same value).
    pub(crate) fn checksum(&self) -> String {
        // FNV-1a, 64 bits: stable across builds and platforms, unlike
        // std's hasher.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self.script.replace("\r\n", "\n").bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{hash:016x}")
    }
}

/// Whether a batch holds anything besides blank lines and `--` comments.
fn has_statement(batch: &str) -> bool {
    batch.lines().any(|line| {
        let line = line.trim();
        !line.is_empty() && !line.starts_with("--")
    })
}

/// The batch that creates the schema and the migrations table if missing
/// and lists what was applied. Serialised with other migrators by an
/// application lock held until its transaction ends.
pub(crate) fn prepare_sql(schema: &Schema) -> String {
    let table = schema.qualify(MIGRATIONS_TABLE);
    // The schema passed Schema::new: letters, digits and '_' only, so it
    // can stand inside a string literal and brackets as is.
    let name = schema.name();
    // Both CREATEs run as dynamic SQL so that they are compiled only once
    // their IF has decided (CREATE SCHEMA must also be alone in its batch).
    format!(
        "SET XACT_ABORT ON;
BEGIN TRANSACTION;
{lock}
IF SCHEMA_ID(N'{name}') IS NULL
    EXEC(N'CREATE SCHEMA [{name}]');
IF OBJECT_ID(N'[{name}].[{MIGRATIONS_TABLE}]', N'U') IS NULL
    EXEC(N'CREATE TABLE {table} (
        version         int NOT NULL CONSTRAINT pk_{MIGRATIONS_TABLE} PRIMARY KEY,
        name            nvarchar(128) NOT NULL,
        script_checksum char(16) NOT NULL,
        applied_at      datetime2(7) NOT NULL
            CONSTRAINT df_{MIGRATIONS_TABLE}_applied_at DEFAULT (SYSUTCDATETIME())
    )');
COMMIT TRANSACTION;
SELECT version, script_checksum FROM {table} ORDER BY version;",
        lock = lock_sql()
    )
}

/// The batch that applies one migration unless another process already
/// did: `@P1` version, `@P2` name, `@P3` checksum, `@P4…` the script's
/// batches, each run by `sp_executesql` inside one transaction.
pub(crate) fn apply_sql(schema: &Schema, batch_count: usize) -> String {
    let table = schema.qualify(MIGRATIONS_TABLE);
    let mut sql = format!(
        "SET XACT_ABORT ON;
BEGIN TRANSACTION;
{lock}
IF NOT EXISTS (SELECT 1 FROM {table} WHERE version = @P1)
BEGIN
",
        lock = lock_sql()
    );
    for n in 0..batch_count {
        sql.push_str(&format!("    EXEC sp_executesql @P{};\n", n + 4));
    }
    sql.push_str(&format!(
        "    INSERT INTO {table} (version, name, script_checksum) VALUES (@P1, @P2, @P3);
END;
COMMIT TRANSACTION;"
    ));
    sql
}

fn lock_sql() -> String {
    format!(
        "DECLARE @lock int;
EXEC @lock = sp_getapplock @Resource = N'proxy_reserve.migrate', @LockMode = N'Exclusive',
     @LockOwner = N'Transaction', @LockTimeout = {MIGRATION_LOCK_TIMEOUT_MS};
IF @lock < 0
BEGIN
    THROW 50000, N'proxy_reserve: timed out waiting for another migrate() to finish', 1;
END;"
    )
}

/// Checks what the database recorded against what this build embeds and
/// returns the migrations still to apply.
pub(crate) fn pending(
    applied: &[(i32, String)],
) -> Result<Vec<&'static Migration>, MssqlStoreError> {
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    if let Some((found, _)) = applied.iter().find(|(version, _)| *version > known) {
        return Err(MssqlStoreError::UnknownMigration {
            found: *found,
            known,
        });
    }
    let mut todo = Vec::new();
    for migration in MIGRATIONS {
        match applied.iter().find(|(v, _)| *v == migration.version) {
            Some((_, checksum)) if checksum.trim() != migration.checksum() => {
                return Err(MssqlStoreError::MigrationChanged {
                    version: migration.version,
                    name: migration.name,
                    applied: checksum.trim().to_owned(),
                    embedded: migration.checksum(),
                });
            }
            Some(_) => {}
            None => todo.push(migration),
        }
    }
    Ok(todo)
}

/// Applies every pending migration on `connection`.
pub(crate) async fn run(
    connection: &mut Connection,
    schema: &Schema,
) -> Result<(), MssqlStoreError> {
    let rows = connection.rows(&prepare_sql(schema), &[]).await?;
    let mut applied = Vec::with_capacity(rows.len());
    for row in &rows {
        let version = row.try_get::<i32, _>("version").ok().flatten();
        let checksum = row.try_get::<&str, _>("script_checksum").ok().flatten();
        match (version, checksum) {
            (Some(v), Some(c)) => applied.push((v, c.to_owned())),
            _ => {
                return Err(MssqlStoreError::UnexpectedResult {
                    what: format!("a row of {MIGRATIONS_TABLE} without version or script_checksum"),
                    source: None,
                });
            }
        }
    }
    for migration in pending(&applied)? {
        let batches = migration.batches(schema);
        let checksum = migration.checksum();
        let mut params: Vec<&dyn ToSql> = vec![&migration.version, &migration.name, &checksum];
        params.extend(batches.iter().map(|b| b as &dyn ToSql));
        connection
            .query(&apply_sql(schema, batches.len()), &params)
            .await
            .map_err(|source| MssqlStoreError::Migration {
                version: migration.version,
                name: migration.name,
                source: Box::new(source),
            })?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            schema = schema.name(),
            "applied SQL Server migration"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn dbo() -> Schema {
        Schema::new("dbo").unwrap()
    }

    #[test]
    fn migrations_are_numbered_from_one_without_gaps() {
        for (i, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, i as i32 + 1, "{}", migration.name);
        }
        assert_eq!(MIGRATIONS[0].name, "proxy_reservation");
    }

    #[test]
    fn every_script_starts_with_the_filtered_index_set_options() {
        for migration in MIGRATIONS {
            let statements: Vec<&str> = migration
                .script
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("--"))
                .collect();
            assert_eq!(
                &statements[..2],
                &["SET ANSI_NULLS ON;", "SET QUOTED_IDENTIFIER ON;"],
                "migration {}",
                migration.name
            );
        }
    }

    #[test]
    fn batches_substitute_the_schema_and_split_at_go() {
        let schema = Schema::new("proxy").unwrap();
        let batches = MIGRATIONS[0].batches(&schema);
        assert_eq!(batches.len(), 4, "{batches:#?}");
        assert!(batches[0].contains("SET QUOTED_IDENTIFIER ON;"));
        assert!(batches[1].contains("CREATE SEQUENCE [proxy].[proxy_reservation_generation]"));
        assert!(batches[2].contains("CREATE TABLE [proxy].[proxy_reservation]"));
        assert!(batches[3].contains(
            "CREATE UNIQUE NONCLUSTERED INDEX uq_proxy_reservation_ip_address\n    ON [proxy].[proxy_reservation] (ip_address, target_domain)\n    WHERE released = 0;"
        ));
        for batch in &batches {
            assert!(!batch.contains("$(SCHEMA)"), "{batch}");
            assert!(
                !batch.lines().any(|l| l.trim().eq_ignore_ascii_case("go")),
                "{batch}"
            );
        }
    }

    #[test]
    fn the_table_has_the_columns_of_the_design() {
        let script = MIGRATIONS[0].script;
        for column in [
            "id            bigint IDENTITY(1, 1) NOT NULL",
            "ip_address    varchar(45)",
            "target_domain varchar(255)",
            "app_id        nvarchar(64)",
            "reserved_at   datetime2(7) NOT NULL",
            "ttl_seconds   int NOT NULL",
            "DEFAULT (1800)",
            "released      bit NOT NULL",
            "generation    bigint NOT NULL",
            "DEFAULT (NEXT VALUE FOR [$(SCHEMA)].[proxy_reservation_generation])",
            "released_at   datetime2(7) NULL",
            "cooling_down  bit NOT NULL",
        ] {
            assert!(script.contains(column), "missing {column}");
        }
        // The columns of store-postgres, no more: expiry is computed.
        assert!(!script.contains("expires_at"));
        assert!(!script.contains("release_reason"));
    }

    #[test]
    fn go_splitting_ignores_case_and_comment_only_batches() {
        let migration = Migration {
            version: 9,
            name: "t",
            script: "SET ANSI_NULLS ON;\r\ngo\r\n-- only a comment\n  GO  \nSELECT '$(SCHEMA)';\nGO\n",
        };
        let batches = migration.batches(&dbo());
        assert_eq!(batches, vec!["SET ANSI_NULLS ON;\n", "SELECT 'dbo';\n"]);
    }

    #[test]
    fn checksums_are_stable_and_ignore_line_endings() {
        let lf = Migration {
            version: 1,
            name: "x",
            script: "a\nb\n",
        };
        let crlf = Migration {
            script: "a\r\nb\r\n",
            ..lf
        };
        let other = Migration {
            script: "a\nc\n",
            ..lf
        };
        assert_eq!(lf.checksum(), crlf.checksum());
        assert_ne!(lf.checksum(), other.checksum());
        assert_eq!(lf.checksum().len(), 16);
        // FNV-1a of the empty string, a known value.
        let empty = Migration { script: "", ..lf };
        assert_eq!(empty.checksum(), "cbf29ce484222325");
    }

    #[test]
    fn pending_skips_applied_and_refuses_changed_or_unknown() {
        let all = pending(&[]).unwrap();
        assert_eq!(all.len(), MIGRATIONS.len());
        let applied: Vec<(i32, String)> = MIGRATIONS
            .iter()
            .map(|m| (m.version, m.checksum()))
            .collect();
        assert!(pending(&applied).unwrap().is_empty(), "idempotent");
        match pending(&[(1, "0000000000000000".to_owned())]) {
            Err(MssqlStoreError::MigrationChanged { version: 1, .. }) => {}
            other => panic!("{other:?}"),
        }
        match pending(&[(999, "x".to_owned())]) {
            Err(MssqlStoreError::UnknownMigration { found: 999, .. }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn apply_runs_each_batch_inside_one_locked_transaction() {
        let sql = apply_sql(&dbo(), 3);
        let order = [
            "SET XACT_ABORT ON;",
            "BEGIN TRANSACTION;",
            "sp_getapplock",
            "IF NOT EXISTS (SELECT 1 FROM [dbo].[proxy_reservation_migrations] WHERE version = @P1)",
            "EXEC sp_executesql @P4;",
            "EXEC sp_executesql @P5;",
            "EXEC sp_executesql @P6;",
            "INSERT INTO [dbo].[proxy_reservation_migrations]",
            "COMMIT TRANSACTION;",
        ];
        let mut at = 0;
        for part in order {
            let found = sql[at..]
                .find(part)
                .unwrap_or_else(|| panic!("{part:?} missing or out of order in\n{sql}"));
            at += found + part.len();
        }
        assert!(!sql.contains("@P7"));
        let prepare = prepare_sql(&Schema::new("proxy").unwrap());
        assert!(prepare.contains("EXEC(N'CREATE SCHEMA [proxy]')"));
        assert!(prepare.contains("EXEC(N'CREATE TABLE [proxy].[proxy_reservation_migrations] ("));
        assert!(prepare.contains(
            "SELECT version, script_checksum FROM [proxy].[proxy_reservation_migrations]"
        ));
    }
}
