//! Rebuild when a migration file is added: `sqlx::migrate!` embeds the
//! files it finds at compile time, and Cargo only tracks the ones it read.

fn main() {
    println!("cargo:rerun-if-changed=../migrations/postgres");
}
