//! Reading the configuration: `SessionConfig::from_settings` is `from_env` without the
//! environment (changing a process's environment from a test is `unsafe` in Rust 2024).

use step02_sessions::{SessionConfig, SessionConfigError};
use tower_sessions::cookie::SameSite;

const GOOD_SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn a_secret_shorter_than_64_bytes_is_rejected_with_its_length() {
    // The walkthrough's secret.
    let result = SessionConfig::from_settings(Some("the secret key"), None);

    match result {
        Err(error @ SessionConfigError::SecretTooShort { len: 14 }) => {
            let message = error.to_string();
            assert!(message.contains("at least 64"), "{message}");
            assert!(message.contains("openssl rand -hex 64"), "{message}");
        }
        other => panic!("expected SecretTooShort {{ len: 14 }}, got {other:?}"),
    }
}

#[test]
fn a_64_byte_secret_gives_the_same_key_every_time() {
    let first = SessionConfig::from_settings(Some(GOOD_SECRET), None).expect("valid");
    let second = SessionConfig::from_settings(Some(GOOD_SECRET), None).expect("valid");

    assert_eq!(first.key, second.key);
}

#[test]
fn an_unset_secret_gives_a_new_random_key_each_time() {
    let first = SessionConfig::from_settings(None, None).expect("runs without a secret");
    let second = SessionConfig::from_settings(Some(""), None).expect("empty counts as unset");

    assert_ne!(first.key, second.key);
}

#[test]
fn the_defaults_are_thirty_days_lax_http_only_and_not_secure() {
    let config = SessionConfig::from_settings(Some(GOOD_SECRET), None).expect("valid");

    assert_eq!(config.max_age, time::Duration::days(30));
    assert_eq!(config.same_site, SameSite::Lax);
    assert!(config.http_only);
    assert!(!config.secure);
    assert!(!config.always_save);
}

#[test]
fn cookie_secure_accepts_true_and_false_and_rejects_typos() {
    let secure = |value| SessionConfig::from_settings(Some(GOOD_SECRET), Some(value));

    assert!(secure("true").expect("true").secure);
    assert!(secure("1").expect("1").secure);
    assert!(!secure("false").expect("false").secure);
    assert!(!secure("").expect("empty").secure);
    assert!(matches!(
        secure("ture"),
        Err(SessionConfigError::InvalidCookieSecure(value)) if value == "ture"
    ));
}
