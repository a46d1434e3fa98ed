//! The chat page, used the way people use it: two browsers, two accounts, one
//! conversation.
//!
//! Every scenario runs in headless Chromium through `testkit::browser_run`;
//! each `page` name is its own browser context, so "alice" and "bob" have their
//! own session cookies exactly like two people on two computers. Screenshots
//! land in the temp directory, named after the port, for a human to look at
//! when something seems off.

mod support;

use serde_json::{Value, json};
use support::{
    Options, PASSWORD, register_in_page as register, spawn_app, spawn_app_with,
};

const XSS: &str = "<img src=x onerror=alert(1)>";

/// `localhost`, not 127.0.0.1: the browser then sends `Origin:
/// http://localhost:PORT`, one of the server's own origins.
fn page_url(app: &support::TestApp) -> String {
    format!("http://localhost:{}/", app.address.port())
}

fn screenshot(name: &str, port: u16) -> String {
    std::env::temp_dir()
        .join(format!("step05-{port}-{name}.png"))
        .display()
        .to_string()
}

#[tokio::test]
async fn two_people_chat_see_each_other_and_markup_stays_text() {
    let app = spawn_app().await;
    let url = page_url(&app);
    let port = app.address.port();

    let mut steps = vec![
        // A wrong password shows the server's own words, and the chat stays
        // hidden.
        json!({ "page": "alice", "goto": url }),
        json!({ "page": "alice", "fill": "#username", "value": "alice" }),
        json!({ "page": "alice", "fill": "#password", "value": PASSWORD }),
        json!({ "page": "alice", "click": "#login-button" }),
        json!({ "page": "alice", "waitText": "#auth-error",
                "text": "Invalid username or password" }),
        json!({ "page": "alice",
                "screenshot": screenshot("login-error", port) }),
    ];
    steps.extend(register(&url, "alice"));
    steps.extend(register(&url, "bob"));
    steps.extend([
        // Presence: each sees the other online in "general".
        json!({ "page": "alice", "waitText": "#presence li", "text": "bob" }),
        json!({ "page": "bob", "waitText": "#presence li", "text": "alice" }),
        // Typing is announced to the others before the message is sent.
        json!({ "page": "alice", "fill": "#message-input",
                "value": "hello bob" }),
        json!({ "page": "bob", "waitText": "#typing",
                "text": "alice is typing" }),
        json!({ "page": "alice", "press": "#message-input", "key": "Enter" }),
        json!({ "page": "bob",
                "waitText": "#messages li.message:not(.own) .text",
                "text": "hello bob" }),
        json!({ "page": "alice", "waitText": "#messages li.message.own .text",
                "text": "hello bob" }),
        // Markup in a message is shown as the characters typed, never run.
        json!({ "page": "alice", "fill": "#message-input", "value": XSS }),
        json!({ "page": "alice", "click": "#send-button" }),
        json!({ "page": "bob", "waitText": "#messages li.message .text",
                "text": "onerror" }),
        json!({ "page": "bob", "waitGone": "#messages img" }),
        json!({ "page": "bob", "read": "#messages li.message:last-child .text",
                "as": "xss" }),
        json!({ "page": "bob",
                "read": "#messages li.message:last-child .author",
                "as": "author" }),
        json!({ "page": "bob",
                "screenshot": screenshot("chat-desktop", port) }),
        json!({ "page": "bob", "viewport": { "width": 360, "height": 740 } }),
        json!({ "page": "bob", "screenshot": screenshot("chat-phone", port) }),
        // A reload keeps bob logged in (the session cookie) and brings the
        // history back.
        json!({ "page": "bob", "goto": url }),
        json!({ "page": "bob", "waitText": "#messages li.message .text",
                "text": "hello bob" }),
        // Logging out returns alice to the form; bob sees her leave.
        json!({ "page": "alice", "click": "#logout-button" }),
        json!({ "page": "alice", "waitText": "#login-button",
                "text": "Log in" }),
        json!({ "page": "bob",
                "waitGone": "#presence li:has-text(\"alice\")" }),
        json!({ "page": "alice",
                "screenshot": screenshot("logged-out", port) }),
    ]);

    let report = testkit::browser_run(Value::Array(steps)).await;

    assert_eq!(report["read"]["xss"], XSS, "{report}");
    assert_eq!(report["read"]["author"], "alice", "{report}");
    assert_eq!(report["errors"], json!([]), "page errors: {report}");
}

#[tokio::test]
async fn a_message_in_a_room_reaches_only_those_who_joined_it() {
    let app = spawn_app().await;
    let url = page_url(&app);
    let port = app.address.port();

    let mut steps = register(&url, "alice");
    steps.extend(register(&url, "bob"));
    steps.extend([
        json!({ "page": "alice", "fill": "#join-input", "value": "rust" }),
        json!({ "page": "alice", "click": "#join-button" }),
        json!({ "page": "alice", "waitText": "#rooms li[data-room=rust]",
                "text": "rust" }),
        json!({ "page": "alice", "fill": "#message-input",
                "value": "only for rustaceans" }),
        json!({ "page": "alice", "press": "#message-input", "key": "Enter" }),
        json!({ "page": "alice", "waitText": "#messages li.message .text",
                "text": "only for rustaceans" }),
        // bob is still only in "general": nothing arrived there.
        json!({ "page": "bob", "fill": "#message-input", "value": "anyone?" }),
        json!({ "page": "bob", "press": "#message-input", "key": "Enter" }),
        json!({ "page": "bob", "waitText": "#messages li.message .text",
                "text": "anyone?" }),
        json!({ "page": "bob", "read": "#messages", "as": "bob general" }),
        // Joining shows the room's history, and the room's presence.
        json!({ "page": "bob", "fill": "#join-input", "value": "rust" }),
        json!({ "page": "bob", "press": "#join-input", "key": "Enter" }),
        json!({ "page": "bob", "waitText": "#messages li.message .text",
                "text": "only for rustaceans" }),
        json!({ "page": "bob", "waitText": "#presence li", "text": "alice" }),
        json!({ "page": "alice", "waitText": "#presence li", "text": "bob" }),
        json!({ "page": "alice", "screenshot": screenshot("room", port) }),
        // Leaving goes back to "general", where bob's own message still is.
        json!({ "page": "bob", "click": "#rooms li[data-room=rust] .leave" }),
        json!({ "page": "bob", "waitGone": "#rooms li[data-room=rust]" }),
        json!({ "page": "bob", "waitText": "#messages li.message.own .text",
                "text": "anyone?" }),
        json!({ "page": "alice",
                "waitGone": "#presence li:has-text(\"bob\")" }),
    ]);

    let report = testkit::browser_run(Value::Array(steps)).await;

    let general = report["read"]["bob general"].as_str().unwrap_or_default();
    assert!(!general.contains("rustaceans"), "{report}");
    assert_eq!(report["errors"], json!([]), "page errors: {report}");
}

#[tokio::test]
async fn a_page_whose_network_drops_shows_every_message_once_in_order_when_it_is_back()
 {
    network_drop_in("general", true).await;
}

/// A page that entered an empty room and saw nothing yet still has something
/// to say when it reconnects: "everything up to nothing" (`serverOffset: 0`).
/// Without it the server sent the newest 50 and replayed nothing.
#[tokio::test]
async fn a_page_that_had_seen_no_message_gets_every_one_when_it_is_back() {
    network_drop_in("general", false).await;
}

/// The same in a room both joined: back online, the page joins it again with
/// the last message it saw there, and the server replays the rest.
#[tokio::test]
async fn back_online_a_page_shows_every_message_it_missed_in_a_room_once_in_order()
 {
    network_drop_in("rust", true).await;
}

/// Alice and Bob are in `room` (and, if `seen_one`, Alice saw a message
/// there); Alice's network drops while Bob sends 60 messages there (more than
/// a history of 50, so a page that came back without its offset would show a
/// hole); back online, her page shows them all, once, in order.
async fn network_drop_in(room: &str, seen_one: bool) {
    let app = spawn_app_with(Options {
        rate_limit: Some((u32::MAX, 1e9)), // 60 messages at once
        ..Options::default()
    })
    .await;
    let url = page_url(&app);
    let port = app.address.port();
    let sent: Vec<String> = (1..=60)
        .map(|n| format!("while you were away {n:02}"))
        .collect();

    let mut steps = register(&url, "alice");
    steps.extend(register(&url, "bob"));
    if room != "general" {
        for who in ["alice", "bob"] {
            steps.extend([
                json!({ "page": who, "fill": "#join-input", "value": room }),
                json!({ "page": who, "press": "#join-input", "key": "Enter" }),
                json!({ "page": who, "waitText": "#room-title",
                        "text": room }),
            ]);
        }
    }
    if seen_one {
        steps.extend([
            json!({ "page": "bob", "fill": "#message-input", "value": "before" }),
            json!({ "page": "bob", "press": "#message-input", "key": "Enter" }),
            json!({ "page": "alice", "waitText": "#messages li.message .text",
                    "text": "before" }),
        ]);
    }
    steps.extend([
        // Alice's network drops. Chromium's offline switch stops new requests
        // but leaves an open WebSocket alone (a real drop is noticed when the
        // heartbeat times out, 45 s by default), so the open connection is cut
        // by hand, as the network would have cut it.
        json!({ "page": "alice", "offline": true }),
        json!({ "page": "alice", "evaluate": "socket.io.engine.close()" }),
        json!({ "page": "alice", "waitText": "#status",
                "text": "reconnecting" }),
        // Bob's page sends them one after the other, each acknowledged.
        json!({ "page": "bob", "evaluate": format!(
            "(async () => {{ for (let n = 1; n <= 60; n++) await socket
               .emitWithAck('chat message', {{ room: '{room}',
               text: 'while you were away ' + String(n).padStart(2, '0') }});
             }})()") }),
        json!({ "page": "bob", "waitText": "#messages li.message .text",
                "text": sent[59] }),
    ]);
    steps.extend([
        json!({ "page": "alice", "sleep": 1000 }),
        json!({ "page": "alice", "offline": false }),
        json!({ "page": "alice", "waitText": "#status", "text": "connected" }),
        json!({ "page": "alice", "waitText": "#messages li.message .text",
                "text": sent[59] }),
        json!({ "page": "alice", "read": "#messages", "as": "alice" }),
        json!({ "page": "alice",
                "screenshot": screenshot(&format!("back-in-{room}"), port) }),
    ]);

    let report = testkit::browser_run(Value::Array(steps)).await;

    let shown = report["read"]["alice"].as_str().unwrap_or_default();
    let mut expected = match seen_one {
        true => vec!["before".to_owned()],
        false => Vec::new(),
    };
    expected.extend(sent);
    let positions: Vec<Option<usize>> =
        expected.iter().map(|t| shown.find(t.as_str())).collect();
    assert!(positions.iter().all(Option::is_some), "missing: {shown}");
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "out of order: {shown}"
    );
    for text in &expected {
        assert_eq!(
            shown.matches(text.as_str()).count(),
            1,
            "{text} twice: {shown}"
        );
    }
    assert_eq!(report["errors"], json!([]), "page errors: {report}");
}

#[tokio::test]
async fn a_long_online_list_shows_its_first_page_and_the_rest_on_request() {
    // One user per page, so that three users make a long list.
    let app = spawn_app_with(Options {
        presence_page: Some(1),
        ..Options::default()
    })
    .await;
    let url = page_url(&app);

    let mut steps = register(&url, "alice");
    steps.extend(register(&url, "bob"));
    steps.extend(register(&url, "carol"));
    steps.extend([
        // Carol sees the first page (alice), herself, and a button for the
        // rest.
        json!({ "page": "carol", "waitText": "#presence-heading",
                "text": "Online · 3" }),
        json!({ "page": "carol", "waitText": "#presence li", "text": "alice" }),
        json!({ "page": "carol", "read": "#presence", "as": "first page" }),
        json!({ "page": "carol", "click": "#more-online" }),
        json!({ "page": "carol", "waitText": "#presence li", "text": "bob" }),
        json!({ "page": "carol", "click": "#more-online" }),
        json!({ "page": "carol", "waitGone": "#more-online" }),
        json!({ "page": "carol", "read": "#presence", "as": "whole list" }),
        // With the whole list in hand, she hears of a newcomer and of someone
        // leaving.
    ]);
    steps.extend(register(&url, "dave"));
    steps.extend([
        json!({ "page": "carol", "waitText": "#presence li", "text": "dave" }),
        json!({ "page": "carol", "waitText": "#presence-heading",
                "text": "Online · 4" }),
        json!({ "page": "alice", "click": "#logout-button" }),
        json!({ "page": "carol",
                "waitGone": "#presence li:has-text(\"alice\")" }),
        json!({ "page": "carol", "waitText": "#presence-heading",
                "text": "Online · 3" }),
        json!({ "page": "carol", "read": "#presence", "as": "after" }),
    ]);

    let report = testkit::browser_run(Value::Array(steps)).await;

    let lines = |key: &str| -> Vec<String> {
        let text = report["read"][key].as_str().unwrap_or_default();
        text.lines().map(|line| line.trim().to_owned()).collect()
    };
    // (The "(you)" tag is an element of its own: its own line of text.)
    let you = ["carol", "(you)"];
    assert_eq!(
        lines("first page"),
        [&you[..], &["alice", "Show 1 more"]].concat(),
        "{report}"
    );
    assert_eq!(
        lines("whole list"),
        [&["alice", "bob"], &you[..]].concat(),
        "{report}"
    );
    assert_eq!(
        lines("after"),
        [&["bob"], &you[..], &["dave"]].concat(),
        "{report}"
    );
    assert_eq!(report["errors"], json!([]), "page errors: {report}");
}
