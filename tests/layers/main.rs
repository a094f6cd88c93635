//! The layering of `src/`, enforced: every `use crate::…`, `crate::x::` and `super::` path is
//! resolved to the top-level module it names, and an import from a lower layer of [`LAYERS`]
//! into a higher one (or across one layer, unless [`SAME_LAYER`] allows it) fails, naming the
//! file and line. The order is the one `docs/architecture.md` states; a test checks the doc.
//!
//! A small tokenizer over the source (comments, strings and char literals skipped; inline
//! `mod x { … }` tracked so `super::` resolves) is enough: the crate's paths are plain.

mod paths;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use paths::{paths, tokenize};

/// The top-level modules of `src/`, lowest layer first: a module may import modules of lower
/// layers only. `main` (the binary) sits above `cli`.
const LAYERS: &[&[&str]] = &[
    &["api", "logging", "supervisor"],
    &["probe"],
    &["readiness", "files"],
    &["runner", "report", "check", "discovery"],
    &["metrics"],
    &["admin"],
    &["ui", "heartbeat"],
    &["engine"],
    &["controller", "standalone", "discover"],
    &["selftest"],
    &["cli"],
    &["main"],
];

/// Imports allowed between two modules of the same layer (importer, imported); none so far.
const SAME_LAYER: &[(&str, &str)] = &[];

/// The order as one line, as `docs/architecture.md` writes it.
fn order_line() -> String {
    let layers: Vec<String> = LAYERS.iter().map(|layer| layer.join(", ")).collect();
    layers.join(" < ")
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The top-level module a path names from module `here` (file module plus inline ones), if it
/// names one: `None` for other crates, `self::` and items of the crate root (`crate::lock`).
fn target(here: &[String], path: &[String], tops: &BTreeSet<String>) -> Option<String> {
    let (mut base, mut rest) = match path.first()?.as_str() {
        "crate" => (Vec::new(), &path[1..]),
        "super" => (here.to_vec(), path),
        "self" => (here.to_vec(), &path[1..]),
        _ => return None,
    };
    while rest.first().is_some_and(|s| s == "super") {
        base.pop();
        rest = &rest[1..];
    }
    match base.first() {
        Some(top) => Some(top.clone()),
        None => rest.first().filter(|name| tops.contains(*name)).cloned(),
    }
}

/// The module path of a file below `src/` (`runner/mod.rs` -> [runner]).
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = (relative.iter())
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if stem != "mod" && stem != "lib" {
            parts.push(stem.to_string());
        }
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The violations in one file's source: `file:line: why`.
fn check_file(name: &str, here: &[String], src: &str, tops: &BTreeSet<String>) -> Vec<String> {
    let Some(top) = here.first() else {
        return Vec::new(); // the crate root declares modules, it imports none
    };
    let Some(own) = layer_of(top) else {
        return vec![format!(
            "{name}: module `{top}` is not in LAYERS (tests/layers.rs)"
        )];
    };
    let mut problems = Vec::new();
    for found in paths(&tokenize(src)) {
        let mut module = here.to_vec();
        module.extend(found.inline.iter().cloned());
        let Some(imported) = target(&module, &found.path, tops) else {
            continue;
        };
        if imported == *top {
            continue;
        }
        let Some(layer) = layer_of(&imported) else {
            problems.push(format!(
                "{name}:{}: `{imported}` is not in LAYERS",
                found.line
            ));
            continue;
        };
        let allowed = layer < own
            || (layer == own && SAME_LAYER.contains(&(top.as_str(), imported.as_str())));
        if !allowed {
            problems.push(format!(
                "{name}:{}: `{top}` (layer {}) imports `{imported}` (layer {}) through `{}`: an upward import",
                found.line,
                own + 1,
                layer + 1,
                found.path.join("::")
            ));
        }
    }
    problems
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level modules of the library (files and folders directly in `src/`).
fn top_modules(src: &Path) -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    (files.iter())
        .filter_map(|file| module_path(file.strip_prefix(src).ok()?).first().cloned())
        .collect()
}

#[test]
fn no_module_imports_from_a_higher_layer() {
    let src = src_dir();
    let tops = top_modules(&src);
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut problems = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        if relative == Path::new("main.rs") {
            continue; // the binary, above every module
        }
        let text = std::fs::read_to_string(file).unwrap();
        let name = format!("src/{}", relative.display());
        problems.extend(check_file(&name, &module_path(relative), &text, &tops));
    }
    for top in &tops {
        if top != "main" && layer_of(top).is_none() {
            problems.push(format!("module `{top}` is not in LAYERS (tests/layers.rs)"));
        }
    }
    assert!(
        problems.is_empty(),
        "layer order {}:\n{}",
        order_line(),
        problems.join("\n")
    );
}

#[test]
fn the_architecture_doc_states_the_same_order() {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/architecture.md");
    let doc = std::fs::read_to_string(doc).unwrap();
    let line = order_line();
    assert!(
        doc.contains(&line),
        "docs/architecture.md must state the layer order `{line}`"
    );
    // The module map's first column names every module.
    let mapped: BTreeSet<&str> = (doc.lines())
        .filter_map(|row| row.strip_prefix("| ")?.split(" |").next())
        .flat_map(|cell| cell.split(", "))
        .map(|name| name.trim_matches('`'))
        .collect();
    for module in LAYERS.iter().flat_map(|layer| layer.iter()) {
        assert!(mapped.contains(module), "the module map lacks `{module}`");
    }
}

#[test]
fn the_checker_finds_upward_imports_in_groups_paths_and_supers() {
    let tops: BTreeSet<String> = LAYERS
        .iter()
        .flat_map(|l| l.iter().map(|m| m.to_string()))
        .collect();
    let here = |path: &str| path.split('/').map(String::from).collect::<Vec<_>>();
    let src = r##"
//! Mentions crate::controller in a comment, and "crate::engine::X" in a string: no import.
use crate::{api::Reason, lock, probe::{self, Outcome}};
use crate::{
    controller::{LabelGate as Gate, self},
};
fn f() -> char { let _ = '{'; let _ = r#"crate::cli"#; crate::engine::start(); '}' }
mod tests {
    use super::super::super::super::ui::Page;
    use super::*;
}
"##;
    let problems = check_file("src/runner/x/y.rs", &here("runner/x/y"), src, &tops);
    let lines: Vec<&str> = problems
        .iter()
        .map(|p| p.split(": ").next().unwrap())
        .collect();
    let expected = [
        "src/runner/x/y.rs:5",
        "src/runner/x/y.rs:5",
        "src/runner/x/y.rs:7",
        "src/runner/x/y.rs:9",
    ];
    assert_eq!(lines, expected, "{problems:#?}");
    assert!(
        problems[2].contains("`engine`") && problems[3].contains("`ui`"),
        "{problems:#?}"
    );
    // Downward and sideways-within-the-module imports pass.
    let fine = "use crate::{api::X, probe}; use super::history; fn g() { crate::readiness::f(); }";
    assert!(check_file("src/runner/task.rs", &here("runner/task"), fine, &tops).is_empty());
}
