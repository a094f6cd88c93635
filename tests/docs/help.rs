//! What `--help` says: every command's flags in alphabetical order under each heading (a user
//! scans for a name), and the stall condition of `/healthz` stated as the code decides it, in
//! `--help`, the README, the chart README and values.yaml alike.

use canary_test_harness::{chart, read, repo};

use crate::CANARY;

/// `canary ARGS --help`.
fn help(args: &[&str]) -> String {
    let out = std::process::Command::new(CANARY)
        .args(args)
        .arg("--help")
        .output()
        .expect("canary --help");
    assert!(out.status.success(), "canary {args:?} --help");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The long flags of each heading of `help`, in the order shown (`--help` and `--version`
/// left out: clap places them).
fn sections(help: &str) -> Vec<(String, Vec<String>)> {
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    for line in help.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            sections.push((line.trim_end_matches(':').to_string(), Vec::new()));
            continue;
        }
        let trimmed = line.trim_start();
        // A flag line is indented by 2 (`-f, --filename`) or 6 (`--name`); its text by 10.
        if line.len() - trimmed.len() > 6 || !trimmed.starts_with('-') {
            continue;
        }
        let long = (trimmed.split([' ', ',', '=']))
            .find(|word| word.starts_with("--"))
            .map(String::from);
        if let (Some(long), Some((_, flags))) = (long, sections.last_mut())
            && long != "--help"
            && long != "--version"
        {
            flags.push(long);
        }
    }
    sections
}

#[test]
fn every_command_lists_its_flags_in_alphabetical_order_under_each_heading() {
    let mut unordered = Vec::new();
    for command in [
        &["check"][..],
        &["discover"],
        &["standalone"],
        &["operator"],
        &["selftest"],
    ] {
        let sections = sections(&help(command));
        assert!(
            sections.iter().map(|(_, f)| f.len()).sum::<usize>() >= 3,
            "{command:?}: {sections:?}"
        );
        for (heading, flags) in sections {
            let mut sorted = flags.clone();
            sorted.sort();
            if flags != sorted {
                unordered.push(format!("{command:?} {heading}: {flags:?}"));
            }
        }
    }
    assert!(unordered.is_empty(), "not in order: {unordered:#?}");
}

/// The words every place that explains `--stall-grace` uses: the watchdog judges a run
/// against its timeout (src/runner/watchdog.rs), not the schedule against interval + timeout.
const STALL: &str = "timeout by";
const OLD_STALL: &str = "overdue by interval + timeout";

#[test]
fn the_stall_condition_reads_the_same_in_help_readme_and_chart() {
    let operator = help(&["operator"]);
    let grace = (operator.split("--stall-grace").nth(1))
        .and_then(|rest| rest.split("\n\n").next())
        .expect("--stall-grace in operator --help");
    let readme = read(&repo().join("README.md"));
    let readme_row = (readme.lines())
        .find(|l| l.starts_with("| `--stall-grace` |"))
        .expect("README's row of --stall-grace");
    let chart_readme = read(&chart::dir().join("README.md"));
    let probes = (chart_readme.split("## Health probes").nth(1))
        .and_then(|rest| rest.split("\n## ").next())
        .expect("the chart README's Health probes section");
    let liveness = (chart_readme.lines())
        .find(|l| l.starts_with("| `livenessProbe.periodSeconds` |"))
        .expect("the chart README's row of livenessProbe.periodSeconds");
    let values = read(&chart::dir().join("values.yaml"));
    let values = (values.split("livenessProbe:").nth(1))
        .and_then(|rest| rest.split("periodSeconds").next())
        .expect("values.yaml's livenessProbe comment");
    for (place, text) in [
        ("operator --help", grace),
        ("README.md", readme_row),
        ("the chart README's Health probes", probes),
        ("the chart README's livenessProbe row", liveness),
        ("values.yaml", values),
    ] {
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            text.contains(STALL) && !text.contains(OLD_STALL),
            "{place}: {text}"
        );
    }
}
