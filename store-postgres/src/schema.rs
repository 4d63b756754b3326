//! Creating and upgrading the reservation table: the SQL files of
//! `migrations/postgres/`, rendered for the configured names.

use std::borrow::Cow;

use sqlx::migrate::{Migration, Migrator};
use sqlx::{AssertSqlSafe, SqlSafeStr};

use crate::sql::QualifiedTable;

/// The migration files, embedded at build time.
static EMBEDDED: Migrator = sqlx::migrate!("../migrations/postgres");

/// The table name the migration files are written for.
pub(crate) const DEFAULT_TABLE: &str = "proxy_reservation";

/// Suffix of the table that records applied migrations (one per
/// reservation table, next to it, so it never mixes with an application's
/// own `_sqlx_migrations`).
pub(crate) const MIGRATIONS_TABLE_SUFFIX: &str = "_migrations";

/// The migrations for `table`.
///
/// Every name in the files that derives from the table contains the text
/// `proxy_reservation` inside double quotes (see the header of
/// `0001_proxy_reservation.sql`), so replacing that text yields the same
/// schema under the configured name; validated names contain nothing that
/// needs escaping. With a schema configured, each migration first sets the
/// `search_path` for its own transaction, so unqualified names land in
/// that schema. For the default name and no schema the SQL is the file's,
/// byte for byte, with the checksum `sqlx migrate` would record.
pub(crate) fn migrator(table: &QualifiedTable) -> Migrator {
    let migrations = EMBEDDED
        .iter()
        .map(|migration| {
            let mut sql = String::new();
            if let Some(schema) = &table.schema {
                sql.push_str(&format!("SET LOCAL search_path TO {};\n", schema.quoted()));
            }
            sql.push_str(
                &migration
                    .sql
                    .as_str()
                    .replace(DEFAULT_TABLE, table.table.as_str()),
            );
            Migration::new(
                migration.version,
                migration.description.clone(),
                migration.migration_type,
                AssertSqlSafe(sql).into_sql_str(),
                migration.no_tx,
            )
        })
        .collect();
    let mut migrator = Migrator::with_migrations(migrations);
    migrator.dangerous_set_table_name(Cow::Owned(table.sibling(MIGRATIONS_TABLE_SUFFIX)));
    if let Some(schema) = &table.schema {
        migrator.create_schema(Cow::Owned(schema.quoted()));
    }
    migrator
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identifier::Identifier;

    #[test]
    fn default_names_run_the_files_unchanged() {
        let table = QualifiedTable::new(None, Identifier::new("table", DEFAULT_TABLE).unwrap());
        let rendered = migrator(&table);
        assert!(!EMBEDDED.migrations.is_empty());
        for (ours, file) in rendered.iter().zip(EMBEDDED.iter()) {
            assert_eq!(ours.sql.as_str(), file.sql.as_str());
            assert_eq!(ours.checksum, file.checksum);
        }
        assert_eq!(rendered.table_name, "\"proxy_reservation_migrations\"");
    }

    #[test]
    fn custom_names_replace_every_derived_name() {
        let table = QualifiedTable::new(
            Some(Identifier::new("schema", "scraping").unwrap()),
            Identifier::new("table", "leases").unwrap(),
        );
        let rendered = migrator(&table);
        let sql = rendered.iter().next().unwrap().sql.as_str();
        assert!(sql.starts_with("SET LOCAL search_path TO \"scraping\";\n"));
        assert!(!sql.contains(DEFAULT_TABLE), "{sql}");
        for name in [
            "\"leases\"",
            "\"uq_leases_ip_address\"",
            "\"leases_generation_seq\"",
            "\"ix_leases_domain\"",
            "\"ix_leases_app\"",
            "\"ix_leases_purge\"",
        ] {
            assert!(sql.contains(name), "{name} missing from {sql}");
        }
        assert_eq!(rendered.table_name, "\"scraping\".\"leases_migrations\"");
        assert_eq!(rendered.create_schemas.as_ref(), ["\"scraping\""]);
    }
}
