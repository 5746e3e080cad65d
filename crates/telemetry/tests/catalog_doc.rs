//! docs/observability.md carries the metric catalog exactly as the code defines it.

const START: &str = "<!-- catalog:start -->\n";
const END: &str = "<!-- catalog:end -->";

#[test]
fn the_documented_catalog_is_the_code_catalog() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/observability.md");
    let doc = std::fs::read_to_string(path).expect("docs/observability.md");
    let start = doc.find(START).expect("catalog start marker") + START.len();
    let end = doc[start..].find(END).expect("catalog end marker") + start;
    let expected = telemetry::catalog::markdown_table();
    assert!(
        doc[start..end] == expected,
        "docs/observability.md is out of step with telemetry::catalog; replace the table between the markers with:\n{expected}"
    );
}
