//! `docs/observability.md`, where the checker finds the tables it keeps in step with the code and the
//! files (tag bounds, the design record's mapping, the agent-integration list, the cost), each between
//! `<!-- <name>:start -->` and `<!-- <name>:end -->` on lines of their own.

/// The document, relative to the repository root.
pub const PATH: &str = "docs/observability.md";

/// The text between the markers of `name` (from the line after the start marker), or which marker is
/// missing.
pub fn section<'d>(doc: &'d str, name: &str) -> Result<&'d str, String> {
    let start_marker = format!("<!-- {name}:start -->\n");
    let end_marker = format!("<!-- {name}:end -->");
    let start = doc
        .find(&start_marker)
        .ok_or_else(|| format!("has no `{}` marker", start_marker.trim()))?
        + start_marker.len();
    let end = doc[start..]
        .find(&end_marker)
        .ok_or_else(|| format!("has no `{end_marker}` marker"))?;
    Ok(&doc[start..start + end])
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_text_between_the_markers() {
        let doc = "a\n<!-- t:start -->\n| x |\n<!-- t:end -->\nb";
        assert_eq!(super::section(doc, "t").as_deref(), Ok("| x |\n"));
        assert!(super::section(doc, "u").is_err_and(|e| e.contains("<!-- u:start -->")));
    }
}
