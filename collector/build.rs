//! Rebuilds the collector when a migration is added: `sqlx::migrate!` embeds the migrations
//! directory at compile time, and Cargo does not otherwise know to look at it.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=migrations-pg");
}
