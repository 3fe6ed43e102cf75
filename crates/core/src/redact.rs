//! The one way a URL that may hold a secret is shown: in logs, errors, `/admin/stats` and the
//! tools' output, the password becomes `***` and everything else stays, so an operator can still
//! tell which server is meant.

/// `url` with the password of its user-info part (if any) replaced by `***`: the user name, host,
/// port, path and query stay. Text that is no `scheme://` URL comes back unchanged.
pub fn url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = match userinfo.split_once(':') {
                Some((user, _password)) => format!("{user}:***"),
                None => userinfo.to_owned(),
            };
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::url;

    #[test]
    fn hides_only_the_password() {
        assert_eq!(
            url("mysql://user:pw@127.0.0.1:3306/db"),
            "mysql://user:***@127.0.0.1:3306/db"
        );
        assert_eq!(url("redis://:pw@h:6379/0"), "redis://:***@h:6379/0");
        assert_eq!(url("rediss://app:p%40ss@h:6380"), "rediss://app:***@h:6380");
        assert_eq!(url("mysql://user@h/db"), "mysql://user@h/db");
    }

    #[test]
    fn leaves_what_is_no_secret() {
        assert_eq!(url("mysql://h:1/db?x=a@b"), "mysql://h:1/db?x=a@b");
        assert_eq!(url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(url("127.0.0.1:26379"), "127.0.0.1:26379");
        assert_eq!(url("postgres://x"), "postgres://x");
    }

    #[test]
    fn a_password_with_an_at_sign_is_hidden_whole() {
        assert_eq!(url("mysql://u:a@b@h/db"), "mysql://u:***@h/db");
    }
}
