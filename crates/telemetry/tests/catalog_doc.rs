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

fn between(doc: &str, start: &str, end: &str) -> String {
    let from = doc.find(start).unwrap_or_else(|| panic!("{start} marker")) + start.len();
    let to = doc[from..].find(end).unwrap_or_else(|| panic!("{end} marker")) + from;
    doc[from..to].to_owned()
}

#[test]
fn the_documented_planned_metrics_and_events_are_the_code_ones() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/observability.md");
    let doc = std::fs::read_to_string(path).expect("docs/observability.md");
    let planned = telemetry::catalog::planned_markdown_table();
    assert!(
        between(&doc, "<!-- planned:start -->\n", "<!-- planned:end -->") == planned,
        "docs/observability.md's planned metrics are out of step; replace the table between the markers with:\n{planned}"
    );
    let events = telemetry::catalog::events_markdown_table();
    assert!(
        between(&doc, "<!-- events:start -->\n", "<!-- events:end -->") == events,
        "docs/observability.md's events are out of step; replace the table between the markers with:\n{events}"
    );
}
