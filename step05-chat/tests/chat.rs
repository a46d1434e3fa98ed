//! The chat's contract (chapter 5), line by line, with real HTTP and the
//! official Socket.IO JavaScript client.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{
    Options, PASSWORD, assert_silent, say, spawn_app, spawn_app_with,
};

// ---------------------------------------------------------------- HTTP

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_creates_the_account_and_logs_in() {
    let app = spawn_app().await;
    let response = app
        .post_json(
            "/register",
            None,
            json!({ "username": "alice", "password": PASSWORD }),
        )
        .await;
    assert_eq!(response.status(), 201);
    let cookie = support::session_cookie(&response).expect("cookie");
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["username"], "alice");
    assert!(body["id"].as_i64().is_some());

    let me = app
        .http
        .get(app.url("/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("GET /me");
    assert_eq!(me.status(), 200);
    assert_eq!(me.json::<Value>().await.expect("JSON"), body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_refuses_taken_names_invalid_input_and_malformed_bodies_with_json_errors()
 {
    let app = spawn_app().await;
    app.register("alice").await;
    let cases = [
        (json!({ "username": "alice", "password": PASSWORD }), 409),
        (json!({ "username": "al", "password": PASSWORD }), 400),
        (
            json!({ "username": "no spaces", "password": PASSWORD }),
            400,
        ),
        (json!({ "username": "bob", "password": "short" }), 400),
        (json!({ "username": "bob" }), 400),
        (json!({ "username": 42, "password": PASSWORD }), 400),
    ];
    for (body, status) in cases {
        let response = app.post_json("/register", None, body.clone()).await;
        assert_eq!(response.status(), status, "{body}");
        let error: Value = response.json().await.expect("a JSON body");
        assert!(
            error["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}: {error}"
        );
    }
    let not_json = app.post_not_json("/register").await;
    assert_eq!(not_json.status(), 400);
    assert!(not_json.json::<Value>().await.expect("JSON")["error"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_issues_a_new_session_and_wrong_credentials_get_401() {
    let app = spawn_app().await;
    let registered = app.register("alice").await;
    let logged_in = app.login("alice").await;
    assert_ne!(registered, logged_in, "login cycles the session id");

    for body in [
        json!({ "username": "alice", "password": "wrong password" }),
        json!({ "username": "nobody", "password": PASSWORD }),
    ] {
        let response = app.post_json("/login", None, body).await;
        assert_eq!(response.status(), 401);
        assert!(
            response.json::<Value>().await.expect("JSON")["error"].is_string()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn me_is_401_unauthorized_without_a_session() {
    let app = spawn_app().await;
    let response = app.http.get(app.url("/me")).send().await.expect("GET /me");
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.json::<Value>().await.expect("JSON"),
        json!({ "error": "Unauthorized" })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_with_the_pinned_socket_io_client() {
    let app = spawn_app().await;
    let html = reqwest::get(app.url("/"))
        .await
        .expect("GET /")
        .text()
        .await
        .expect("body");
    // From the CDN as the page is written, or from this server when it has
    // the pinned npm file (step 1's `SocketIoClient`): either way pinned.
    let local = html.contains("src=\"/vendor/socket.io.min.js\"");
    assert!(local || html.contains(testkit::SOCKET_IO_CDN_URL), "{html}");
    assert!(html.contains(testkit::SOCKET_IO_SRI));
    if local {
        let served = reqwest::get(app.url("/vendor/socket.io.min.js"))
            .await
            .expect("GET the client")
            .bytes()
            .await
            .expect("body");
        let npm = std::fs::read(testkit::socket_io_browser_bundle())
            .expect("the npm package's file");
        assert!(served == npm, "not the pinned npm file");
    }
}

// ---------------------------------------------------------------- the
// handshake

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_without_a_session_gets_unauthorized() {
    let app = spawn_app().await;
    let socket = app.socket(None, json!({})).await;
    // Refused over HTTP, before a connection exists (step 4): the client
    // reports a transport error, the reason is the 401's body.
    assert_eq!(socket.expect_connect_error().await, "xhr poll error");
    let handshake = app
        .http
        .get(app.url("/socket.io/?EIO=4&transport=polling"))
        .send()
        .await
        .expect("GET /socket.io/");
    assert_eq!(handshake.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_origin_is_refused_and_an_own_one_accepted() {
    let app = spawn_app().await;
    let cookie = app.register("alice").await;
    let foreign = app
        .socket(
            None,
            json!({
                "transports": ["websocket"],
                "extraHeaders": {
                    "cookie": cookie,
                    "origin": "http://evil.example"
                }
            }),
        )
        .await;
    // Refused over HTTP with a 403 (step 4): a transport error for the client.
    assert_eq!(foreign.expect_connect_error().await, "websocket error");
    let own = format!("http://localhost:{}", app.address.port());
    let allowed = app
        .socket(
            None,
            json!({ "transports": ["websocket"],
                    "extraHeaders": { "cookie": cookie, "origin": own } }),
        )
        .await;
    allowed.expect_connect().await;
}

// ---------------------------------------------------------------- messages

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_reaches_everyone_in_the_room_sender_included() {
    let app = spawn_app().await;
    let (alice, _) = app.connected(&app.register("alice").await).await;
    let (bob, _) = app.connected(&app.register("bob").await).await;

    let ack = say(
        &alice,
        json!({ "room": "general", "text": "  hello, bob  " }),
    )
    .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let id = ack["id"].as_i64().expect("an id");

    for socket in [&alice, &bob] {
        let message = socket.next_named("chat message").await.data().clone();
        assert_eq!(message["id"], id);
        assert_eq!(message["room"], "general");
        assert_eq!(message["text"], "hello, bob", "trimmed");
        assert_eq!(message["user"]["username"], "alice");
        assert!(message["user"]["id"].as_i64().is_some());
        assert!(
            message["ts"]
                .as_i64()
                .is_some_and(|ts| ts > 1_600_000_000_000)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_increase_and_a_bare_string_goes_to_general() {
    let app = spawn_app().await;
    let (alice, _) = app.connected(&app.register("alice").await).await;
    let first = say(&alice, json!("first")).await;
    let second = say(&alice, json!("second")).await;
    assert!(second["id"].as_i64() > first["id"].as_i64());
    let message = alice.next_named("chat message").await.data().clone();
    assert_eq!(
        (message["room"].as_str(), message["text"].as_str()),
        (Some("general"), Some("first"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_get_an_error_and_nothing_is_broadcast() {
    let app = spawn_app().await;
    let (alice, _) = app.connected(&app.register("alice").await).await;
    let (bob, _) = app.connected(&app.register("bob").await).await;
    let too_long = "x".repeat(1001);
    let bad = [
        json!(42),
        json!(null),
        json!(["a", "list"]),
        json!({ "room": "general", "text": 5 }),
        json!({ "room": "general" }),
        json!({ "room": "general", "text": "   " }),
        json!({ "room": "general", "text": too_long }),
        json!({ "room": "Not A Room!", "text": "hi" }),
        json!({ "room": "not-joined", "text": "hi" }),
    ];
    for payload in bad {
        let ack = say(&alice, payload.clone()).await;
        assert!(ack["error"].as_str().is_some(), "{payload} got {ack}");
    }
    assert_silent(&bob, "chat message").await;
    // The connection survived all of that.
    assert_eq!(say(&alice, json!("still here")).await["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_author_is_the_session_user_whatever_the_payload_claims() {
    let app = spawn_app().await;
    let (mallory, _) = app.connected(&app.register("mallory").await).await;
    let (bob, _) = app.connected(&app.register("bob").await).await;
    let forged = json!({
        "room": "general",
        "text": "I am bob",
        "user": { "id": 2, "username": "bob" },
        "username": "bob"
    });
    assert_eq!(say(&mallory, forged).await["ok"], true);
    let message = bob.next_named("chat message").await.data().clone();
    assert_eq!(message["user"]["username"], "mallory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_may_be_sent_without_asking_for_an_acknowledgement() {
    let app = spawn_app().await;
    let (alice, _) = app.connected(&app.register("alice").await).await;
    alice
        .emit(
            "chat message",
            json!([{ "room": "general", "text": "fire and forget" }]),
        )
        .await;
    let message = alice.next_named("chat message").await.data().clone();
    assert_eq!(message["text"], "fire and forget");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_events_are_ignored_and_the_socket_stays_up() {
    let app = spawn_app().await;
    let (alice, _) = app.connected(&app.register("alice").await).await;
    alice.emit("no such event", json!([{ "x": 1 }])).await;
    assert_eq!(
        say(&alice, json!("after an unknown event")).await["ok"],
        true
    );
}

// ---------------------------------------------------------------- history and
// rooms

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_connect_the_socket_gets_the_50_newest_messages_oldest_first() {
    let app = spawn_app_with(support::Options {
        rate_limit: Some((100, 100.0)),
        ..Default::default()
    })
    .await;
    let cookie = app.register("alice").await;
    let (alice, history) = app.connected(&cookie).await;
    assert_eq!(
        history,
        json!({ "room": "general", "messages": [], "truncated": false })
    );
    for n in 1..=60 {
        assert_eq!(
            say(&alice, json!(format!("message {n}"))).await["ok"],
            true
        );
    }
    let (_, history) = app.connected(&cookie).await;
    let texts = support::history_texts(&history);
    let expected: Vec<String> =
        (11..=60).map(|n| format!("message {n}")).collect();
    assert_eq!(texts, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_answers_with_history_and_messages_stay_in_their_room() {
    let app = spawn_app().await;
    let (alice, _) = app.connected(&app.register("alice").await).await;
    let (bob, _) = app.connected(&app.register("bob").await).await;

    let ack = alice.emit_with_ack("join", json!(["rust"])).await;
    let no_history = json!({
        "ok": true, "room": "rust", "history": [], "truncated": false
    });
    assert_eq!(ack, no_history);
    assert_eq!(
        say(&alice, json!({ "room": "rust", "text": "ferris" })).await["ok"],
        true
    );
    assert_eq!(
        alice.next_named("chat message").await.data()["room"],
        "rust"
    );
    assert_silent(&bob, "chat message").await;

    // Bob cannot post into a room he has not joined; after joining he sees its
    // history.
    let refused =
        say(&bob, json!({ "room": "rust", "text": "let me in" })).await;
    assert!(refused["error"].is_string(), "{refused}");
    let ack = bob.emit_with_ack("join", json!(["rust"])).await;
    assert_eq!(ack["history"][0]["text"], "ferris");

    for bad in [
        json!(["UPPER"]),
        json!([""]),
        json!(["x".repeat(33)]),
        json!([7]),
        json!(["a:b"]),
    ] {
        assert!(
            alice.emit_with_ack("join", bad.clone()).await["error"].is_string(),
            "{bad}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_stops_messages_from_that_room() {
    let app = spawn_app().await;
    let (alice, _) = app.connected(&app.register("alice").await).await;
    alice.emit_with_ack("join", json!(["rust"])).await;
    assert_eq!(
        alice.emit_with_ack("leave", json!(["rust"])).await,
        json!({ "ok": true })
    );
    let refused =
        say(&alice, json!({ "room": "rust", "text": "anyone?" })).await;
    assert!(refused["error"].is_string());
    assert!(
        alice.emit_with_ack("leave", json!(["general"])).await["error"]
            .is_string()
    );
}

// ---------------------------------------------------------------- presence and
// typing

fn names(presence: &Value) -> Vec<String> {
    presence["users"]
        .as_array()
        .map(|users| {
            users
                .iter()
                .filter_map(|u| u["username"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The usernames under `key` ("joined" or "left") of a `presence change`.
fn changed(change: &Value, key: &str) -> Vec<String> {
    names(&json!({ "users": change[key] }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_lists_each_online_user_once() {
    let app = spawn_app().await;
    let alice_cookie = app.register("alice").await;
    let (alice, _) = app.connected(&alice_cookie).await;
    assert_eq!(names(alice.next_named("presence").await.data()), ["alice"]);

    // Bob gets the whole list; Alice, already in, only hears who came.
    let (bob, _) = app.connected(&app.register("bob").await).await;
    assert_eq!(
        names(bob.next_named("presence").await.data()),
        ["alice", "bob"]
    );
    // Everyone in the room then hears that Bob came, Bob too (harmless: he is
    // on his list). Alice's own arrival may be gathered into the same change,
    // named just as harmlessly.
    for socket in [&alice, &bob] {
        loop {
            let change = socket.next_named("presence change").await;
            assert_eq!(change.data()["room"], "general");
            assert_eq!(changed(change.data(), "left"), Vec::<String>::new());
            let joined = changed(change.data(), "joined");
            if joined.contains(&"bob".to_owned()) {
                break;
            }
            assert_eq!(
                joined,
                ["alice"],
                "only Alice's own arrival may come first"
            );
        }
    }
    assert_silent(&alice, "presence").await;

    // A second tab of alice: she is listed once, and the room hears of no
    // change.
    let (second_tab, _) = app.connected(&alice_cookie).await;
    assert_eq!(
        names(second_tab.next_named("presence").await.data()),
        ["alice", "bob"]
    );
    assert_silent(&bob, "presence change").await;

    // Closing one of her tabs changes nothing; closing both does.
    alice.close().await;
    assert_silent(&bob, "presence change").await;
    second_tab.close().await;
    let change = bob.next_named("presence change").await;
    assert_eq!(changed(change.data(), "left"), ["alice"]);
    assert_eq!(changed(change.data(), "joined"), Vec::<String>::new());
}

/// The ids of the users a presence page lists, in the order given.
fn ids(page: &Value) -> Vec<i64> {
    page["users"]
        .as_array()
        .map(|users| users.iter().filter_map(|u| u["id"].as_i64()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_online_list_comes_a_page_at_a_time_and_the_rest_on_request() {
    let app = spawn_app_with(Options {
        presence_page: Some(2),
        ..Options::default()
    })
    .await;
    let mut sockets = Vec::new();
    for name in ["amy", "bob", "cyd", "dan"] {
        let (socket, _) = app.connected(&app.register(name).await).await;
        socket.next_named("presence").await;
        sockets.push(socket);
    }
    let (eve, _) = app.connected(&app.register("eve").await).await;

    // Eve enters: the first two users by id, and how many are online in all.
    let first = eve.next_named("presence").await.data().clone();
    assert_eq!(names(&first), ["amy", "bob"]);
    assert_eq!(
        (&first["online"], &first["more"]),
        (&json!(5), &json!(true))
    );

    // The rest, one page at a time, each after the last id she was given.
    let mut listed = names(&first);
    let mut after = *ids(&first).last().expect("a full first page");
    loop {
        let page = eve
            .emit_with_ack(
                "presence page",
                json!([{ "room": "general", "after": after }]),
            )
            .await;
        assert_eq!(
            (&page["room"], &page["online"]),
            (&json!("general"), &json!(5))
        );
        assert!(ids(&page).iter().all(|id| *id > after), "{page}");
        listed.extend(names(&page));
        if page["more"] == json!(false) {
            break;
        }
        after = *ids(&page).last().expect("a page with more has users");
    }
    assert_eq!(listed, ["amy", "bob", "cyd", "dan", "eve"]);

    // Everyone hears that Eve came, with the new count.
    let change = loop {
        let change = sockets[0]
            .next_named("presence change")
            .await
            .data()
            .clone();
        if changed(&change, "joined").contains(&"eve".to_owned()) {
            break change;
        }
    };
    assert_eq!(change["online"], 5);

    // Bad requests are refused with a reason, and the socket stays.
    let refusals = [
        (
            json!({ "room": "general", "after": "bob" }),
            "after must be a user id",
        ),
        (json!({ "room": "general" }), "after must be a user id"),
        (
            json!({ "room": "rust", "after": 0 }),
            "you have not joined this room",
        ),
        (
            json!({ "room": "No Such Room!", "after": 0 }),
            "room must be",
        ),
        (json!(null), "room must be"),
    ];
    for (payload, reason) in refusals {
        let answer = eve.emit_with_ack("presence page", json!([payload])).await;
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.starts_with(reason), "{payload} -> {answer}");
    }
    let still_there = eve
        .emit_with_ack(
            "presence page",
            json!([{ "room": "general", "after": 0 }]),
        )
        .await;
    assert_eq!(names(&still_there), ["amy", "bob"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_reaches_the_others_in_the_room_but_not_the_typist() {
    let app = spawn_app().await;
    let (alice, _) = app.connected(&app.register("alice").await).await;
    let (bob, _) = app.connected(&app.register("bob").await).await;
    // Typing is not stored, so only those already in the room hear it: Bob is
    // in `general` once its online list has come (his `history` comes before
    // he joins; on a busy machine, seen to come long before).
    bob.next_named("presence").await;
    alice.emit("typing", json!([{ "room": "general" }])).await;
    let typing = bob.next_named("typing").await.data().clone();
    assert_eq!(typing["room"], "general");
    assert_eq!(typing["user"]["username"], "alice");
    assert_silent(&alice, "typing").await;
}

// ---------------------------------------------------------------- catch-up

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_client_gets_each_missed_message_once_in_order() {
    let app = spawn_app().await;
    let alice_cookie = app.register("alice").await;
    let (bob, _) = app.connected(&app.register("bob").await).await;
    let (alice, _) = app.connected(&alice_cookie).await;

    say(&bob, json!("seen 1")).await;
    let last_seen =
        say(&bob, json!("seen 2")).await["id"].as_i64().expect("id");
    alice.next_named("chat message").await;
    alice.next_named("chat message").await;
    alice.close().await;

    let mut missed = Vec::new();
    for n in 1..=3 {
        missed
            .push(say(&bob, json!(format!("missed {n}"))).await["id"].clone());
    }

    let (alice, history) = app
        .connected_with(
            &alice_cookie,
            json!({ "auth": { "serverOffset": last_seen } }),
        )
        .await;
    // The history ends where she left off; what she missed comes after it,
    // once.
    assert_eq!(
        history["messages"].as_array().map(Vec::len),
        Some(2),
        "history up to serverOffset"
    );
    assert_eq!(history["truncated"], false);
    let mut replayed = Vec::new();
    for _ in 0..3 {
        replayed
            .push(alice.next_named("chat message").await.data()["id"].clone());
    }
    assert_eq!(replayed, missed);
    assert_silent(&alice, "chat message").await; // exactly once
}

// ---------------------------------------------------------------- abuse

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_messages_is_rate_limited_and_the_connection_stays_up() {
    // A burst of 20 as in production, but a slow refill, so that a slow test
    // machine cannot earn an extra token while the 25 messages are on their
    // way. (The refill itself is unit-tested in `rate_limit.rs`, with a clock
    // the test controls.)
    let app = spawn_app_with(support::Options {
        rate_limit: Some((20, 0.01)),
        ..Default::default()
    })
    .await;
    let (alice, _) = app.connected(&app.register("alice").await).await;
    let mut accepted = 0;
    let mut limited = 0;
    for n in 0..25 {
        let ack = say(&alice, json!(format!("spam {n}"))).await;
        if ack["ok"] == true {
            accepted += 1;
        } else if ack["error"] == "rate limited" {
            limited += 1;
        }
    }
    assert_eq!((accepted, limited), (20, 5));
    // Still connected and served: other events work.
    let ack = alice
        .emit_with_ack("join", json!(["after-the-burst"]))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_is_per_user_not_per_socket() {
    let app = spawn_app_with(support::Options {
        rate_limit: Some((3, 0.01)),
        ..Default::default()
    })
    .await;
    let alice_cookie = app.register("alice").await;
    let (tab_one, _) = app.connected(&alice_cookie).await;
    let (tab_two, _) = app.connected(&alice_cookie).await;
    let (bob, _) = app.connected(&app.register("bob").await).await;
    for n in 0..3 {
        assert_eq!(say(&tab_one, json!(format!("one {n}"))).await["ok"], true);
    }
    // Another tab of the same user shares the bucket; another user has their
    // own.
    assert_eq!(say(&tab_two, json!("two")).await["error"], "rate limited");
    assert_eq!(say(&bob, json!("bob")).await["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_disconnects_every_socket_of_that_session() {
    let app = spawn_app().await;
    let cookie = app.register("alice").await;
    let (first, _) = app.connected(&cookie).await;
    let (second, _) = app.connected(&cookie).await;
    let response = app.post_json("/logout", Some(&cookie), json!({})).await;
    assert_eq!(response.status(), 204);
    for socket in [&first, &second] {
        let event = socket
            .try_next_named("disconnect", Duration::from_secs(1))
            .await
            .expect("disconnected within a second");
        assert_eq!(event.raw["reason"], "io server disconnect");
    }
    let again = app.socket(Some(&cookie), json!({})).await;
    // The handshake gets a 401:
    assert_eq!(again.expect_connect_error().await, "xhr poll error");
}

// ---------------------------------------------------------------- restart

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_the_same_database_keeps_accounts_messages_and_logins() {
    let app = spawn_app().await;
    let cookie = app.register("alice").await;
    let (alice, _) = app.connected(&cookie).await;
    let id = say(&alice, json!("before the restart")).await["id"].clone();
    let restart = app.stop().await;

    let app = spawn_app_with(restart).await;
    // The login survived (same session store, same key)...
    let (_, history) = app.connected(&cookie).await;
    // ...and so did the message...
    assert_eq!(history["messages"][0]["id"], id);
    assert_eq!(history["messages"][0]["text"], "before the restart");
    // ...and the account.
    app.login("alice").await;
}
