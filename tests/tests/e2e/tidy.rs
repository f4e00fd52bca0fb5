//! Tidy: rules about the source tree itself, checked on every test run (in the
//! spirit of rust-analyzer's `tidy`). Each failure names the file and the rule.

use std::path::{Path, PathBuf};

use xentri_e2e::workspace;

/// Longest source file outside the test trees, in lines.
const MAX_LINES: usize = 500;
/// Library and binary sources.
const SOURCES: [&str; 6] = ["api/src", "core/src", "worker/src", "dlq-tool/src", "tests/src", "test-support/src"];
/// Test trees and examples: held to the rules that are not about size.
const TESTS: [&str; 6] = ["api/tests", "core/tests", "worker/tests", "dlq-tool/tests", "tests/tests", "tests/examples"];

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

fn files(roots: &[&str]) -> Vec<(String, String)> {
    let root = workspace();
    let mut paths = Vec::new();
    for dir in roots {
        rust_files(&root.join(dir), &mut paths);
    }
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("a readable source file");
            (path.strip_prefix(&root).expect("under the workspace").display().to_string(), text)
        })
        .collect()
}

#[test]
fn no_source_file_is_over_500_lines() {
    let long: Vec<String> = files(&SOURCES)
        .into_iter()
        .filter(|(_, text)| text.lines().count() > MAX_LINES)
        .map(|(path, text)| format!("{path}: {} lines", text.lines().count()))
        .collect();
    assert!(long.is_empty(), "split these (at most {MAX_LINES} lines each): {long:#?}");
}

#[test]
fn every_source_module_starts_with_a_module_doc() {
    let bare: Vec<String> = files(&SOURCES)
        .into_iter()
        .filter(|(_, text)| !text.trim_start().starts_with("//!"))
        .map(|(path, _)| path)
        .collect();
    assert!(bare.is_empty(), "these modules have no `//!` header saying what they are: {bare:#?}");
}

/// `path:line: text` of every line of the files under `roots` that `matches`.
fn lines_where(roots: &[&str], matches: impl Fn(&str) -> bool) -> Vec<String> {
    files(roots)
        .into_iter()
        .flat_map(|(path, text)| {
            text.lines()
                .enumerate()
                .filter(|(_, line)| matches(line))
                .map(|(n, line)| format!("{path}:{}: {}", n + 1, line.trim()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn no_code_is_kept_alive_by_allow_dead_code() {
    let marker = ["#[allow(", "dead_code)]"].concat();
    let found = lines_where(&[&SOURCES[..], &TESTS[..]].concat(), |line| line.contains(&marker));
    assert!(found.is_empty(), "remove the dead code, or use it: {found:#?}");
}

#[test]
fn every_todo_names_its_issue() {
    let todo = ["TO", "DO"].concat();
    let found = lines_where(&[&SOURCES[..], &TESTS[..]].concat(), |line| {
        line.match_indices(&todo).any(|(at, _)| !line[at + todo.len()..].trim_start().starts_with("(#"))
    });
    assert!(found.is_empty(), "write these as `{todo}(#<issue>)`: {found:#?}");
}
