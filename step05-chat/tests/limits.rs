//! The chat's abuse limits (chapter 5, "Limits"), each tried the way a script
//! would break it, and the classroom that must never notice them.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use step05_chat::limits::ChatLimits;
use support::{Options, eventually, say, spawn_app, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_21st_socket_of_a_user_is_refused_with_a_reason_and_others_are_not()
{
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let mut tabs = Vec::new();
    for _ in 0..20 {
        let socket = app.socket(Some(&alice), json!({})).await;
        socket.expect_connect().await;
        tabs.push(socket);
    }

    let one_too_many = app.socket(Some(&alice), json!({})).await;
    assert_eq!(
        one_too_many.expect_connect_error().await,
        "too many connections: close another tab first"
    );
    // Bob is not affected; and a closed tab gives its place back.
    let (_bob, _) = app.connected(&app.register("bob").await).await;
    tabs.pop().expect("a tab").close().await;
    // The place comes back when the server has seen the tab go.
    let got_in = eventually(|| async {
        let again = app.socket(Some(&alice), json!({})).await;
        let connected = again.connect_outcome().await.is_ok();
        if !connected {
            again.close().await;
        }
        connected
    });
    assert!(got_in.await, "the closed tab's place never came back");
}

/// Tabs whose connection drops while the server is still admitting them
/// (their place taken, the socket not yet connected, so no disconnect handler
/// will ever run for them) give their place back: forty such, and their user
/// can still open all twenty tabs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_dropped_while_being_admitted_give_their_place_back() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let url =
        format!("ws://{}/socket.io/?EIO=4&transport=websocket", app.address);
    for _ in 0..40 {
        let mut request = url.as_str().into_client_request().expect("url");
        let cookie = alice.parse().expect("a cookie header");
        request.headers_mut().insert("cookie", cookie);
        let (mut ws, _) =
            tokio_tungstenite::connect_async(request).await.expect("ws");
        ws.next().await; // Engine.IO's `open`
        ws.send(Message::text("40"))
            .await
            .expect("Socket.IO's connect");
        drop(ws); // gone before the server could answer
    }
    let twenty_in = eventually(|| async {
        let mut tabs = Vec::new();
        for _ in 0..20 {
            tabs.push(app.socket(Some(&alice), json!({})).await);
        }
        let mut connected = 0;
        for tab in &tabs {
            connected += usize::from(tab.connect_outcome().await.is_ok());
        }
        for tab in tabs {
            tab.close().await;
        }
        connected == 20
    });
    assert!(
        twenty_in.await,
        "places taken by dropped sockets never came back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_joins_at_once_never_put_a_socket_in_more_than_its_rooms()
{
    let app = spawn_app_with(Options {
        limits: Some(ChatLimits {
            // This test is about the room count alone: neither the pace of
            // joins nor the 480 refusals (each a strike) may cut in.
            room_changes_per_second: 1e6,
            refusals_per_10s: 1_000,
            ..ChatLimits::default()
        }),
        ..Default::default()
    })
    .await;
    let (alice, _) = app.connected(&app.register("alice").await).await;

    let joins = (0..500).map(|n| json!([format!("room-{n}")])).collect();
    let acks = alice.emit_many("join", joins).await;

    let joined = acks.iter().filter(|ack| ack["ok"] == true).count();
    let refused = acks
        .iter()
        .filter(|ack| ack["error"] == "too many rooms: leave one first")
        .count();
    assert_eq!((joined, refused), (20, 480), "{acks:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_leave_flood_reaches_bystanders_as_a_bounded_trickle_and_is_cut_off()
 {
    let app = spawn_app().await;
    let bystander = app.register("bystander").await;
    let (bystander, _) = app.connected(&bystander).await;
    assert_eq!(
        bystander.emit_with_ack("join", json!(["rust"])).await["ok"],
        true
    );
    let (flooder, _) = app.connected(&app.register("flooder").await).await;

    let started = Instant::now();
    let flood: Vec<Value> = (0..500).flat_map(|_| [json!(["rust"])]).collect();
    let (joins, leaves) = tokio::join!(
        flooder.emit_many("join", flood.clone()),
        flooder.emit_many("leave", flood)
    );

    // Each of the flood's changes would be a presence event to every bystander;
    // they get a handful, because joins and leaves are rate-limited and
    // presence is gathered.
    let mut events = 0;
    while bystander
        .try_next_named("presence change", Duration::from_millis(500))
        .await
        .is_some()
    {
        events += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    let accepted = joins
        .iter()
        .chain(&leaves)
        .filter(|a| a["ok"] == true)
        .count();
    assert!(accepted <= 30, "accepted {accepted} of 1000 room changes");
    assert!(
        (events as f64) <= 12.0 * seconds + 5.0,
        "{events} presence events in {seconds:.1} s"
    );
    // Far past its limit, the flooding socket is disconnected.
    flooder.next_named("disconnect").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_reconnections_from_offset_zero_do_not_hold_up_anybody_s_messages()
 {
    let app = spawn_app_with(Options {
        limits: Some(ChatLimits::off()),
        rate_limit: Some((u32::MAX, 1e9)),
        ..Default::default()
    })
    .await;
    let (alice, _) = app.connected(&app.register("alice").await).await;
    // A long history: each reconnection below reads 50 + 1,000 messages.
    for chunk in 0..11 {
        let texts = (0..100)
            .map(|n| json!([format!("old {chunk}-{n}")]))
            .collect();
        alice.emit_many("chat message", texts).await;
    }
    let mallory = app.register("mallory").await;
    let reconnecting = json!({
        "extraHeaders": { "cookie": mallory }, "transports": ["websocket"],
        "auth": { "serverOffset": 0 },
    });

    let url = app.url("/");
    let flood = async {
        let mut connected = 0;
        for _ in 0..20 {
            connected += app
                .js
                .connect_and_close_many(&url, reconnecting.clone(), 50)
                .await;
        }
        connected
    };
    // Alice goes on chatting, a message every 50 ms, all through the flood:
    // each is stored and acknowledged. (How long the flood delays her is a
    // benchmark's question, not a test's: see `loadgen`.)
    let chatting = async {
        for n in 0..40 {
            assert_eq!(
                say(&alice, json!(format!("still here {n}"))).await["ok"],
                true
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let (connected, ()) = tokio::join!(flood, chatting);

    assert!(
        connected >= 900,
        "only {connected} of 1000 reconnections got in"
    );
}

/// 40 students behind one school router: every request comes from one address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_of_40_registers_logs_in_and_chats_without_a_single_refusal() {
    let app = spawn_app().await;
    let mut students = Vec::new();
    for n in 0..40 {
        let name = format!("student{n}");
        app.register(&name).await;
        let cookie = app.login(&name).await; // a second device, say
        let (socket, _) = app.connected(&cookie).await;
        students.push(socket);
    }

    // "Everybody say hello", all at once; then again, a little later.
    for round in 0..2 {
        let sends = students.iter().enumerate().map(|(n, socket)| {
            say(socket, json!(format!("hello from {n}, round {round}")))
        });
        let acks = futures_util::future::join_all(sends).await;
        let refused: Vec<&Value> =
            acks.iter().filter(|ack| ack["ok"] != true).collect();
        assert!(refused.is_empty(), "round {round}: {refused:?}");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_in_again_in_the_same_browser_closes_the_old_session_s_sockets_at_once()
 {
    let app = spawn_app().await;
    let old_cookie = app.register("alice").await;
    let (old_tab, _) = app.connected(&old_cookie).await;

    // The same browser logs in again (as anyone): it sends the cookie it has.
    let response = app
        .http
        .post(app.url("/login"))
        .header("cookie", &old_cookie)
        .json(&json!({ "username": "alice", "password": support::PASSWORD }))
        .send()
        .await
        .expect("POST /login");
    assert_eq!(response.status(), 200);

    let closed = old_tab
        .try_next_named("disconnect", Duration::from_secs(1))
        .await;
    assert!(
        closed.is_some(),
        "the old session's socket is still open after 1 s"
    );
}

/// passport-local reads `req.query` when the body's username is empty: a twin
/// that let it would check a password sent in the URL (and logged with it)
/// while its throttle counted the body's empty name. Only the body counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_the_query_string_are_not_a_login() {
    let app = spawn_app().await;
    app.register("alice").await;

    let password = support::PASSWORD.replace(' ', "+");
    let query = format!("/login?username=alice&password={password}");
    let empty = json!({ "username": "", "password": "" });
    let response = app.post_json(&query, None, empty).await;

    assert_eq!(response.status(), 401, "a login from the query string");
    assert_eq!(support::session_cookie(&response), None);
}

/// The chat is text only: a packet announcing a binary attachment closes the
/// connection before any attachment is read (step 4's parser settings; the
/// twin's Socket.IO parser with `maxAttachments: 0`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_event_closes_the_connection_unanswered() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let url =
        format!("ws://{}/socket.io/?EIO=4&transport=websocket", app.address);
    let mut request = url.as_str().into_client_request().expect("url");
    request
        .headers_mut()
        .insert("cookie", alice.parse().expect("a cookie header"));
    let (mut ws, _) =
        tokio_tungstenite::connect_async(request).await.expect("ws");
    ws.next().await; // Engine.IO's `open`
    ws.send(Message::text("40"))
        .await
        .expect("Socket.IO's connect");
    // Connected first: an event before the CONNECT's answer closes the
    // connection whatever it carries.
    loop {
        let message = ws.next().await.expect("an answer").expect("a frame");
        if message
            .into_text()
            .is_ok_and(|text| text.starts_with("40{"))
        {
            break;
        }
    }

    // `451-`: an event with one attachment, then the attachment.
    let binary = r#"451-["chat message",{"_placeholder":true,"num":0}]"#;
    ws.send(Message::text(binary)).await.expect("send");
    ws.send(Message::binary(vec![0u8; 1024])).await.ok();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(message)) = ws.next().await {
            let text = message.into_text().unwrap_or_default();
            assert!(!text.starts_with("43"), "answered: {text}");
            if text.starts_with("42[\"chat message\"") {
                panic!("a binary message was delivered: {text}");
            }
        }
    });
    assert!(closed.await.is_ok(), "still open 5 s after a binary event");
}

/// What happened while `flooders` accounts, each at its own limit of 5
/// messages a second, flooded `general` and a person sent `messages` there,
/// one every `every`: the person's acknowledgements, and how many of the
/// flood's messages the room took and refused.
async fn person_in_a_flood(
    app: &support::TestApp,
    flooders: usize,
    messages: usize,
    every: Duration,
) -> (Vec<Value>, usize, usize) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
    let mut sockets = Vec::new();
    for n in 0..flooders {
        let cookie = app.register(&format!("flooder{n}")).await;
        sockets.push(app.connected(&cookie).await.0);
    }
    let (person, _) = app.connected(&app.register("person").await).await;
    let (done, took, refused) = (
        AtomicBool::new(false),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    let (done, took, refused) = (&done, &took, &refused);
    let tick = Duration::from_millis(200); // each flooder's own limit
    let count = |ack: Value| match ack["ok"] == true {
        true => took.fetch_add(1, Relaxed),
        false => refused.fetch_add(1, Relaxed),
    };
    let flood = sockets.iter().enumerate().map(|(n, socket)| async move {
        use futures_util::StreamExt;
        // Spread over the 200 ms, as independent scripts would be; each
        // sends on its beat without waiting for the answers, as a script
        // would, so the room is offered 100 a second however slowly a busy
        // machine answers.
        let start = tokio::time::Instant::now() + tick / 20 * n as u32;
        let mut pace = tokio::time::interval_at(start, tick);
        let mut answers = futures_util::stream::FuturesUnordered::new();
        while !done.load(Relaxed) {
            tokio::select! {
                _ = pace.tick() => answers.push(say(socket, json!("flood"))),
                Some(ack) = answers.next(), if !answers.is_empty() => {
                    count(ack);
                }
            }
        }
        while let Some(ack) = answers.next().await {
            count(ack);
        }
    });
    let talk = async {
        // Once the room is saturated: the flood is being refused.
        assert!(eventually(|| async { refused.load(Relaxed) > 0 }).await);
        let mut acks = Vec::new();
        let mut pace = tokio::time::interval(every);
        for n in 0..messages {
            pace.tick().await;
            acks.push(say(&person, json!(format!("hello {n}"))).await);
        }
        done.store(true, Relaxed);
        acks
    };
    let (acks, _) = tokio::join!(talk, futures_util::future::join_all(flood));
    (acks, took.load(Relaxed), refused.load(Relaxed))
}

/// Issue 23's case: 20 free accounts, each within its own limit, keep
/// `general` at its 30 messages a second; a person's messages still go in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_s_messages_go_into_a_room_flooded_by_20_accounts() {
    let app = spawn_app().await;
    let every = Duration::from_millis(700);
    let (acks, took, refused) = person_in_a_flood(&app, 20, 6, every).await;
    let refused_to_the_person: Vec<&Value> =
        acks.iter().filter(|ack| ack["ok"] != true).collect();
    assert!(
        refused_to_the_person.is_empty(),
        "{refused_to_the_person:?}"
    );
    assert!(refused > 0 && took > 0, "took {took}, refused {refused}");
}

/// The figure of the chapter "Before it faces the Internet": the share of a
/// person's messages refused in a room flooded by 20 accounts, over 30 s.
/// `cargo test -p step05-chat --test limits -- --ignored --nocapture figure`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a 30-second measurement, for the book"]
async fn figure_a_person_s_share_refused_in_a_flooded_room() {
    let app = spawn_app().await;
    let every = Duration::from_secs(1);
    let (acks, took, refused) = person_in_a_flood(&app, 20, 30, every).await;
    let lost = acks.iter().filter(|ack| ack["ok"] != true).count();
    println!(
        "the person: {lost} of {} refused ({:.0} %); the flood: {took} \
         taken, {refused} refused",
        acks.len(),
        100.0 * lost as f64 / acks.len() as f64
    );
    assert_eq!(acks.len(), 30);
}

/// An account that keeps a room saturated is refused, and each refusal is a
/// strike: it is cut off like any other abuser. The person beside it is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_that_keeps_a_room_saturated_is_disconnected() {
    let app = spawn_app_with(Options {
        limits: Some(ChatLimits {
            room_messages_per_second: 1.0, // 10 messages in 10 s, shared
            refusals_per_10s: 10,
            ..ChatLimits::default()
        }),
        ..Default::default()
    })
    .await;
    let (flooder, _) = app.connected(&app.register("flooder").await).await;
    let (person, _) = app.connected(&app.register("person").await).await;
    assert_eq!(say(&person, json!("hello")).await["ok"], true);
    // Five a second, within its own limit (20 at once, then 5 a second),
    // far past the room's: refused, again and again, until cut off.
    let flood = async {
        let mut pace = tokio::time::interval(Duration::from_secs(1));
        for _ in 0..20 {
            pace.tick().await;
            let burst = (0..5).map(|_| json!(["flood"])).collect();
            flooder.emit_many("chat message", burst).await;
        }
    };
    tokio::select! {
        _ = flooder.next_named("disconnect") => {}
        () = flood => panic!("20 s of refusals, and still connected"),
    }
    assert_eq!(say(&person, json!("still here")).await["ok"], true);
}

/// Refusals that are not rate limits count too: a socket sending event after
/// invalid event is cut off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_events_count_toward_the_disconnect() {
    let app = spawn_app_with(Options {
        limits: Some(ChatLimits {
            refusals_per_10s: 10,
            ..ChatLimits::default()
        }),
        ..Default::default()
    })
    .await;
    let (socket, _) = app.connected(&app.register("mallory").await).await;
    let invalid = [
        ("typing", json!([{ "room": "not-joined" }])),
        ("join", json!(["Not A Room!"])),
        ("chat message", json!([{ "text": "\u{3164}" }])),
        ("chat message", json!([{ "room": "general", "text": 5 }])),
    ];
    for (event, args) in invalid.iter().cycle().take(12) {
        socket.emit(event, args.clone()).await;
    }
    socket.next_named("disconnect").await;
}

/// The figure of the chapter "The chat under load": how many invalid events
/// a socket gets answered, with the default limits, before it is cut off. The
/// issue's probe had 74,000 a second answered for ever.
/// `cargo test -p step05-chat --test limits -- --ignored --nocapture figure`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, for the book"]
async fn figure_invalid_events_answered_before_the_cut() {
    let app = spawn_app().await;
    let (socket, _) = app.connected(&app.register("mallory").await).await;
    let started = Instant::now();
    let mut answered = 0;
    let cut = loop {
        let burst = (0..50).map(|_| json!(["Not A Room!"])).collect();
        let acks = socket.emit_many("join", burst).await;
        answered += acks.iter().filter(|ack| ack["error"].is_string()).count();
        let wait = Duration::from_millis(10);
        if socket.try_next_named("disconnect", wait).await.is_some() {
            break true;
        }
        if started.elapsed() > Duration::from_secs(60) {
            break false;
        }
    };
    println!(
        "invalid joins answered: {answered}; cut off: {cut}, after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(cut, "still connected after 60 s of invalid events");
}

/// The figure of the chapter "The chat under load": what one room costs on
/// disk with the default `ROOM_HISTORY_CAP`, however much is sent. The issue's
/// probe had history growing for ever (1.8 GB a day from one account). Every
/// rate lifted but the cap, so that a day's worth takes a minute.
/// `cargo test -p step05-chat --test limits -- --ignored --nocapture figure`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement of a minute or two, for the book"]
async fn figure_a_room_s_size_on_disk_under_retention() {
    let app = spawn_app_with(Options::every_rate_lifted()).await;
    let cap = ChatLimits::default().room_history_cap;
    let (alice, _) = app.connected(&app.register("alice").await).await;
    let url = support::database_url(&app.database);
    let db = sqlx::SqlitePool::connect(&url).await.expect("the database");
    let kept = || async {
        let sql = "SELECT COUNT(*) FROM messages WHERE room = 'general'";
        let count = sqlx::query_scalar::<_, i64>(sql).fetch_one(&db).await;
        count.unwrap_or(-1)
    };
    // A message of 200 characters, about what a chat line is at most.
    let text = "retention ".repeat(20);
    for round in 1..=3 {
        for _ in 0..15 {
            let burst = (0..1_000)
                .map(|_| json!([{ "room": "general", "text": text }]))
                .collect();
            let acks = alice.emit_many("chat message", burst).await;
            let refused = acks.iter().find(|ack| ack["ok"] != true);
            assert!(refused.is_none(), "{refused:?}");
        }
        let trimmed = eventually_within(Duration::from_secs(120), || async {
            kept().await == cap
        });
        assert!(trimmed.await, "the room is still over its cap");
        let bytes: u64 = std::fs::read_dir(app.database.path())
            .expect("the database's directory")
            .map(|entry| entry.expect("an entry").metadata().map(|m| m.len()))
            .map(|len| len.expect("a size"))
            .sum();
        println!(
            "after {}k messages: {} kept, chat.db and its WAL {:.1} MB",
            round * 15,
            kept().await,
            bytes as f64 / 1e6
        );
    }
}

/// Asks `check` every 100 ms until it says yes, for at most `wait`.
async fn eventually_within<F, Fut>(wait: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + wait;
    while !check().await {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}

/// Retention: a room keeps its newest `ROOM_HISTORY_CAP` messages. What is
/// kept is still served in order; a client whose last seen message was
/// deleted is told `truncated`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_a_room_at_its_cap_and_says_truncated_past_it() {
    let app = spawn_app_with(Options {
        limits: Some(ChatLimits {
            room_history_cap: 5,
            ..ChatLimits::default()
        }),
        ..Default::default()
    })
    .await;
    let (alice, _) = app.connected(&app.register("alice").await).await;
    let join = json!([{ "room": "rust" }]);
    assert_eq!(alice.emit_with_ack("join", join).await["ok"], true);
    let mut ids = Vec::new();
    for n in 0..12 {
        let sent = json!({ "room": "rust", "text": format!("m{n}") });
        ids.push(say(&alice, sent).await["id"].as_i64().expect("an id"));
    }
    let url = support::database_url(&app.database);
    let db = sqlx::SqlitePool::connect(&url).await.expect("the database");
    let kept = || async {
        let sql = "SELECT COUNT(*) FROM messages WHERE room = 'rust'";
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&db)
            .await
            .unwrap_or(-1)
    };
    assert!(eventually(|| async { kept().await == 5 }).await);

    let (bob, _) = app.connected(&app.register("bob").await).await;
    // Back from the first message: gone, and said so; the 5 kept follow.
    let back = json!([{ "room": "rust", "serverOffset": ids[0] }]);
    let reply = bob.emit_with_ack("join", back).await;
    assert_eq!(
        (&reply["truncated"], &reply["history"]),
        (&json!(true), &json!([]))
    );
    for n in 7..12 {
        let message = bob.next_named("chat message").await;
        assert_eq!(message.data()["text"], format!("m{n}"));
    }
    // Back from a kept message: nothing missing.
    let (carol, _) = app.connected(&app.register("carol").await).await;
    let back = json!([{ "room": "rust", "serverOffset": ids[9] }]);
    let reply = carol.emit_with_ack("join", back).await;
    assert_eq!(reply["truncated"], false, "{reply}");
    let texts: Vec<&Value> = reply["history"]
        .as_array()
        .iter()
        .flat_map(|h| *h)
        .map(|m| &m["text"])
        .collect();
    assert_eq!(texts, [&json!("m7"), &json!("m8"), &json!("m9")]);
    assert_eq!(kept().await, 5, "still at its cap");
}
