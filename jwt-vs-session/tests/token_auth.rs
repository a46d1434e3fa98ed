//! The "JWT vs session" chapter from the outside: log in over HTTP, ask `POST
//! /token` for a token, and open sockets with the official Socket.IO JavaScript
//! client, with good tokens and with every kind of bad one. Bad tokens are
//! built here by hand, with the server's secret or without it, the way an
//! attacker (or a buggy client) would.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use jwt_vs_session::{Claims, TOKEN_AUDIENCE, TOKEN_ISSUER, TokenConfig};
use serde_json::{Value, json};
use support::{TestApp, spawn_token_app};

/// The server's secret in these tests, so that a test can sign what the server
/// would not.
const SECRET: &[u8] = b"the test server's token secret, 32+ bytes";

async fn spawn_app() -> TestApp {
    spawn_token_app(TokenConfig::new(SECRET).expect("a long enough secret"))
        .await
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// Claims as the server would write them for user 1 (alice), valid for five
/// minutes.
fn claims_for_alice() -> Claims {
    Claims {
        sub: "1".into(),
        name: "alice".into(),
        iat: now(),
        exp: now() + 300,
        aud: TOKEN_AUDIENCE.into(),
        iss: TOKEN_ISSUER.into(),
    }
}

/// Signs `claims` with HS256 and `secret`, as anyone who knows the secret can.
fn sign(claims: &Claims, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("sign a test token")
}

/// Opens a socket with `token` and returns the `connect_error` message.
async fn refusal(app: &TestApp, token: &str) -> String {
    app.socket_with_token(token)
        .await
        .expect_connect_error()
        .await
}

/// Connects as alice with a token over the given transports; checks that
/// handlers see alice.
async fn alice_connects_with_a_token_over(transports: Value) -> String {
    let app = spawn_app().await;
    let token = app.token_for("alice").await;
    let socket = app
        .socket(json!({ "auth": { "token": token }, "transports": transports }))
        .await;
    let transport = socket.expect_connect().await;
    assert_eq!(
        socket.next_named("welcome").await.data()["username"],
        "alice"
    );
    let me = socket.emit_with_ack("whoami", json!([])).await;
    // Who, not the whole answer: step 4's exercise 3 adds `tabs` to it.
    assert_eq!((&me["id"], &me["username"]), (&json!(1), &json!("alice")));
    transport
}

#[tokio::test]
async fn a_token_from_post_token_connects_over_websocket_only() {
    let transport =
        alice_connects_with_a_token_over(json!(["websocket"])).await;
    assert_eq!(transport, "websocket");
}

#[tokio::test]
async fn a_token_from_post_token_connects_over_long_polling_only() {
    let transport = alice_connects_with_a_token_over(json!(["polling"])).await;
    assert_eq!(transport, "polling");
}

#[tokio::test]
async fn each_token_socket_sees_its_own_user() {
    let app = spawn_app().await;
    let alice = app.socket_with_token(&app.token_for("alice").await).await;
    let bob = app.socket_with_token(&app.token_for("bob").await).await;
    for (socket, name) in [(&alice, "alice"), (&bob, "bob")] {
        socket.expect_connect().await;
        let me = socket.emit_with_ack("whoami", json!([])).await;
        assert_eq!(me["username"], name);
    }
}

#[tokio::test]
async fn post_token_issues_a_five_minute_hs256_token_for_the_session_user() {
    let app = spawn_app().await;
    let cookie = app.login("alice").await;
    let response = app.post_token(Some(&cookie)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(body["expires_in"], 300);

    let token = body["token"].as_str().expect("a token");
    let header = jsonwebtoken::decode_header(token).expect("a JWT header");
    assert_eq!(header.alg, Algorithm::HS256);
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&[TOKEN_AUDIENCE]);
    validation.set_issuer(&[TOKEN_ISSUER]);
    let claims = jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(SECRET),
        &validation,
    )
    .expect("signed with the server's secret")
    .claims;
    assert_eq!((claims.sub.as_str(), claims.name.as_str()), ("1", "alice"));
    assert_eq!(claims.exp - claims.iat, 300);
    assert!(claims.iat.abs_diff(now()) <= 5, "iat is now: {claims:?}");
}

#[tokio::test]
async fn post_token_without_a_session_is_401() {
    let app = spawn_app().await;
    let response = app.post_token(None).await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(body, json!({ "error": "Unauthorized" }));
}

/// `POST /token` changes nothing, but its answer is a credential: a page on
/// another site must not even get the request through (it could not read the
/// answer, thanks to CORS, but the Origin check refuses it before any token is
/// signed).
#[tokio::test]
async fn post_token_from_a_foreign_page_is_403_and_from_our_page_200() {
    let app = spawn_app().await;
    let cookie = app.login("alice").await;
    let own = format!("http://localhost:{}", app.address.port());
    for (origin, status) in [("http://evil.example", 403), (own.as_str(), 200)]
    {
        let response = app
            .http
            .post(app.url("/token"))
            .header("cookie", &cookie)
            .header("origin", origin)
            .send()
            .await
            .expect("POST /token");
        assert_eq!(response.status(), status, "{origin}");
        let body: Value = response.json().await.expect("a JSON body");
        if status == 403 {
            assert_eq!(body, json!({ "error": "Forbidden origin" }));
        } else {
            assert!(body["token"].is_string(), "{body}");
        }
    }
}

#[tokio::test]
async fn a_socket_without_a_token_is_refused_with_unauthorized() {
    let app = spawn_app().await;
    // No `auth` at all, an empty one, and a `null` token (what
    // `localStorage.getItem` gives).
    for opts in [
        json!({}),
        json!({ "auth": {} }),
        json!({ "auth": { "token": null } }),
    ] {
        let socket = app.socket(opts.clone()).await;
        assert_eq!(
            socket.expect_connect_error().await,
            "Unauthorized",
            "{opts}"
        );
    }
}

#[tokio::test]
async fn a_session_cookie_alone_does_not_open_a_token_socket() {
    let app = spawn_app().await;
    let cookie = app.login("alice").await;
    let socket = app
        .socket(json!({ "extraHeaders": { "cookie": cookie } }))
        .await;
    assert_eq!(socket.expect_connect_error().await, "Unauthorized");
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let app = spawn_app().await;
    let expired = Claims {
        iat: now() - 600,
        exp: now() - 300,
        ..claims_for_alice()
    };
    assert_eq!(
        refusal(&app, &sign(&expired, SECRET)).await,
        "Invalid token: expired"
    );
}

#[tokio::test]
async fn a_malformed_token_is_refused() {
    let app = spawn_app().await;
    let valid = sign(&claims_for_alice(), SECRET);
    let (header, _) = valid.split_once('.').expect("a JWT");
    let not_json = URL_SAFE_NO_PAD.encode("not json");
    for token in [
        "abc".to_owned(),
        "a.b.c".to_owned(),
        format!("{header}.{not_json}.c"),
    ] {
        assert_eq!(
            refusal(&app, &token).await,
            "Invalid token: malformed",
            "{token}"
        );
    }
}

#[tokio::test]
async fn a_token_signed_with_another_secret_is_refused() {
    let app = spawn_app().await;
    let forged = sign(
        &claims_for_alice(),
        b"somebody else's secret, also 32+ bytes",
    );
    assert_eq!(refusal(&app, &forged).await, "Invalid token: bad signature");
}

#[tokio::test]
async fn an_unsigned_alg_none_token_is_refused() {
    let app = spawn_app().await;
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&claims_for_alice()).expect("JSON"));
    // The classic attack: no signature at all, and a header that says none is
    // needed.
    let unsigned = format!("{header}.{claims}.");
    assert_eq!(
        refusal(&app, &unsigned).await,
        "Invalid token: algorithm not allowed"
    );
}

#[tokio::test]
async fn a_token_with_another_algorithm_is_refused_even_with_the_right_secret()
{
    let app = spawn_app().await;
    let hs512 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS512),
        &claims_for_alice(),
        &EncodingKey::from_secret(SECRET),
    )
    .expect("sign");
    assert_eq!(
        refusal(&app, &hs512).await,
        "Invalid token: algorithm not allowed"
    );
}

#[tokio::test]
async fn a_token_for_another_audience_or_issuer_is_refused() {
    let app = spawn_app().await;
    let for_an_api = Claims {
        aud: "step04-api".into(),
        ..claims_for_alice()
    };
    assert_eq!(
        refusal(&app, &sign(&for_an_api, SECRET)).await,
        "Invalid token: wrong audience"
    );
    let by_someone_else = Claims {
        iss: "another-service".into(),
        ..claims_for_alice()
    };
    assert_eq!(
        refusal(&app, &sign(&by_someone_else, SECRET)).await,
        "Invalid token: wrong issuer"
    );
}

#[tokio::test]
async fn the_token_of_a_deleted_user_is_refused_at_once() {
    let app = spawn_app().await;
    let token = app.token_for("alice").await;
    assert!(app.users.delete(1), "alice existed");
    assert_eq!(refusal(&app, &token).await, "Invalid token: unknown user");
}

#[tokio::test]
async fn a_token_outlives_logout_but_not_its_expiry() {
    // Four seconds: enough to log out and connect on a slow machine, short
    // enough to wait out.
    let tokens = TokenConfig::new(SECRET)
        .expect("a long enough secret")
        .with_lifetime(Duration::from_secs(4));
    let app = spawn_token_app(tokens).await;
    let cookie = app.login("alice").await;
    let response = app.post_token(Some(&cookie)).await;
    let body: Value = response.json().await.expect("a JSON body");
    let token = body["token"].as_str().expect("a token").to_owned();
    let open_before_logout = app.socket_with_token(&token).await;
    open_before_logout.expect_connect().await;

    assert_eq!(app.logout(&cookie).await, 204);
    // The session is gone: no new token for that cookie...
    assert_eq!(app.post_token(Some(&cookie)).await.status(), 401);
    // ...but the token already handed out still opens sockets, and the open one
    // stays. This is the revocation trade-off: nothing ties the token to the
    // session that asked for it.
    let after_logout = app.socket_with_token(&token).await;
    after_logout.expect_connect().await;
    assert_eq!(
        after_logout.emit_with_ack("whoami", json!([])).await["username"],
        "alice"
    );
    assert!(
        open_before_logout
            .try_next_named("disconnect", Duration::from_millis(500))
            .await
            .is_none(),
        "logout does not reach a token socket"
    );

    // Only time ends it: wait until the second after `exp` (leeway is zero).
    // Anyone can read a token's claims without the secret: signed is not
    // encrypted.
    let claims =
        jsonwebtoken::dangerous::insecure_decode_claims::<Claims>(&token)
            .expect("a JWT");
    let expired_at = UNIX_EPOCH + Duration::from_secs(claims.exp + 1);
    if let Ok(wait) = expired_at.duration_since(SystemTime::now()) {
        tokio::time::sleep(wait + Duration::from_millis(100)).await;
    }
    assert_eq!(refusal(&app, &token).await, "Invalid token: expired");
}
