//! What a token is, and how this server signs and checks one.
//!
//! A token is a short, signed statement, "this is user 1, alice, until 12:05",
//! in the JSON Web Token format (RFC 7519). The server signs it with a secret
//! only it knows, and later checks the signature and the claims with the same
//! secret, without looking anything up.
//!
//! - [`TokenConfig`]: the secret, the lifetime and the one algorithm we accept
//!   (HS256); [`TokenConfig::issue`] signs a token, [`TokenConfig::verify`]
//!   checks one.
//! - [`Claims`]: what a token says; [`TokenError`]: why one was refused.

use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use step03_passport_like_auth::User;

// ANCHOR: constants
/// How long a token opens sockets. Short, because nothing can take a token
/// back (see [`crate::token_app`]): it is how long a stolen one stays useful.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// The shortest secret accepted, in bytes. An HS256 key must be at least as
/// long as the hash it feeds, 256 bits (RFC 7518, section 3.2); anything
/// shorter can be brute-forced offline from a single token.
pub const MIN_TOKEN_SECRET_LEN: usize = 32;

/// `iss`: who issued the token. Checked, so that a token signed with the same
/// secret by some other service of ours is not taken for one of ours.
pub const TOKEN_ISSUER: &str = "step04-login";

/// `aud`: whom the token is for. Checked, so that a token made for another use
/// (an API, a password reset link) cannot open a socket, even if the same
/// secret signed it.
pub const TOKEN_AUDIENCE: &str = "step04-socket";
// ANCHOR_END: constants

// ANCHOR: claims
/// What a token says, once its signature has been checked. The names are the
/// registered claim names of RFC 7519, plus `name`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// Subject: the user id, as a string (the RFC says `sub` is a string).
    pub sub: String,
    /// The username when the token was issued, for clients that want to show
    /// it. The server does not trust it: it loads the user by id.
    pub name: String,
    /// Issued at, in seconds since 1970.
    pub iat: u64,
    /// Expires at, in seconds since 1970.
    pub exp: u64,
    /// Audience: [`TOKEN_AUDIENCE`].
    pub aud: String,
    /// Issuer: [`TOKEN_ISSUER`].
    pub iss: String,
}
// ANCHOR_END: claims

// ANCHOR: config
/// The keys and rules of socket tokens. Cheap to clone; `Debug` shows no key.
#[derive(Clone)]
pub struct TokenConfig {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    lifetime: Duration,
}

impl TokenConfig {
    /// Tokens signed and checked with `secret` (HMAC-SHA256), which live
    /// [`TOKEN_LIFETIME`].
    pub fn new(secret: &[u8]) -> Result<Self, TokenSecretError> {
        if secret.len() < MIN_TOKEN_SECRET_LEN {
            return Err(TokenSecretError::TooShort { len: secret.len() });
        }
        // The algorithm is pinned here, never read from the token: a token is
        // attacker input, and "alg": "none" or "alg": "RS256" in its header
        // must not change how it is checked.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[TOKEN_AUDIENCE]);
        validation.set_issuer(&[TOKEN_ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "aud", "iss"]);
        // jsonwebtoken forgives 60 s of clock skew by default, which would
        // stretch a 5-minute token by a fifth. One server signs and checks, so
        // there is no skew to forgive.
        validation.leeway = 0;
        Ok(TokenConfig {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            lifetime: TOKEN_LIFETIME,
        })
    }
}
// ANCHOR_END: config

impl TokenConfig {
    /// The same keys, with tokens that live `lifetime` (whole seconds; tests
    /// use a few).
    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// How long a new token lives.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }
}

impl fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConfig")
            .field("algorithm", &Algorithm::HS256)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive() // the keys stay out of logs
    }
}

// ANCHOR: from_env
impl TokenConfig {
    /// Reads `TOKEN_SECRET` from the environment (load `.env` first).
    ///
    /// Unset, a random secret is made for this run, with a warning: tokens then
    /// die with the process, which for 5-minute tokens is hardly a loss. Two
    /// servers behind one load balancer, though, must share the secret, or each
    /// refuses the other's tokens.
    pub fn from_env() -> Result<Self, TokenSecretError> {
        match std::env::var("TOKEN_SECRET") {
            Ok(secret) if !secret.is_empty() => Self::new(secret.as_bytes()),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(TokenSecretError::NotUtf8)
            }
            _ => {
                tracing::warn!(
                    "TOKEN_SECRET is not set: using a random secret for this \
                     run only. Set TOKEN_SECRET (at least \
                     {MIN_TOKEN_SECRET_LEN} bytes, e.g. \
                     `openssl rand -hex 32`) in .env, the same on every server."
                );
                Self::new(&rand::random::<[u8; MIN_TOKEN_SECRET_LEN]>())
            }
        }
    }
}

// ANCHOR_END: from_env

// ANCHOR: secret_error
/// Why a token secret was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenSecretError {
    /// Shorter than [`MIN_TOKEN_SECRET_LEN`].
    #[error(
        "TOKEN_SECRET is {len} bytes long but must be at least \
         {MIN_TOKEN_SECRET_LEN}; generate one with `openssl rand -hex 32` and \
         put it in .env"
    )]
    TooShort {
        /// The length that was found, in bytes.
        len: usize,
    },
    /// `TOKEN_SECRET` is set but is not UTF-8 text.
    #[error(
        "TOKEN_SECRET is not valid UTF-8; use a hex string: \
         `openssl rand -hex 32`"
    )]
    NotUtf8,
}
// ANCHOR_END: secret_error

// ANCHOR: token_error
/// Why a socket with a token was refused. As with `Unauthorized`, the `Display`
/// text is what the client's `connect_error` handler gets as `err.message`.
///
/// Telling "expired" apart matters to a well-behaved client: it fetches a new
/// token and reconnects. The other reasons help whoever is debugging; they
/// tell an attacker nothing they did not know when they built the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No token in the handshake's `auth` payload.
    #[error("Unauthorized")]
    Missing,
    /// Not a JWT, or a JWT without the claims we require.
    #[error("Invalid token: malformed")]
    Malformed,
    /// Signed (or "signed") with another algorithm than HS256, `none` too.
    #[error("Invalid token: algorithm not allowed")]
    AlgorithmNotAllowed,
    /// The signature does not match: another secret, or a changed token.
    #[error("Invalid token: bad signature")]
    BadSignature,
    /// Past its `exp`.
    #[error("Invalid token: expired")]
    Expired,
    /// Signed by us, but for another audience.
    #[error("Invalid token: wrong audience")]
    WrongAudience,
    /// Signed with our secret, but by another issuer.
    #[error("Invalid token: wrong issuer")]
    WrongIssuer,
    /// A valid token of a user who no longer exists.
    #[error("Invalid token: unknown user")]
    UnknownUser,
    /// The user store failed; the cause is in the server's log.
    #[error("Internal error")]
    Internal,
}
// ANCHOR_END: token_error

// ANCHOR: issue
impl TokenConfig {
    /// Signs a token for `user`, valid from now for [`TokenConfig::lifetime`].
    pub fn issue(
        &self,
        user: &User,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: user.id.to_string(),
            name: user.username.clone(),
            iat: now,
            exp: now + self.lifetime.as_secs(),
            aud: TOKEN_AUDIENCE.to_owned(),
            iss: TOKEN_ISSUER.to_owned(),
        };
        // `Header::new(HS256)`: {"alg":"HS256","typ":"JWT"}.
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )
    }
}
// ANCHOR_END: issue

// ANCHOR: verify
impl TokenConfig {
    /// Checks a token's signature (HS256 only), expiry, audience and issuer,
    /// and returns its claims. Nothing in the token is believed before its
    /// signature has been checked.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        // The header is read only to *explain* a refusal: `decode` checks HS256
        // whatever it says. (jsonwebtoken cannot even parse "none", so without
        // this it would be "malformed".)
        match header_algorithm(token) {
            None => return Err(TokenError::Malformed),
            Some(alg) if alg != "HS256" => {
                return Err(TokenError::AlgorithmNotAllowed);
            }
            Some(_) => {}
        }
        let data = jsonwebtoken::decode::<Claims>(
            token,
            &self.decoding,
            &self.validation,
        )
        .map_err(|error| match error.kind() {
            ErrorKind::InvalidSignature => TokenError::BadSignature,
            ErrorKind::InvalidAlgorithm => TokenError::AlgorithmNotAllowed,
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::InvalidAudience => TokenError::WrongAudience,
            ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
            // Not three parts, bad base64 or JSON, a missing or mistyped claim.
            _ => TokenError::Malformed,
        })?;
        Ok(data.claims)
    }
}

// ANCHOR_END: verify

// ANCHOR: header_algorithm
/// The `alg` of a token's header, if it starts with a readable JWT header.
fn header_algorithm(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct AlgOnly {
        alg: String,
    }
    let (header, _) = token.split_once('.')?;
    let json = URL_SAFE_NO_PAD.decode(header).ok()?;
    serde_json::from_slice::<AlgOnly>(&json)
        .ok()
        .map(|header| header.alg)
}
// ANCHOR_END: header_algorithm

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a test secret that is 32+ bytes long";

    fn alice() -> User {
        User {
            id: 7,
            username: "alice".into(),
        }
    }

    #[test]
    fn a_secret_shorter_than_32_bytes_is_refused() {
        assert!(matches!(
            TokenConfig::new(b"short"),
            Err(TokenSecretError::TooShort { len: 5 })
        ));
        assert!(TokenConfig::new(&[0; 32]).is_ok());
    }

    #[test]
    fn an_issued_token_verifies_with_its_claims() {
        let tokens = TokenConfig::new(SECRET).expect("a long enough secret");
        let token = tokens.issue(&alice()).expect("sign");
        let claims = tokens.verify(&token).expect("verify");
        assert_eq!((claims.sub.as_str(), claims.name.as_str()), ("7", "alice"));
        assert_eq!(claims.exp - claims.iat, 300);
        assert_eq!(
            (claims.aud.as_str(), claims.iss.as_str()),
            (TOKEN_AUDIENCE, TOKEN_ISSUER)
        );
    }

    #[test]
    fn a_changed_payload_breaks_the_signature() {
        let tokens = TokenConfig::new(SECRET).expect("a long enough secret");
        let token = tokens.issue(&alice()).expect("sign");
        let mut parts: Vec<&str> = token.split('.').collect();
        let claims = Claims {
            sub: "1".into(),
            name: "admin".into(),
            iat: 0,
            exp: 99_999_999_999,
            aud: TOKEN_AUDIENCE.into(),
            iss: TOKEN_ISSUER.into(),
        };
        let json = serde_json::to_vec(&claims).expect("JSON");
        let forged = URL_SAFE_NO_PAD.encode(json);
        parts[1] = &forged;
        assert_eq!(
            tokens.verify(&parts.join(".")),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn debug_shows_no_key() {
        let tokens = TokenConfig::new(SECRET).expect("a long enough secret");
        assert_eq!(
            format!("{tokens:?}"),
            "TokenConfig { algorithm: HS256, lifetime: 300s, .. }"
        );
    }
}
