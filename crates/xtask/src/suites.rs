//! Each crate's integration tests build as one binary, `tests/main.rs`, that names every file beside it
//! as a module. A file it does not name is never compiled, so its tests would silently never run: `lint`
//! fails on one.

use std::collections::BTreeSet;
use std::path::Path;

/// Every crate under `crates/` whose `tests/main.rs` leaves a test file or module directory unnamed.
pub fn check_listed(root: &Path) -> Result<(), String> {
    let crates = std::fs::read_dir(root.join("crates")).map_err(|e| format!("crates/: {e}"))?;
    let mut problems = Vec::new();
    for entry in crates.flatten() {
        let tests = Path::new("crates").join(entry.file_name()).join("tests");
        let tests_dir = root.join(&tests);
        let Ok(main) = std::fs::read_to_string(tests_dir.join("main.rs")) else {
            continue;
        };
        let present = modules_present(&tests_dir).map_err(|e| format!("{}: {e}", tests.display()))?;
        for name in unlisted(&main, &present) {
            problems.push(format!(
                "{}: `mod {name};` is missing",
                tests.join("main.rs").display()
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "test files that no suite compiles:\n  {}",
            problems.join("\n  ")
        ))
    }
}

/// The modules a `tests/` directory holds: `name.rs` files (but `main.rs`) and `name/mod.rs` directories.
fn modules_present(tests: &Path) -> std::io::Result<BTreeSet<String>> {
    let mut present = BTreeSet::new();
    for entry in std::fs::read_dir(tests)?.flatten() {
        let path = entry.path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let is_file_module = path.extension().is_some_and(|e| e == "rs") && stem != "main";
        if is_file_module || path.join("mod.rs").is_file() {
            present.insert(stem.to_owned());
        }
    }
    Ok(present)
}

/// The present modules that `main` does not declare with a `mod name;` line.
fn unlisted(main: &str, present: &BTreeSet<String>) -> Vec<String> {
    let declared: BTreeSet<&str> = main
        .lines()
        .filter_map(|line| line.trim().strip_prefix("mod ")?.strip_suffix(';'))
        .map(str::trim)
        .collect();
    present
        .iter()
        .filter(|name| !declared.contains(name.as_str()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_file_main_does_not_name_is_reported() {
        let main = "//! Suite.\n\nmod common;\n\nmod alpha;\nmod gamma;\n";
        let present = names(&["alpha", "beta", "common", "gamma"]);
        assert_eq!(unlisted(main, &present), vec!["beta".to_owned()]);
    }

    #[test]
    fn a_commented_out_module_does_not_count() {
        let main = "// mod alpha;\nmod beta;\n";
        assert_eq!(
            unlisted(main, &names(&["alpha", "beta"])),
            vec!["alpha".to_owned()]
        );
    }

    #[test]
    fn every_crate_of_this_workspace_names_all_its_test_files() {
        check_listed(&crate::root()).unwrap();
    }
}
