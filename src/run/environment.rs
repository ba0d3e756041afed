//! The clean environment every test starts with: nothing of the runner's
//! environment leaks in unless asked for with `--pass-env` or `--env`.

use crate::config::Settings;

/// HOME inside the container: an empty directory on the test's own /tmp.
pub const HOME: &str = "/tmp/home";

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The environment of one test: defaults, then `image` (an image's own
/// environment), then `pass_env` variables (from the runner's environment,
/// when set there), then `env`; a later entry replaces an earlier one of
/// the same name.
pub fn test_environment(
    test_name: &str,
    settings: &Settings,
    image: &[(Vec<u8>, Vec<u8>)],
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut env: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut set = |key: &[u8], value: &[u8]| set_variable(&mut env, key, value);
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
    for (key, value) in image {
        set(key, value);
    }
    for name in &settings.pass_env {
        if let Some(value) = std::env::var_os(&name.value) {
            set(name.value.as_bytes(), value.as_encoded_bytes());
        }
    }
    for (key, value) in &settings.env {
        set(key.as_bytes(), value.value.as_bytes());
    }
    env
}

/// Sets `key` in `env`, replacing its value if it is there.
pub fn set_variable(env: &mut Vec<(Vec<u8>, Vec<u8>)>, key: &[u8], value: &[u8]) {
    match env.iter_mut().find(|(k, _)| k == key) {
        Some(entry) => entry.1 = value.to_vec(),
        None => env.push((key.to_vec(), value.to_vec())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Source, Sourced};

    fn lookup<'a>(env: &'a [(Vec<u8>, Vec<u8>)], key: &str) -> Option<&'a [u8]> {
        env.iter()
            .find(|(k, _)| k == key.as_bytes())
            .map(|(_, v)| v.as_slice())
    }

    #[test]
    fn defaults_then_pass_then_set() {
        let sourced = |v: &str| Sourced::new(v.to_string(), Source::Default);
        // PATH is always set in the runner's environment.
        let settings = Settings {
            pass_env: vec![sourced("PATH"), sourced("ISOTEST_SURELY_UNSET_VARIABLE")],
            env: vec![
                ("TZ".into(), sourced("Asia/Tokyo")),
                ("X".into(), sourced("1")),
            ],
            ..Settings::default()
        };
        let env = test_environment("net/echo.sh", &settings, &[]);
        let host_path = std::env::var("PATH").unwrap();
        assert_eq!(lookup(&env, "ISOTEST_TEST_NAME"), Some(&b"net/echo.sh"[..]));
        assert_eq!(lookup(&env, "ISOTEST"), Some(&b"1"[..]));
        assert_eq!(lookup(&env, "PATH"), Some(host_path.as_bytes()));
        assert_eq!(lookup(&env, "ISOTEST_SURELY_UNSET_VARIABLE"), None);
        assert_eq!(lookup(&env, "TZ"), Some(&b"Asia/Tokyo"[..]));
        assert_eq!(lookup(&env, "X"), Some(&b"1"[..]));
        assert_eq!(env.iter().filter(|(k, _)| k == b"TZ").count(), 1);
    }

    #[test]
    fn nothing_else_from_the_host() {
        let env = test_environment("t", &Settings::default(), &[]);
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
