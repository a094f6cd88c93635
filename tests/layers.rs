//! The layering of `src/`, enforced: every `use crate::…`, `crate::x::` and `super::` path is
//! resolved to the top-level module it names, and an import from a lower layer of [`LAYERS`]
//! into a higher one (or across one layer, unless [`SAME_LAYER`] allows it) fails, naming the
//! file and line. The order is the one `docs/architecture.md` states; a test checks the doc.
//!
//! A small tokenizer over the source (comments, strings and char literals skipped; inline
//! `mod x { … }` tracked so `super::` resolves) is enough: the crate's paths are plain.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

/// The top-level modules of `src/`, lowest layer first: a module may import modules of lower
/// layers only. `main` (the binary) sits above `cli`.
const LAYERS: &[&[&str]] = &[
    &["api", "logging", "supervisor"],
    &["probe"],
    &["readiness", "files"],
    &["runner", "report", "check"],
    &["metrics"],
    &["admin"],
    &["ui"],
    &["engine"],
    &["controller", "standalone"],
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

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    Sep,
    Open,
    Close,
    Semi,
    Comma,
    Star,
    Dollar,
    Other,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

/// Reads the source into the tokens paths are made of; comments, strings and char literals
/// are skipped (their braces and `crate::` do not count).
fn tokenize(src: &str) -> Vec<Token> {
    let chars: Vec<char> = src.chars().collect();
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let (mut i, mut line, mut out) = (0, 1, Vec::new());
    let mut push = |tok: Tok, line: usize| out.push(Token { tok, line });
    while i < chars.len() {
        let c = chars[i];
        let start_line = line;
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            '/' if at(i + 1) == '/' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if at(i + 1) == '*' => i = block_comment(&chars, i, &mut line),
            '"' => i = string(&chars, i + 1, 0, &mut line),
            '\'' => i = quote(&chars, i),
            ':' if at(i + 1) == ':' => {
                push(Tok::Sep, line);
                i += 2;
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut end = i;
                while end < chars.len() && (chars[end].is_alphanumeric() || chars[end] == '_') {
                    end += 1;
                }
                let word: String = chars[i..end].iter().collect();
                let raw = word.contains('r') && matches!(at(end), '"' | '#');
                if matches!(word.as_str(), "b" | "c" | "r" | "br" | "cr") && (raw || at(end) == '"')
                {
                    if word == "r" && at(end) == '#' && at(end + 1) != '"' && at(end + 1) != '#' {
                        // A raw identifier (`r#type`): never a path keyword.
                        push(Tok::Other, line);
                        i = end + 1;
                        continue;
                    }
                    let hashes = chars[end..].iter().take_while(|c| **c == '#').count();
                    let quote_at = end + hashes;
                    i = string(
                        &chars,
                        quote_at + 1,
                        if raw { hashes + 1 } else { 0 },
                        &mut line,
                    );
                    continue;
                }
                push(Tok::Ident(word), start_line);
                i = end;
            }
            c if c.is_ascii_digit() => {
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                push(Tok::Other, line);
            }
            _ => {
                let tok = match c {
                    '{' => Tok::Open,
                    '}' => Tok::Close,
                    ';' => Tok::Semi,
                    ',' => Tok::Comma,
                    '*' => Tok::Star,
                    '$' => Tok::Dollar,
                    _ => Tok::Other,
                };
                push(tok, line);
                i += 1;
            }
        }
    }
    out
}

/// Skips a (nested) block comment starting at `i`; returns the index after it.
fn block_comment(chars: &[char], mut i: usize, line: &mut usize) -> usize {
    let mut depth = 0;
    while i < chars.len() {
        match (chars[i], chars.get(i + 1).copied().unwrap_or('\0')) {
            ('/', '*') => {
                depth += 1;
                i += 2;
            }
            ('*', '/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            (c, _) => {
                *line += usize::from(c == '\n');
                i += 1;
            }
        }
    }
    i
}

/// Skips a string body from `i` (after the opening quote); `raw` is 0 for an escaped string,
/// else 1 + the number of `#`s that close it. Returns the index after the closing quote.
fn string(chars: &[char], mut i: usize, raw: usize, line: &mut usize) -> usize {
    while i < chars.len() {
        match chars[i] {
            '\\' if raw == 0 => i += 2,
            '"' => {
                let hashes = raw.saturating_sub(1);
                let closing = chars[i + 1..].iter().take(hashes).all(|c| *c == '#');
                if raw == 0 || (closing && chars.len() > i + hashes) {
                    return i + 1 + hashes;
                }
                i += 1;
            }
            c => {
                *line += usize::from(c == '\n');
                i += 1;
            }
        }
    }
    i
}

/// Skips a char literal (`'{'`, `'\n'`) or a lifetime's quote at `i`.
fn quote(chars: &[char], i: usize) -> usize {
    let at = |j: usize| chars.get(j).copied().unwrap_or('\0');
    if at(i + 1) == '\\' {
        let mut j = i + 2;
        while j < chars.len() && chars[j] != '\'' {
            j += 1;
        }
        j + 1
    } else if at(i + 2) == '\'' {
        i + 3
    } else {
        i + 1
    }
}

/// One path that may name another module, where it was written and in which inline module.
#[derive(Debug, Clone)]
struct Found {
    line: usize,
    /// Inline `mod` blocks around it (`tests`, …).
    inline: Vec<String>,
    path: Vec<String>,
}

/// Every `use` leaf and every `crate::x` / `super::…::x` path of a token stream.
fn paths(tokens: &[Token]) -> Vec<Found> {
    let ident = |i: usize| match tokens.get(i).map(|t| &t.tok) {
        Some(Tok::Ident(word)) => Some(word.as_str()),
        _ => None,
    };
    let is = |i: usize, tok: Tok| tokens.get(i).is_some_and(|t| t.tok == tok);
    let (mut out, mut mods, mut depth, mut i) = (Vec::new(), Vec::<(String, usize)>::new(), 0, 0);
    while i < tokens.len() {
        let inline: Vec<String> = mods.iter().map(|(name, _)| name.clone()).collect();
        match (&tokens[i].tok, ident(i)) {
            (_, Some("mod")) if ident(i + 1).is_some() && is(i + 2, Tok::Open) => {
                depth += 1;
                mods.push((ident(i + 1).unwrap_or_default().to_string(), depth));
                i += 3;
            }
            (_, Some("use")) => {
                i += 1;
                let mut leaves = Vec::new();
                use_tree(tokens, &mut i, Vec::new(), &mut leaves);
                for (line, path) in leaves {
                    let inline = inline.clone();
                    out.push(Found { line, inline, path });
                }
            }
            (_, Some(head @ ("crate" | "super")))
                if is(i + 1, Tok::Sep)
                    && !(i > 0 && matches!(tokens[i - 1].tok, Tok::Sep | Tok::Dollar)) =>
            {
                let mut path = vec![head.to_string()];
                let mut j = i + 2;
                while let Some(word) = ident(j) {
                    path.push(word.to_string());
                    if word != "super" || !is(j + 1, Tok::Sep) {
                        break;
                    }
                    j += 2;
                }
                out.push(Found {
                    line: tokens[i].line,
                    inline,
                    path,
                });
                i = j + 1;
            }
            (Tok::Open, _) => {
                depth += 1;
                i += 1;
            }
            (Tok::Close, _) => {
                if mods.last().is_some_and(|(_, at)| *at == depth) {
                    mods.pop();
                }
                depth -= 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    out
}

/// Parses one use tree from `i`, adding each leaf path (with its line) under `prefix`.
fn use_tree(
    tokens: &[Token],
    i: &mut usize,
    mut path: Vec<String>,
    out: &mut Vec<(usize, Vec<String>)>,
) {
    while let Some(token) = tokens.get(*i) {
        match &token.tok {
            Tok::Ident(word) => {
                path.push(word.clone());
                *i += 1;
                if tokens.get(*i).is_some_and(|t| t.tok == Tok::Sep) {
                    *i += 1;
                    continue;
                }
                out.push((token.line, path));
                return;
            }
            Tok::Sep => *i += 1,
            Tok::Star => {
                out.push((token.line, path));
                *i += 1;
                return;
            }
            Tok::Open => {
                *i += 1;
                while tokens.get(*i).is_some_and(|t| t.tok != Tok::Close) {
                    use_tree(tokens, i, path.clone(), out);
                    while tokens
                        .get(*i)
                        .is_some_and(|t| !matches!(t.tok, Tok::Comma | Tok::Close))
                    {
                        *i += 1; // `as name`
                    }
                    if tokens.get(*i).is_some_and(|t| t.tok == Tok::Comma) {
                        *i += 1;
                    }
                }
                *i += 1;
                return;
            }
            _ => return,
        }
    }
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
