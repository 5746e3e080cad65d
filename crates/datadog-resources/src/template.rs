//! Placeholders in resource files, in the `${...}` syntax of Terraform's `templatefile()`, for the two
//! values a file cannot know: where the runbooks are published and the ids Datadog gives SLOs.
//!
//! - `${runbooks_url}`: base URL of `docs/runbooks/` (e.g. the repository's browse URL), in monitor
//!   messages.
//! - `${slo.<stem>}`: the id of the SLO in `slos/<stem>.json`, in burn-rate monitor queries.
//!
//! `apply` fills them in (`--runbooks-url`, SLO ids found or created first); Terraform users pass the
//! same variables to `templatefile()`.

/// The runbook base URL variable.
pub const RUNBOOKS_URL: &str = "runbooks_url";
/// Prefix of SLO id variables.
pub const SLO_PREFIX: &str = "slo.";

/// The names of the placeholders in `text`, in order (`"${slo.availability}"` gives `slo.availability`).
pub fn placeholders(text: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                names.push(&after[..end]);
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    names
}

/// `text` with every placeholder replaced by `lookup(name)`; the first name `lookup` does not know is
/// the error.
pub fn render(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("unclosed placeholder in {text:?}"));
        };
        let name = &after[..end];
        out.push_str(&lookup(name).ok_or_else(|| format!("no value for ${{{name}}}"))?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Renders every string inside `value`.
pub fn render_value(
    value: &serde_json::Value,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    Ok(match value {
        Value::String(s) => Value::String(render(s, lookup)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_value(v, lookup))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_value(v, lookup)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_renders_placeholders() {
        let text = r#"burn_rate("${slo.availability}") see ${runbooks_url}/x.md"#;
        assert_eq!(placeholders(text), ["slo.availability", "runbooks_url"]);
        let lookup = |name: &str| match name {
            "slo.availability" => Some("abc".to_owned()),
            "runbooks_url" => Some("https://r".to_owned()),
            _ => None,
        };
        assert_eq!(
            render(text, &lookup).as_deref(),
            Ok(r#"burn_rate("abc") see https://r/x.md"#)
        );
        assert!(render("${nope}", &lookup).is_err());
    }
}
