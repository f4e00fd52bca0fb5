//! Two things the crate embeds from outside its folder, which cargo does not
//! watch by itself:
//!
//! - `migrations/`: `sqlx::migrate!` embeds it at compile time; a migration
//!   added or changed rebuilds the crate;
//! - `schemas/`: every JSON Schema becomes a constant of
//!   `xentri_core::contracts`, so adding an event type's contract is adding
//!   its file, `schemas/events/{type}.json`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("schemas");
    let events = root.join("events");
    // A directory is watched whole: a file added, changed or removed re-runs this.
    println!("cargo:rerun-if-changed={}", root.display());
    println!("cargo:rerun-if-changed={}", events.display());

    let mut files: Vec<PathBuf> = match std::fs::read_dir(&events) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect(),
        Err(error) => panic!("cannot read {}: {error}", events.display()),
    };
    files.sort();

    let mut code = String::from("/// Every event payload schema: (file stem, text), sorted by file name.\n");
    code.push_str("pub(crate) const EVENT_SCHEMAS: &[(&str, &str)] = &[\n");
    for path in &files {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        println!("cargo:rerun-if-changed={}", path.display());
        let _ = writeln!(code, "    ({stem:?}, include_str!({:?})),", path.display().to_string());
    }
    code.push_str("];\n");
    for (name, file) in [("ENVELOPE", "envelope.json"), ("NEW_EVENT", "new-event.json")] {
        let path = root.join(file);
        println!("cargo:rerun-if-changed={}", path.display());
        let _ = writeln!(
            code,
            "/// `schemas/{file}`.\npub(crate) const {name}: &str = include_str!({:?});",
            path.display().to_string()
        );
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("schemas.rs");
    if let Err(error) = std::fs::write(&out, code) {
        panic!("cannot write {}: {error}", out.display());
    }
}
