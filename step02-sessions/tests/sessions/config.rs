//! Reading the configuration: `SessionConfig::from_settings` is `from_env`
//! without the environment (changing a process's environment from a test is
//! `unsafe` in Rust 2024).

use step02_sessions::{SessionConfig, SessionConfigError, key_from_secret};
use tower_sessions::cookie::{Cookie, CookieJar, Key, SameSite};

/// 64 hex digits: 32 bytes, the shortest hex secret accepted.
const GOOD_SECRET: &str =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// What `openssl rand -hex 64` prints: 128 hex digits.
const HEX_SECRET: &str = "9f86d081884c7d659a2feaa0c55ad015\
                          a3bf4f1b2b0b822cd15d6c15b0f00a08\
                          60303ae22b998861bce3b28f33eec1be\
                          758a213c86c93c076dbe9f558c11c752";

/// What `openssl rand -base64 32` prints: 44 characters, not hex.
const BASE64_SECRET: &str = "q3VbJ0mE8xN5rT2yL9wA6cK1dF4gH7jP0sU3vX6zB9c=";

/// The value of a cookie `id=abc` once signed with `key`.
fn signed_cookie(key: &Key) -> String {
    let mut jar = CookieJar::new();
    jar.signed_mut(key).add(Cookie::new("id", "abc"));
    jar.get("id").expect("the signed cookie").value().to_owned()
}

fn key(secret: &str) -> Key {
    key_from_secret(secret)
        .unwrap_or_else(|error| panic!("{secret:?} refused: {error}"))
}

#[test]
fn the_walkthroughs_secret_is_rejected_with_its_length() {
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
fn hex_and_text_secrets_are_refused_when_short() {
    // 62 hex digits are 31 bytes; 42 characters of text, one short of 43.
    for short in [&GOOD_SECRET[..62], &BASE64_SECRET[..42]] {
        match key_from_secret(short) {
            Err(error @ SessionConfigError::SecretTooShort { .. }) => {
                assert!(
                    error.to_string().contains("SESSION_SECRET"),
                    "{error}"
                );
            }
            other => {
                panic!("{short:?}: expected SecretTooShort, got {other:?}")
            }
        }
    }
}

#[test]
fn a_long_but_obviously_typed_secret_is_refused() {
    for weak in ["k".repeat(96), "ab".repeat(40), "password".repeat(8)] {
        match key_from_secret(&weak) {
            Err(error @ SessionConfigError::SecretTooWeak { .. }) => {
                let message = error.to_string();
                assert!(message.contains("SESSION_SECRET"), "{message}");
                assert!(message.contains("openssl rand -hex 64"), "{message}");
            }
            other => panic!("{weak:?}: expected SecretTooWeak, got {other:?}"),
        }
    }
}

#[test]
fn hex_base64_and_passphrase_secrets_are_accepted() {
    key(GOOD_SECRET);
    key(HEX_SECRET);
    key(&HEX_SECRET.to_uppercase());
    key(BASE64_SECRET);
    key("correct horse battery staple, and then some more words");
}

#[test]
fn a_hex_secret_is_decoded_before_the_key_is_derived() {
    let bytes = hex::decode(HEX_SECRET).expect("hex");
    assert_eq!(key(HEX_SECRET), Key::derive_from(&bytes));
    // Upper or lower case, the same bytes, the same key.
    assert_eq!(key(&HEX_SECRET.to_uppercase()), key(HEX_SECRET));
    // A stray space or newline in `.env` does not turn hex into text.
    assert_eq!(key(&format!(" {HEX_SECRET}\n")), key(HEX_SECRET));
}

#[test]
fn every_byte_of_the_secret_counts() {
    // Before, only the first 64 bytes were used, and of those only 32 signed:
    // two secrets that differed after that signed the same cookies.
    let hex_a = format!("{HEX_SECRET}00");
    let hex_b = format!("{HEX_SECRET}01");
    let text_a = format!("{BASE64_SECRET}{BASE64_SECRET}one");
    let text_b = format!("{BASE64_SECRET}{BASE64_SECRET}two");
    for (a, b) in [(&hex_a, &hex_b), (&text_a, &text_b)] {
        assert_ne!(signed_cookie(&key(a)), signed_cookie(&key(b)), "{a} / {b}");
    }
    // And the same secret always signs the same way.
    assert_eq!(signed_cookie(&key(&hex_a)), signed_cookie(&key(&hex_a)));
}

#[test]
fn a_valid_secret_gives_the_same_key_every_time() {
    let first =
        SessionConfig::from_settings(Some(GOOD_SECRET), None).expect("valid");
    let second =
        SessionConfig::from_settings(Some(GOOD_SECRET), None).expect("valid");

    assert_eq!(first.key, second.key);
}

#[test]
fn an_unset_secret_gives_a_new_random_key_each_time() {
    let first = SessionConfig::from_settings(None, None)
        .expect("runs without a secret");
    let second = SessionConfig::from_settings(Some(""), None)
        .expect("empty counts as unset");

    assert_ne!(first.key, second.key);
}

#[test]
fn the_defaults_are_thirty_days_lax_http_only_and_not_secure() {
    let config =
        SessionConfig::from_settings(Some(GOOD_SECRET), None).expect("valid");

    assert_eq!(config.max_age, time::Duration::days(30));
    assert_eq!(config.same_site, SameSite::Lax);
    assert!(config.http_only);
    assert!(!config.secure);
    assert!(!config.always_save);
}

#[test]
fn cookie_secure_accepts_true_and_false_and_rejects_typos() {
    let secure =
        |value| SessionConfig::from_settings(Some(GOOD_SECRET), Some(value));

    assert!(secure("true").expect("true").secure);
    assert!(secure("1").expect("1").secure);
    assert!(!secure("false").expect("false").secure);
    assert!(!secure("").expect("empty").secure);
    assert!(matches!(
        secure("ture"),
        Err(SessionConfigError::InvalidCookieSecure(value)) if value == "ture"
    ));
}

#[test]
fn the_absolute_lifetime_is_90_days_unless_set_to_whole_seconds() {
    use step02_sessions::{
        DEFAULT_ABSOLUTE_LIFETIME, SessionConfigError, parse_lifetime,
    };

    assert_eq!(DEFAULT_ABSOLUTE_LIFETIME, time::Duration::days(90));
    for unset in [None, Some(""), Some("  ")] {
        let lifetime = parse_lifetime(unset).expect("the default");
        assert_eq!(lifetime, DEFAULT_ABSOLUTE_LIFETIME, "{unset:?}");
    }
    let set = parse_lifetime(Some("3600")).expect("an hour");
    assert_eq!(set, time::Duration::hours(1));
    for bad in ["0", "-5", "1.5", "90d"] {
        assert!(
            matches!(
                parse_lifetime(Some(bad)),
                Err(SessionConfigError::InvalidAbsoluteLifetime(_))
            ),
            "{bad:?} should be refused"
        );
    }
}
