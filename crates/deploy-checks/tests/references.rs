//! What the docs and the code point a reader to exists in the repository: every relative Markdown link,
//! and every Markdown file named in a comment or a document (`see DESIGN.md` for a file the repository
//! does not hold sends an on-call engineer nowhere).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use deploy_checks::root;

/// The files git tracks (and untracked ones it does not ignore): what a fresh clone holds.
fn tracked_files() -> Vec<PathBuf> {
    let output = Command::new("git")
        .args(["ls-files", "--cached", "--others", "--exclude-standard"])
        .current_dir(root())
        .output()
        .expect("git ls-files");
    assert!(output.status.success(), "git ls-files failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| root().join(line))
        .filter(|path| path.is_file())
        .collect()
}

fn is_text(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("rs" | "md" | "toml" | "yaml" | "yml" | "tpl" | "txt" | "py" | "sh" | "proto")
    ) || path
        .file_name()
        .is_some_and(|n| n == "justfile" || n == "Dockerfile")
}

/// The targets of `[text](target)` links that point into the repository (no scheme, no pure anchor).
fn relative_links(text: &str) -> Vec<&str> {
    text.match_indices("](")
        .filter_map(|(at, _)| {
            let rest = &text[at + 2..];
            let end = rest.find(')')?;
            let target = rest[..end].split('#').next()?.trim();
            let external = target.contains("://") || target.starts_with("mailto:");
            (!target.is_empty() && !external && !target.contains(' ')).then_some(target)
        })
        .collect()
}

/// Words ending in `.md` (file names a text mentions), without surrounding punctuation.
fn markdown_names(text: &str) -> Vec<&str> {
    text.split(|c: char| c.is_whitespace() || "`'\"()[]<>,;:*".contains(c))
        .map(|word| word.trim_end_matches(['.', '!', '?']))
        .filter(|word| {
            word.ends_with(".md")
                && word.len() > 3
                && !word.contains("://")
                && !word.starts_with("//")
                && !word.starts_with('*')
                && !word.contains('{')
        })
        .collect()
}

/// Markdown files of other projects a text names on purpose, with where they are.
const ELSEWHERE: &[&str] = &[
    // Datadog's Helm chart's own changelog, read before moving the agent values to a new chart version.
    "CHANGELOG.md",
];

#[test]
fn every_relative_markdown_link_resolves() {
    let mut dangling = Vec::new();
    for file in tracked_files()
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "md"))
    {
        let text = std::fs::read_to_string(&file).expect("readable Markdown");
        let dir = file.parent().expect("a file has a folder");
        for target in relative_links(&text) {
            if !dir.join(target).exists() {
                dangling.push(format!("{} -> {target}", file.display()));
            }
        }
    }
    assert!(dangling.is_empty(), "links to nothing:\n{}", dangling.join("\n"));
}

#[test]
fn every_markdown_file_named_in_code_or_docs_is_in_the_repository() {
    let files = tracked_files();
    let names: BTreeSet<String> = files
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let this_file = Path::new(file!()).file_name().expect("a file name");
    let mut dangling = Vec::new();
    for file in files
        .iter()
        .filter(|f| is_text(f) && f.file_name() != Some(this_file))
    {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for name in markdown_names(&text) {
            let base = name.rsplit('/').next().unwrap_or(name);
            if !names.contains(base) && !ELSEWHERE.contains(&base) {
                dangling.push(format!("{} names {name}", file.display()));
            }
        }
    }
    assert!(
        dangling.is_empty(),
        "files the repository does not hold:\n{}",
        dangling.join("\n")
    );
}

#[test]
fn the_scanners_find_what_they_look_for() {
    assert_eq!(
        relative_links("see [ops](docs/operations.md#logs) and [web](https://x.io/a.md)"),
        ["docs/operations.md"]
    );
    assert_eq!(
        markdown_names("(see DESIGN.md, \"facts\") and `docs/deploy.md`."),
        ["DESIGN.md", "docs/deploy.md"]
    );
}
