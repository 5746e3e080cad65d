//! docs/configuration.md is the binaries' own `--help`: its tables are made from what each binary says
//! of its settings (variable, default, text), so the reference cannot drift from the code. When a setting
//! changes, this test fails and shows the section as it must read; `DOCS_UPDATE=1` writes it.

use std::collections::BTreeSet;

use deploy_checks::{Setting, parse_settings, root, settings_of};

const BINARIES: [&str; 4] = ["gateway", "feature-service", "model-service", "materialize"];
const SERVERS: [&str; 3] = ["gateway", "feature-service", "model-service"];
const START: &str = "<!-- settings:start -->";
const END: &str = "<!-- settings:end -->";

#[test]
fn the_configuration_reference_is_the_binaries_help() {
    let path = root().join("docs/configuration.md");
    let text = std::fs::read_to_string(&path).expect("docs/configuration.md");
    let (Some(start), Some(end)) = (text.find(START), text.find(END)) else {
        panic!("docs/configuration.md lacks the {START} ... {END} markers");
    };
    let written = &text[start + START.len()..end];
    let expected = format!("\n{}", reference());
    if written == expected {
        return;
    }
    if std::env::var_os("DOCS_UPDATE").is_some() {
        let updated = format!("{}{expected}{}", &text[..start + START.len()], &text[end..]);
        std::fs::write(&path, updated).expect("write docs/configuration.md");
        return;
    }
    let first_difference = written
        .lines()
        .zip(expected.lines())
        .find(|(w, e)| w != e)
        .map_or_else(
            || "one is longer than the other".to_owned(),
            |(w, e)| format!("written:  {w}\n--help:   {e}"),
        );
    panic!(
        "docs/configuration.md differs from the binaries' --help ({first_difference}).\n\
         Rewrite it with `DOCS_UPDATE=1 cargo nextest run -p deploy-checks configuration::`; \
         it must read, between its markers:\n{expected}"
    );
}

/// The reference: the settings every binary shares, those every server shares, then each binary's own.
fn reference() -> String {
    let settings: Vec<(&str, Vec<Setting>)> = BINARIES.iter().map(|b| (*b, settings_of(b))).collect();
    let of = |binary: &str| &settings.iter().find(|(b, _)| *b == binary).expect("listed").1;
    let shared = |binaries: &[&str]| -> Vec<Setting> {
        of(binaries[0])
            .iter()
            .filter(|s| binaries.iter().all(|b| of(b).contains(s)))
            .cloned()
            .collect()
    };
    let every_binary = shared(&BINARIES);
    let every_server: Vec<Setting> = shared(&SERVERS)
        .into_iter()
        .filter(|s| !every_binary.contains(s))
        .collect();
    let common: BTreeSet<&str> = every_binary
        .iter()
        .chain(&every_server)
        .map(|s| s.env.as_str())
        .collect();
    let mut out = String::new();
    section(&mut out, "Every binary (telemetry)", &every_binary);
    section(
        &mut out,
        "Every server (gateway, feature-service, model-service)",
        &every_server,
    );
    for binary in BINARIES {
        let own: Vec<Setting> = of(binary)
            .iter()
            .filter(|s| !common.contains(s.env.as_str()))
            .cloned()
            .collect();
        section(&mut out, &format!("`{binary}`"), &own);
    }
    out
}

fn section(out: &mut String, title: &str, settings: &[Setting]) {
    out.push_str(&format!(
        "\n### {title}\n\n| variable | default | what it does |\n| --- | --- | --- |\n"
    ));
    for s in settings {
        let default = s
            .default
            .as_deref()
            .map_or_else(|| "unset".to_owned(), |d| format!("`{d}`"));
        let mut help = s.help.replace('|', "\\|");
        if let Some(possible) = &s.possible {
            if !help.ends_with('.') {
                help.push('.');
            }
            help.push_str(&format!(" One of {}.", possible.replace('|', "\\|")));
        }
        out.push_str(&format!("| `{}` | {default} | {help} |\n", s.env));
    }
}

#[test]
fn help_blocks_are_read_as_settings() {
    let help = "Usage: x [OPTIONS]\n\nOptions:\n      --listen-addr <LISTEN_ADDR>\n          Address to listen on\n          \n          [env: LISTEN_ADDR=]\n          [default: 0.0.0.0:1]\n\n      --redis-url <REDIS_URL>\n          Redis, a secret\n          \n          [env: REDIS_URL]\n\n      --snapshot\n          No environment variable\n\n      --flag <FLAG>\n          A switch\n          spanning lines\n          \n          [env: FLAG=]\n          [default: true]\n          [possible values: true, false]\n\n  -h, --help\n          Print help\n";
    let settings = parse_settings(help);
    let summary: Vec<(&str, Option<&str>, Option<&str>, &str)> = settings
        .iter()
        .map(|s| {
            (
                s.env.as_str(),
                s.default.as_deref(),
                s.possible.as_deref(),
                s.help.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("LISTEN_ADDR", Some("0.0.0.0:1"), None, "Address to listen on"),
            ("REDIS_URL", None, None, "Redis, a secret"),
            (
                "FLAG",
                Some("true"),
                Some("`true`, `false`"),
                "A switch spanning lines"
            ),
        ]
    );
}
