//! The house keeps its shape: the engine's modules import each other in one direction only (no
//! circle), each top-level module imports only the layers docs/architecture.md allows, and the
//! core crate depends on nothing that does I/O. Read from the source, so a new `use` that breaks
//! a rule fails here with the offending file named.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// Which top-level engine modules each one may import (docs/architecture.md, "Who imports whom").
const ALLOWED: &[(&str, &[&str])] = &[
    (
        "app",
        &[
            "auth",
            "cluster",
            "config",
            "http",
            "metrics",
            "ratelimit",
            "room",
            "ws",
            "error",
            "web",
            "edge",
        ],
    ),
    (
        "http",
        &[
            "auth",
            "cluster",
            "edge",
            "error",
            "metrics",
            "ratelimit",
            "room",
            "thread_name",
            "web",
            "ws",
        ],
    ),
    ("ws", &["error", "metrics", "ratelimit", "room"]),
    ("web", &["error"]),
    ("error", &["room"]),
    ("room", &["metrics", "thread_name"]),
    // A cluster of engines routes to rooms here or on other nodes, and mirrors rooms owned
    // elsewhere for the sockets here: above the rooms, below the edges.
    ("cluster", &["room"]),
    // `config` reads and checks the user tokens' key at start, through `auth`, and parses the
    // trusted proxies and allowed origins through `edge`.
    ("config", &["auth", "edge"]),
    ("auth", &[]),
    ("edge", &[]),
    ("metrics", &[]),
    ("ratelimit", &[]),
    ("thread_name", &[]),
];

/// The crates the core must never depend on.
const NOT_IN_CORE: &[&str] = &["actix", "tokio", "redis", "diesel", "awc", "bytestring"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every non-test source file of the engine with its module path (`src/room/actor.rs` ->
/// `["room", "actor"]`).
fn engine_modules() -> Vec<(PathBuf, Vec<String>)> {
    let mut out = Vec::new();
    let mut stack = vec![root().join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let rel = path.strip_prefix(root().join("src")).unwrap();
            let mut parts: Vec<String> = rel
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            // Test modules may reach anywhere; the binary's entry point is wiring.
            if parts.iter().any(|p| p == "tests") || parts == ["main"] {
                continue;
            }
            if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
                parts.pop();
            }
            out.push((path, parts));
        }
    }
    out
}

/// The source without comments and string literals (which may span lines and hold escaped
/// quotes), so a path in a doc line or a message is no import.
fn code_only(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut chars = source.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => in_string = false,
                '\n' => out.push('\n'),
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            // A char literal holding a quote is not the start of a string.
            '\'' if chars.peek() == Some(&'"') => {
                chars.next();
            }
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// Expands a `use` tree (`super::{a::{b, c}, d}`) into its paths.
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    fn go(prefix: &str, tree: &str, out: &mut Vec<String>) {
        match tree.find('{') {
            None => {
                for part in split_top(tree) {
                    out.push(format!("{prefix}{part}"));
                }
            }
            Some(open) if tree.ends_with('}') && split_top(tree).len() == 1 => {
                let head = &tree[..open];
                let inner = &tree[open + 1..tree.len() - 1];
                for part in split_top(inner) {
                    go(&format!("{prefix}{head}"), part, out);
                }
            }
            Some(_) => {
                let parts = split_top(tree);
                if parts == [tree] {
                    // Not a use tree this parser knows (e.g. `a::{b}::c`): keep it whole
                    // rather than recurse on it forever.
                    out.push(format!("{prefix}{tree}"));
                    return;
                }
                for part in parts {
                    go(prefix, part, out);
                }
            }
        }
    }
    fn split_top(s: &str) -> Vec<&str> {
        let (mut depth, mut start, mut parts) = (0, 0, Vec::new());
        for (i, c) in s.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(&s[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        parts.push(&s[start..]);
        parts.into_iter().filter(|p| !p.is_empty()).collect()
    }
    let mut out = Vec::new();
    go("", &tree, &mut out);
    out
}

/// The engine modules `module` refers to (by `use` or by an inline `crate::` path), as module
/// paths cut to two levels (`room::actor`, `error`).
fn references(module: &[String], source: &str) -> BTreeSet<Vec<String>> {
    let code = code_only(source);
    let mut paths = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("use ") {
        let before = rest[..at].chars().last();
        rest = &rest[at + 4..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(end) = rest.find(';') {
            paths.extend(expand(&rest[..end]));
        }
    }
    let mut inline = code.as_str();
    while let Some(at) = inline.find("crate::") {
        let tail: String = inline[at..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        paths.push(tail);
        inline = &inline[at + 7..];
    }
    let parent: Vec<String> = module[..module.len().saturating_sub(1)].to_vec();
    let mut refs = BTreeSet::new();
    for path in paths {
        let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        let resolved: Vec<String> = match segments.first() {
            Some(&"crate") => segments[1..].iter().map(|s| s.to_string()).collect(),
            Some(&"super") => {
                let mut base = parent.clone();
                let mut rest = &segments[1..];
                while rest.first() == Some(&"super") {
                    base.pop();
                    rest = &rest[1..];
                }
                base.extend(rest.iter().map(|s| s.to_string()));
                base
            }
            _ => continue,
        };
        let node: Vec<String> = resolved
            .into_iter()
            .filter(|s| s.chars().next().is_some_and(|c| c.is_lowercase()))
            .take(2)
            .collect();
        if !node.is_empty() && node != module {
            refs.insert(node);
        }
    }
    refs
}

/// The module graph at two levels: `room::actor` -> {`room::commit_queue`, `metrics`, ...}.
fn graph() -> BTreeMap<Vec<String>, (PathBuf, BTreeSet<Vec<String>>)> {
    let modules = engine_modules();
    let known: BTreeSet<Vec<String>> = modules
        .iter()
        .map(|(_, m)| m.iter().take(2).cloned().collect())
        .collect();
    let mut graph = BTreeMap::new();
    for (path, module) in modules {
        let source = std::fs::read_to_string(&path).unwrap();
        let node: Vec<String> = module.iter().take(2).cloned().collect();
        let refs: BTreeSet<Vec<String>> = references(&module, &source)
            .into_iter()
            .map(|r| {
                // `room::Foo` items of a mod.rs resolve to the module itself.
                if known.contains(&r) {
                    r
                } else {
                    r[..1].to_vec()
                }
            })
            .filter(|r| *r != node && !node.starts_with(r))
            .collect();
        let entry = graph
            .entry(node)
            .or_insert_with(|| (path.clone(), BTreeSet::new()));
        entry.1.extend(refs);
    }
    graph
}

fn name(module: &[String]) -> String {
    module.join("::")
}

#[test]
fn the_engine_modules_import_each_other_without_a_circle() {
    let graph = graph();
    assert!(
        graph.contains_key(&vec!["room".to_owned(), "actor".to_owned()]),
        "the parser found the room actor: {:?}",
        graph.keys().collect::<Vec<_>>()
    );
    // Depth-first search for a back edge; report the circle it closes.
    fn visit(
        node: &Vec<String>,
        graph: &BTreeMap<Vec<String>, (PathBuf, BTreeSet<Vec<String>>)>,
        path: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
    ) {
        if done.contains(node) {
            return;
        }
        if let Some(at) = path.iter().position(|n| n == node) {
            let circle: Vec<String> = path[at..].iter().chain([node]).map(|n| name(n)).collect();
            panic!("import circle: {}", circle.join(" -> "));
        }
        path.push(node.clone());
        if let Some((_, refs)) = graph.get(node) {
            for next in refs {
                visit(next, graph, path, done);
            }
        }
        path.pop();
        done.insert(node.clone());
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(node, &graph, &mut Vec::new(), &mut done);
    }
}

#[test]
fn each_layer_imports_only_what_the_architecture_allows() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut wrong = Vec::new();
    for (node, (path, refs)) in graph() {
        let Some(top) = node.first() else { continue };
        let Some(may) = allowed.get(top.as_str()) else {
            wrong.push(format!(
                "{}: module `{top}` is not in the architecture's table",
                path.display()
            ));
            continue;
        };
        for target in refs {
            let to = target[0].as_str();
            if to != top && !may.contains(&to) {
                wrong.push(format!(
                    "{} ({}) imports {} ({to} may not be imported by {top})",
                    name(&node),
                    path.display(),
                    name(&target)
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_core_crate_depends_on_nothing_that_does_io() {
    let manifest = std::fs::read_to_string(root().join("crates/core/Cargo.toml")).unwrap();
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .expect("core has a [dependencies] table");
    for line in deps.lines().take_while(|l| !l.starts_with('[')) {
        let dep = line.split(['=', '.']).next().unwrap_or("").trim();
        for banned in NOT_IN_CORE {
            assert!(
                !dep.starts_with(banned),
                "roomstate-core depends on {dep}; the core must stay free of {NOT_IN_CORE:?}"
            );
        }
    }
    // No source file of the core names them either.
    let mut stack = vec![root().join("crates/core/src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let code = code_only(&std::fs::read_to_string(&path).unwrap());
                for banned in NOT_IN_CORE {
                    assert!(
                        !code.contains(&format!("{banned}::")),
                        "{} uses {banned}",
                        path.display()
                    );
                }
            }
        }
    }
}

#[test]
fn the_parser_sees_grouped_and_nested_imports() {
    let module = vec!["room".to_owned(), "actor".to_owned()];
    let refs = references(
        &module,
        "use super::{commit_queue::CommitQueue, deps::{RoomDeps}};\n\
         use crate::{metrics::Metrics, error};\n\
         // use crate::http::nope;\n\
         fn f() { crate::ws::session::x(); let s = \"crate::web\"; }\n\
         const M: &str = \"a message that spans \\\n lines and says use crate::http; here\";\n",
    );
    let names: Vec<String> = refs.iter().map(|r| name(r)).collect();
    assert_eq!(
        names,
        [
            "error",
            "metrics",
            "room::commit_queue",
            "room::deps",
            "ws::session"
        ]
    );
    assert!(Path::new(&root()).join("src/room/actor.rs").is_file());
}
