//! `canary check` on a corpus of hostile documents: every one ends with exit code 0, 1 or 2
//! (never a panic's 101), and every invalid one is reported with the field it breaks. Each
//! document names what it expects in the annotation `canary.test/expect`: `invalid:FIELD`,
//! or `runs` for documents that are valid and must simply run (exit code 0 or 1).

use std::{path::Path, process::Command};

use serde_json::Value;

const CANARY: &str = env!("CARGO_BIN_EXE_canary");

fn corpus() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hostile");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// What a document expects, from its annotation.
fn expectation(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let documents: Vec<Value> = serde_saphyr::from_str_multiple(&text).unwrap_or_default();
    let from_doc = documents.iter().find_map(|d| {
        d.pointer("/metadata/annotations/canary.test~1expect")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    // Documents too broken to parse carry the expectation in a comment instead.
    from_doc
        .or_else(|| {
            text.lines()
                .find_map(|l| l.strip_prefix("# expect: ").map(str::to_string))
        })
        .unwrap_or_else(|| panic!("{}: no expectation", file.display()))
}

#[test]
fn the_hostile_corpus_never_crashes_check_and_names_each_field() {
    let files = corpus();
    assert!(
        files.len() >= 40,
        "the corpus holds {} documents",
        files.len()
    );
    let secrets = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hostile-secrets");
    for file in files {
        let out = Command::new(CANARY)
            .args(["check", "-f"])
            .arg(&file)
            .arg("--secrets-dir")
            .arg(&secrets)
            .arg("--configmaps-dir")
            .arg(&secrets)
            .args(["-o", "json"])
            .output()
            .unwrap();
        let code = out.status.code();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            matches!(code, Some(0..=2)),
            "{name}: exit {code:?}: {stderr}"
        );
        let expect = expectation(&file);
        match expect.strip_prefix("invalid:") {
            Some(field) => {
                assert_eq!(code, Some(2), "{name}: expected invalid: {stderr}");
                assert!(
                    stderr.contains(field),
                    "{name}: {field} not named in: {stderr}"
                );
            }
            None => {
                assert_eq!(expect, "runs", "{name}: unknown expectation");
                assert!(matches!(code, Some(0 | 1)), "{name}: did not run: {stderr}");
            }
        }
    }
}
