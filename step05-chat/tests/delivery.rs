//! Chapter 5's delivery promises, tried where they break: long absences,
//! clients that stop reading, retried sends, and tabs that close as fast as
//! they open. Every client here is the official Socket.IO JavaScript client.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use step05_chat::validation::MAX_TEXT_CHARS;
use support::{
    Options, TestApp, assert_silent, eventually, say, spawn_app_with,
};
use testkit::{JsClient, JsSocket};

/// A chat without rate limits: these tests send faster than a person may.
async fn unlimited(socket_buffer: Option<usize>) -> TestApp {
    spawn_app_with(Options {
        rate_limit: Some((u32::MAX, 1e9)),
        limits: Some(step05_chat::limits::ChatLimits::off()),
        socket_buffer,
        ..Default::default()
    })
    .await
}

/// Sends `count` messages to `general` from `socket`, in chunks of pipelined
/// emits (a chunk is sent without waiting for acknowledgements), and returns
/// their ids in order.
///
/// A chunk puts up to two packets per message in the sender's own queue (its
/// acknowledgement and the broadcast it receives too), so 40 fit the smallest
/// queue these tests give a socket, 100 packets: a bigger chunk made the
/// sender itself lag on a slow machine, and lose acknowledgements by design.
async fn send_many(socket: &JsSocket, label: &str, count: usize) -> Vec<i64> {
    send_many_to(socket, "general", label, count).await
}

/// [`send_many`] to `room`.
async fn send_many_to(
    socket: &JsSocket,
    room: &str,
    label: &str,
    count: usize,
) -> Vec<i64> {
    let mut ids = Vec::with_capacity(count);
    let texts: Vec<String> =
        (0..count).map(|n| format!("{label} {n}")).collect();
    for chunk in texts.chunks(40) {
        let message = |text| json!([{ "room": room, "text": text }]);
        let args = chunk.iter().map(message).collect();
        for ack in socket.emit_many("chat message", args).await {
            ids.push(
                ack["id"]
                    .as_i64()
                    .unwrap_or_else(|| panic!("not stored: {ack}")),
            );
        }
    }
    ids
}

/// Reads `count` `chat message` events from `socket` and returns their ids, in
/// arrival order.
async fn receive_ids(
    socket: &JsSocket,
    count: usize,
    wait: Duration,
) -> Vec<i64> {
    let mut ids = Vec::with_capacity(count);
    while ids.len() < count {
        let Some(event) = socket.try_next_named("chat message", wait).await
        else {
            panic!(
                "got {} of {count} messages, then nothing for {wait:?}",
                ids.len()
            );
        };
        ids.push(event.data()["id"].as_i64().expect("a message id"));
    }
    ids
}

fn message_ids(history: &Value) -> Vec<i64> {
    history["messages"]
        .as_array()
        .expect("history.messages is an array")
        .iter()
        .map(|message| message["id"].as_i64().expect("id"))
        .collect()
}

// ---------------------------------------------------------------- order

/// A script or a bot sends without waiting for each acknowledgement (the
/// official client without `retries` writes its packets back to back). On the
/// multi-threaded runtime production uses, socketioxide runs each event's
/// handler as a task of its own, and the last spawned may run first: without
/// step 4's `InOrder`, 30 to 49 of 500 such messages were stored out of the
/// order they were sent. Their ids must follow the order of sending.
async fn sent_back_to_back_keep_their_order(transport: &str) {
    let app = unlimited(None).await;
    let cookie = app.register("bot").await;
    let only = json!({ "transports": [transport] });
    let (bot, _) = app.connected_with(&cookie, only).await;
    let args = (0..200).map(|n| json!([format!("burst {n}")])).collect();
    let ids: Vec<i64> = bot
        .emit_many("chat message", args)
        .await
        .iter()
        .map(|ack| ack["id"].as_i64().unwrap_or_else(|| panic!("{ack}")))
        .collect();
    assert_eq!(ids.len(), 200);
    let out_of_order = ids.windows(2).filter(|pair| pair[0] >= pair[1]).count();
    assert_eq!(out_of_order, 0, "ids in the order sent: {ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_back_to_back_over_websocket_are_stored_in_order() {
    sent_back_to_back_keep_their_order("websocket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_back_to_back_over_polling_are_stored_in_order() {
    sent_back_to_back_keep_their_order("polling").await;
}

// ---------------------------------------------------------------- catch-up

/// Alice is away while `missed` messages are sent to `general`; she comes back
/// over `transport` with the id of the last message she saw.
async fn catch_up(missed: usize, transport: &str) {
    let app = unlimited(None).await;
    let alice = app.register("alice").await;
    let (bob, _) = app.connected(&app.register("bob").await).await;
    let last_seen = say(&bob, json!("before you left")).await["id"]
        .as_i64()
        .expect("id");

    let sent = send_many(&bob, "while you were away", missed).await;

    let auth = json!({
        "transports": [transport],
        "auth": { "serverOffset": last_seen }
    });
    let (alice, history) = app.connected_with(&alice, auth).await;
    // The history is what she had already seen; the rest is replayed after it.
    assert!(message_ids(&history).iter().all(|&id| id <= last_seen));
    let replayed = sent.len().min(1000);
    assert_eq!(history["truncated"], missed > 1000, "truncated flag");
    let got = receive_ids(&alice, replayed, Duration::from_secs(10)).await;
    assert_eq!(got, sent[sent.len() - replayed..], "the newest, in order");
    assert_silent(&alice, "chat message").await; // and each once
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn away_for_300_messages_over_websocket_gets_all_300_once_in_order() {
    catch_up(300, "websocket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn away_for_300_messages_over_polling_gets_all_300_once_in_order() {
    catch_up(300, "polling").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn away_for_1500_messages_over_websocket_gets_the_newest_1000_and_is_told()
 {
    catch_up(1500, "websocket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn away_for_1500_messages_over_polling_gets_the_newest_1000_and_is_told()
{
    catch_up(1500, "polling").await;
}

/// The same in a room other than `general`: Alice had joined `lobby` and seen
/// its messages up to `last_seen`; while she is away `missed` messages come to
/// `lobby` (and some to `general`). She comes back and joins `lobby` again with
/// that room's offset, as the page does for each room it was in: the join's
/// history ends where she left off, then every message she missed there
/// follows, once, in order (the newest 1,000, and `truncated` beyond).
async fn catch_up_in_a_room(missed: usize, transport: &str) {
    let app = unlimited(None).await;
    let alice = app.register("alice").await;
    let (bob, _) = app.connected(&app.register("bob").await).await;
    let joined = bob.emit_with_ack("join", json!(["lobby"])).await;
    assert_eq!(joined["ok"], true, "{joined}");
    let before = json!({ "room": "lobby", "text": "before you left" });
    let last_seen = say(&bob, before).await["id"].as_i64().expect("id");

    let sent = send_many_to(&bob, "lobby", "while you were away", missed).await;
    send_many(&bob, "elsewhere", 5).await; // not hers to replay in `lobby`

    let only = json!({ "transports": [transport] });
    let (alice, _) = app.connected_with(&alice, only).await;
    let again = json!([{ "room": "lobby", "serverOffset": last_seen }]);
    let joined = alice.emit_with_ack("join", again).await;
    assert_eq!(
        (&joined["ok"], &joined["room"]),
        (&json!(true), &json!("lobby"))
    );
    let history = json!({ "messages": joined["history"] });
    assert!(message_ids(&history).iter().all(|&id| id <= last_seen));
    assert!(message_ids(&history).contains(&last_seen), "{joined}");
    assert_eq!(joined["truncated"], missed > 1000, "truncated flag");
    let replayed = sent.len().min(1000);
    let got = receive_ids(&alice, replayed, Duration::from_secs(10)).await;
    assert_eq!(got, sent[sent.len() - replayed..], "the newest, in order");
    assert_silent(&alice, "chat message").await; // and each once

    // Live again: the next message in `lobby` comes once, after them.
    let next = json!({ "room": "lobby", "text": "welcome back" });
    let id = say(&bob, next).await["id"].as_i64().expect("id");
    assert_eq!(receive_ids(&alice, 1, Duration::from_secs(10)).await, [id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn away_from_a_room_for_300_messages_over_websocket_gets_all_300() {
    catch_up_in_a_room(300, "websocket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn away_from_a_room_for_300_messages_over_polling_gets_all_300() {
    catch_up_in_a_room(300, "polling").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn away_from_a_room_for_1500_messages_over_websocket_gets_1000_and_is_told()
 {
    catch_up_in_a_room(1500, "websocket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn away_from_a_room_for_1500_messages_over_polling_gets_1000_and_is_told()
{
    catch_up_in_a_room(1500, "polling").await;
}

// ---------------------------------------------------------------- slow
// consumers

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_ends_with_every_message_once_in_order() {
    // A small queue, so that 500 messages overflow it while the client is
    // frozen.
    let app = unlimited(Some(100)).await;
    let carol = app.register("carol").await;
    let (bob, _) = app.connected(&app.register("bob").await).await;
    // Carol's client runs in a Node.js process of its own, which the test
    // freezes; over long-polling, a frozen client asks for nothing, so the
    // server's queue for her fills up.
    let frozen_tab = JsClient::start().await;
    let opts = json!({
        "extraHeaders": { "cookie": carol },
        "transports": ["polling"],
        "resync": true,
    });
    let carol = frozen_tab.connect(&app.url("/"), opts).await;
    carol.expect_connect().await;
    carol.next_named("history").await;

    let (_, sent) = tokio::join!(
        frozen_tab.freeze(Duration::from_secs(3)),
        send_many(&bob, "while frozen", 500)
    );

    let got = receive_ids(&carol, sent.len(), Duration::from_secs(15)).await;
    assert_eq!(got, sent, "every message, in order");
    assert_silent(&carol, "chat message").await;
    // And it took the resync path: the server did not pretend the queue was
    // endless.
    assert!(
        carol
            .try_next_named("resyncing", Duration::from_millis(10))
            .await
            .is_some(),
        "the server should have resynchronised the frozen client"
    );
}

/// A client that reads nothing at all but answers the server's heartbeat
/// blindly (a stuck tab, a hostile script) must not keep its connection, and
/// the queue that fills behind it, for ever: once its queue is full the
/// server cannot even queue a ping for it, and closes the connection itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_closed_even_if_it_answers_heartbeats() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let app = unlimited(Some(100)).await;
    let mallory = app.register("mallory").await;
    let (bob, _) = app.connected(&app.register("bob").await).await;
    let url =
        format!("ws://{}/socket.io/?EIO=4&transport=websocket", app.address);
    let mut request = url.as_str().into_client_request().expect("url");
    let cookie = mallory.parse().expect("a cookie header");
    request.headers_mut().insert("cookie", cookie);
    let (mut stuck, _) =
        tokio_tungstenite::connect_async(request).await.expect("ws");
    stuck.send(Message::text("40")).await.expect("connect");

    // Bob talks: 13 MB, far more than mallory's queue and the kernel's
    // buffers hold, in messages as long as the chat takes (exercise 1 makes
    // them shorter; 4 characters are left for `send_many`'s numbers).
    let text = "x".repeat(MAX_TEXT_CHARS.min(900) - 4);
    let rounds = 13_500_000 / (100 * text.len());
    let talking = async {
        for _ in 0..rounds {
            send_many(&bob, &text, 100).await;
        }
    };
    // Mallory never reads, and says "pong" twice a second, whatever comes.
    let pretending = async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        while tokio::time::Instant::now() < deadline {
            if stuck.send(Message::text("3")).await.is_err() {
                return true; // the server has closed the connection
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        false
    };
    // Bob stops talking once mallory is closed: shorter messages make more.
    tokio::pin!(pretending);
    let closed = tokio::select! {
        closed = &mut pretending => closed,
        () = talking => pretending.await,
    };
    assert!(
        closed,
        "a client that reads nothing still connected after 90 s"
    );
}

// ---------------------------------------------------------------- retried
// sends

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_again_with_the_same_client_offset_is_stored_and_broadcast_once()
 {
    let app = unlimited(None).await;
    let alice_cookie = app.register("alice").await;
    let (bob, _) = app.connected(&app.register("bob").await).await;
    let (alice, _) = app.connected(&alice_cookie).await;
    let message = json!({ "text": "only once", "clientOffset": "tab-1f3a-1" });

    let first = say(&alice, message.clone()).await;
    let again = say(&alice, message.clone()).await;
    alice.close().await;
    let (alice, _) = app.connected(&alice_cookie).await;
    let after_reconnect = say(&alice, message.clone()).await;

    assert_eq!(first["ok"], true);
    assert_eq!(again["id"], first["id"]);
    assert_eq!(after_reconnect["id"], first["id"]);
    // Broadcast once: Bob got it once.
    assert_eq!(
        bob.next_named("chat message").await.data()["id"],
        first["id"]
    );
    assert_silent(&bob, "chat message").await;
    // Stored once: a newcomer's history has it once.
    let (_, history) = app.connected(&app.register("dave").await).await;
    let copies = message_ids(&history)
        .iter()
        .filter(|id| json!(id) == first["id"])
        .count();
    assert_eq!(copies, 1);
    // The same offset from another user is another message.
    let bobs = say(&bob, message).await;
    assert_ne!(bobs["id"], first["id"]);
}

// ---------------------------------------------------------------- presence

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tabs_closed_as_they_open_during_a_flood_leave_no_ghost() {
    let app = unlimited(None).await;
    let ghost = app.register("ghost").await;
    let (bob, _) = app.connected(&app.register("bob").await).await;
    let alice = app.register("alice").await;
    let tab = json!({
        "extraHeaders": { "cookie": ghost },
        "transports": ["websocket"]
    });

    let url = app.url("/");
    for round in 1..=3 {
        let (opened, _) = tokio::join!(
            app.js.connect_and_close_many(&url, tab.clone(), 400),
            send_many(&bob, "flood", 300)
        );
        assert!(opened > 0, "round {round}: no tab connected at all");
        // Once the server has seen every tab go, a newcomer's list has no
        // ghost (asked again until then; a ghost that stays fails).
        let no_ghost = eventually(|| async {
            let (observer, _) = app.connected(&alice).await;
            let presence = observer.next_named("presence").await;
            let users = presence.data()["users"].as_array().cloned();
            observer.close().await;
            let names = users.unwrap_or_default();
            !names.iter().any(|user| user["username"] == "ghost")
        });
        assert!(
            no_ghost.await,
            "round {round}: ghost still online after {opened} closed tabs"
        );
    }
}

/// A client may send `join "general"` the instant it connects, while its
/// connect's own entry into `general` (history, then what it missed) still
/// waits its turn behind other catch-ups. Both used to send the missed
/// messages: each came twice. Step 5 whatever `CHAT_SERVER` says: the others
/// enter a socket too fast for a test to hold that window open (the twin has
/// its own test, `compare/node-chat/test/catch-up.test.js`; chat-under-load
/// has step 5's guard).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_of_general_while_the_connect_catch_up_waits_shows_each_message_once()
 {
    let options = Options::every_rate_lifted();
    let app = support::spawn_app_built_by(step05_chat::build, options).await;
    let cookie = app.register("alice").await;
    let (writer, _) = app.connected(&cookie).await;
    let burst = (0..1_000)
        .map(|n| json!([{ "room": "general", "text": format!("m{n}") }]))
        .collect();
    let acks = writer.emit_many("chat message", burst).await;
    let ids: Vec<i64> =
        acks.iter().filter_map(|ack| ack["id"].as_i64()).collect();
    assert_eq!(ids.len(), 1_000, "every message stored");
    let seen = ids[994];
    // On a busy machine the queue may drain before the join is read: then
    // again, with fresh users (each user may have 20 sockets).
    let mut tries = 0;
    let shown = loop {
        tries += 1;
        if let Some(shown) = join_behind_catch_ups(&app, tries, seen).await {
            break shown;
        }
        assert!(tries < 5, "in 5 tries the join never came before the entry");
    };
    let expected: HashMap<i64, usize> =
        ids[995..].iter().map(|&id| (id, 1)).collect();
    assert_eq!(shown, expected, "each missed message once");
}

/// 120 tabs of six users come back from nothing (120 catch-ups of 1,000
/// messages queue up), then a client that saw `seen` connects and joins
/// `general` from there at once. What it was shown of each message, or `None`
/// if its entry came before its join (the window was not held open).
async fn join_behind_catch_ups(
    app: &TestApp,
    round: usize,
    seen: i64,
) -> Option<HashMap<i64, usize>> {
    let from_nothing = json!({ "auth": { "serverOffset": 0 } });
    let mut cookies = Vec::new();
    for user in ["bob", "carol", "dave", "erin", "frank", "grace"] {
        cookies.push(app.register(&format!("{user}{round}")).await);
    }
    let opening = cookies.iter().flat_map(|cookie| {
        (0..20).map(|_| app.socket(Some(cookie), from_nothing.clone()))
    });
    let _ahead = futures_util::future::join_all(opening).await;
    let cookie = app.register(&format!("client{round}")).await;
    let client = app
        .socket(Some(&cookie), json!({ "auth": { "serverOffset": seen } }))
        .await;
    let join = json!([{ "room": "general", "serverOffset": seen }]);
    client.emit_with_ack("join", join).await;
    let entered_first = client.try_next_named("history", Duration::ZERO).await;
    if entered_first.is_some() {
        return None;
    }
    client.next_named("history").await;
    let mut shown: HashMap<i64, usize> = HashMap::new();
    let quiet = Duration::from_secs(2);
    while let Some(event) = client.try_next_named("chat message", quiet).await {
        let id = event.data()["id"].as_i64().expect("an id");
        *shown.entry(id).or_default() += 1;
    }
    Some(shown)
}
