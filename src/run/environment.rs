//! The clean environment every test starts with: nothing of the runner's
//! environment leaks in unless asked for with `--pass-env` or `--env`.

use std::ffi::OsString;

/// HOME inside the container: an empty directory on the test's own /tmp.
pub const HOME: &str = "/tmp/home";

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the user added to the environment.
#[derive(Clone, Debug, Default)]
pub struct EnvSettings {
    /// `--pass-env NAME`: copied from the runner's environment when set.
    pub pass: Vec<(String, Option<OsString>)>,
    /// `--env KEY=VALUE`, applied last.
    pub set: Vec<(String, String)>,
}

impl EnvSettings {
    /// Resolves `--pass-env` names against the runner's environment now,
    /// once for the whole run.
    pub fn new(pass_names: &[String], set: Vec<(String, String)>) -> Self {
        let pass = pass_names
            .iter()
            .map(|name| (name.clone(), std::env::var_os(name)))
            .collect();
        EnvSettings { pass, set }
    }
}

/// The environment of one test: defaults, then passed-through variables,
/// then `--env`; a later entry replaces an earlier one of the same name.
pub fn test_environment(test_name: &str, settings: &EnvSettings) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut env: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut set = |key: &[u8], value: &[u8]| match env.iter_mut().find(|(k, _)| k == key) {
        Some(entry) => entry.1 = value.to_vec(),
        None => env.push((key.to_vec(), value.to_vec())),
    };
    for (key, value) in [
        ("PATH", PATH),
        ("HOME", HOME),
        ("TMPDIR", "/tmp"),
        ("LANG", "C.UTF-8"),
        ("TZ", "UTC"),
        ("TERM", "dumb"),
        ("ISOTEST", "1"),
        ("ISOTEST_TEST_NAME", test_name),
    ] {
        set(key.as_bytes(), value.as_bytes());
    }
    for (name, value) in &settings.pass {
        if let Some(value) = value {
            set(name.as_bytes(), value.as_encoded_bytes());
        }
    }
    for (key, value) in &settings.set {
        set(key.as_bytes(), value.as_bytes());
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(env: &'a [(Vec<u8>, Vec<u8>)], key: &str) -> Option<&'a [u8]> {
        env.iter()
            .find(|(k, _)| k == key.as_bytes())
            .map(|(_, v)| v.as_slice())
    }

    #[test]
    fn defaults_then_pass_then_set() {
        let settings = EnvSettings {
            pass: vec![
                ("FROM_HOST".into(), Some("h".into())),
                ("UNSET_ON_HOST".into(), None),
                ("TZ".into(), Some("Europe/Paris".into())),
            ],
            set: vec![("TZ".into(), "Asia/Tokyo".into()), ("X".into(), "1".into())],
        };
        let env = test_environment("net/echo.sh", &settings);
        assert_eq!(lookup(&env, "ISOTEST_TEST_NAME"), Some(&b"net/echo.sh"[..]));
        assert_eq!(lookup(&env, "ISOTEST"), Some(&b"1"[..]));
        assert_eq!(lookup(&env, "FROM_HOST"), Some(&b"h"[..]));
        assert_eq!(lookup(&env, "UNSET_ON_HOST"), None);
        assert_eq!(lookup(&env, "TZ"), Some(&b"Asia/Tokyo"[..]));
        assert_eq!(lookup(&env, "X"), Some(&b"1"[..]));
        assert_eq!(env.iter().filter(|(k, _)| k == b"TZ").count(), 1);
    }

    #[test]
    fn nothing_else_from_the_host() {
        let env = test_environment("t", &EnvSettings::default());
        let keys: Vec<_> = env
            .iter()
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect();
        assert_eq!(
            keys,
            [
                "PATH",
                "HOME",
                "TMPDIR",
                "LANG",
                "TZ",
                "TERM",
                "ISOTEST",
                "ISOTEST_TEST_NAME"
            ]
        );
    }
}
