//! Build script: rebuild when a migration changes, because `embed_migrations!` copies them into
//! the binary and cargo does not otherwise know they are inputs.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
