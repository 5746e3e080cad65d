//! Secrets out of what logs and errors show: [`redact_url`] hides the password of a URL's user info.

/// `url` with the password of its user info replaced by `***`, for logs and errors.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let user_info = &rest[..at];
    let user = user_info.split_once(':').map_or(user_info, |(user, _)| user);
    // A URL with only a user part (`redis://secret@host`) is how some clients pass a password alone.
    let redacted = if user_info.contains(':') {
        format!("{user}:***")
    } else {
        "***".to_owned()
    };
    format!("{}{redacted}{}", &url[..scheme_end], &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("redis://:s3cret@host:6379/0"),
            "redis://:***@host:6379/0"
        );
        assert_eq!(
            redact_url("rediss://user:p@ss@host:6380"),
            "rediss://user:***@host:6380"
        );
        assert_eq!(redact_url("redis://token@host"), "redis://***@host");
        assert_eq!(redact_url("redis://host:6379"), "redis://host:6379");
        assert_eq!(
            redact_url("redis-cluster://u:pw@a:1?node=b:2&node=c:3"),
            "redis-cluster://u:***@a:1?node=b:2&node=c:3"
        );
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
