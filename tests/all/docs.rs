//! The documentation is the repository's own: docs/api.md is the whole client contract, so no
//! file points at documents outside the repository (a clone does not have them), every setting
//! of config/default.toml is in docs/api.md with its environment variable, and every route of the
//! route table is there too. Read from the files, so a new key, route or stray link fails here,
//! naming it.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn api_md() -> String {
    std::fs::read_to_string(root().join("docs/api.md")).expect("docs/api.md")
}

/// Every file under `dir` (recursively), skipping build output, VCS data and Python caches.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !matches!(
                name.as_ref(),
                "target" | ".git" | "node_modules" | "__pycache__"
            ) {
                files_under(&path, out);
            }
        } else {
            out.push(path);
        }
    }
}

#[test]
fn nothing_links_outside_the_repository() {
    // Spelled in pieces, so this file does not find itself.
    let needles = [concat!("..", "/shared/"), concat!("/work", "/shared")];
    let root = root();
    let mut files = vec![root.join("README.md")];
    for dir in [
        "docs", "src", "crates", "tools", "scripts", "tests", "clients", "config",
    ] {
        files_under(&root.join(dir), &mut files);
    }
    assert!(files.len() > 100, "only {} files found", files.len());
    let mut offenders = Vec::new();
    for file in &files {
        let Ok(bytes) = std::fs::read(file) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        for (number, line) in text.lines().enumerate() {
            if needles.iter().any(|needle| line.contains(needle)) {
                let shown = file.strip_prefix(&root).unwrap_or(file);
                offenders.push(format!(
                    "{}:{}: {}",
                    shown.display(),
                    number + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "these lines point outside the repository (the contract is docs/api.md):\n{}",
        offenders.join("\n")
    );
}

/// Every key of config/default.toml as `section.key` (`data_dir` at the top level): the keys
/// set there, and the ones documented as commented-out lines (`# token = "..."`).
fn default_keys() -> BTreeSet<String> {
    let text =
        std::fs::read_to_string(root().join("config/default.toml")).expect("config/default.toml");
    let mut keys = BTreeSet::new();
    let table: toml::Table = text.parse().expect("config/default.toml is TOML");
    for (name, value) in &table {
        match value {
            toml::Value::Table(section) => {
                keys.extend(section.keys().map(|key| format!("{name}.{key}")));
            }
            _ => {
                keys.insert(name.clone());
            }
        }
    }
    let mut section: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.to_owned());
            continue;
        }
        let Some(comment) = line.strip_prefix('#') else {
            continue;
        };
        let Some((key, _)) = comment.trim_start().split_once(" = ") else {
            continue;
        };
        let is_key = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if is_key {
            keys.insert(match &section {
                Some(section) => format!("{section}.{key}"),
                None => key.to_owned(),
            });
        }
    }
    keys
}

/// `ROOMSTATE__SECTION__KEY` for `section.key`.
fn env_name(key: &str) -> String {
    format!("ROOMSTATE__{}", key.replace('.', "__").to_uppercase())
}

#[test]
fn every_setting_is_in_the_api_doc_with_its_environment_variable() {
    let keys = default_keys();
    for expected in [
        "data_dir",
        "http.bind",
        "admin.token",
        "auth.mode",
        "auth.hs256_secret",
        "cluster.secret",
    ] {
        assert!(
            keys.contains(expected),
            "{expected} not read from config/default.toml: {keys:?}"
        );
    }
    let doc = api_md();
    let missing: Vec<String> = keys
        .iter()
        .flat_map(|key| [format!("`{key}`"), format!("`{}`", env_name(key))])
        .filter(|name| !doc.contains(name.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/api.md does not name these settings of config/default.toml: {missing:?}"
    );
}

/// Every `(METHOD, path)` row of the route table `src/http/routes.rs` (read as text: the file is
/// already a module of `openapi.rs`): the first two string literals after each `row(`.
fn table_routes() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join("src/http/routes.rs")).expect("routes.rs");
    let table = &text[text.find("pub const ROUTES").expect("the ROUTES table")..];
    table
        .split("row(")
        .skip(1)
        .map(|row| {
            let strings: Vec<&str> = row.split('"').skip(1).step_by(2).take(2).collect();
            (strings[0].to_owned(), strings[1].to_owned())
        })
        .collect()
}

#[test]
fn every_route_is_in_the_api_doc() {
    let routes = table_routes();
    assert!(
        routes.len() > 30 && routes.contains(&("GET".into(), "/rooms/{id}/ws".into())),
        "the route table was not read: {routes:?}"
    );
    let doc = api_md();
    let missing: Vec<String> = routes
        .iter()
        .map(|(method, path)| format!("`{method} {path}"))
        .filter(|call| !(doc.contains(&format!("{call}`")) || doc.contains(&format!("{call}?"))))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/api.md does not list these routes of src/http/routes.rs: {missing:?}"
    );
}
