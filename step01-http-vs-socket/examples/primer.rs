//! The Rust this book uses without teaching it, one small runnable piece per
//! idea, for readers who know Node.js. The chapter "Rust for Node.js
//! developers" shows each piece next to its Node.js line. Run it and compare
//! the output with the chapter:
//!
//! ```console
//! cargo run -p step01-http-vs-socket --example primer
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::{Next, from_fn};
use axum::response::Response;
use axum::routing::get;
use serde::{Deserialize, Deserializer};
use tower::ServiceExt;

#[tokio::main]
async fn main() {
    // In the order the chapter reads them: its test compares each section's
    // lines with the output the chapter shows.
    println!("1. a future is lazy");
    lazy_future().await;
    println!("2. tasks on several threads share through Arc<Mutex<..>>");
    shared_counter().await;
    println!("3. a guard lives until its block ends; `_` drops it at once");
    guard_names().await;
    println!("4. an extractor");
    extractor().await;
    println!("5. Result and ?");
    results();
    println!("6. Infallible: an error that cannot happen");
    infallible();
    println!("7. a trait, and a function generic over it");
    traits();
    println!("8. trait objects: dyn Trait behind a pointer");
    trait_objects();
    println!("9. a future handed over to run later");
    handed_over().await;
    println!("10. lifetimes: 'static, '_ and 'de");
    lifetimes();
    println!("11. an async closure");
    async_closure().await;
    println!("12. layers: the last one added runs first");
    layers().await;
    println!("13. a let chain");
    let_chain();
    println!("14. a generic handler, and the question it must answer");
    handler_bound().await;
}

async fn lazy_future() {
    // ANCHOR: lazy
    let greeting = async {
        println!("   the future runs");
        "hello"
    };
    println!("   the future is created");
    let text = greeting.await; // only now does it run
    println!("   it gave {text:?}");
    // ANCHOR_END: lazy
}

async fn shared_counter() {
    // ANCHOR: shared_counter
    let visits = Arc::new(Mutex::new(0_u64));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let visits = Arc::clone(&visits); // one more owner
        tasks.push(tokio::spawn(async move {
            // A poisoned lock (a task panicked holding it) still holds a
            // number.
            *visits.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        }));
    }
    for task in tasks {
        task.await.ok();
    }
    let total = *visits.lock().unwrap_or_else(PoisonError::into_inner);
    println!("   4 tasks counted {total}");
    // ANCHOR_END: shared_counter
}

async fn guard_names() {
    // ANCHOR: guard_names
    let room = tokio::sync::Mutex::new(Vec::<String>::new());
    {
        let _held = room.lock().await; // a named guard: locked until `}`
        println!("   with `_held`: locked? {}", room.try_lock().is_err());
    }
    let _ = room.lock().await; // `_` is not a name: dropped at once
    println!("   with `_`: locked? {}", room.try_lock().is_err());
    // ANCHOR_END: guard_names
}

// ANCHOR: extractor
/// Who is calling, from the `x-client-name` header; a handler that asks for
/// it never runs for a request without one.
struct ClientName(String);

impl<S: Send + Sync> FromRequestParts<S> for ClientName {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(
        parts: &mut Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let name = parts.headers.get("x-client-name");
        match name.and_then(|value| value.to_str().ok()) {
            Some(name) => Ok(ClientName(name.to_owned())),
            None => Err((StatusCode::BAD_REQUEST, "who are you?")),
        }
    }
}

async fn hello(ClientName(name): ClientName) -> String {
    format!("hello {name}")
}
// ANCHOR_END: extractor

async fn extractor() {
    let app = Router::new().route("/", get(hello));
    for name in [Some("ada"), None] {
        let mut request = Request::get("/");
        if let Some(name) = name {
            request = request.header("x-client-name", name);
        }
        let request = request.body(Body::empty()).unwrap_or_default();
        let response = app.clone().oneshot(request).await;
        let Ok(response) = response;
        println!("   {} {}", response.status(), body_text(response).await);
    }
}

// ANCHOR: result
#[derive(Debug, thiserror::Error)]
enum ConfigError {
    #[error("PORT must be a number from 0 to 65535, got {0:?}")]
    BadPort(String),
}

fn parse_port(text: &str) -> Result<u16, ConfigError> {
    let port = text
        .parse::<u16>()
        // `?`: return the Err
        .map_err(|_| ConfigError::BadPort(text.to_owned()))?;
    Ok(port)
}
// ANCHOR_END: result

fn results() {
    for text in ["3000", "three thousand"] {
        match parse_port(text) {
            Ok(port) => println!("   port {port}"),
            Err(error) => println!("   error: {error}"),
        }
    }
}

// ANCHOR: infallible
/// Admits every visitor: it cannot fail, and says so with an error type that
/// has no values at all. The `Result` is there because the caller's
/// signature wants one (a socketioxide connect middleware, say).
fn admit(visitors: &mut Vec<String>, name: &str) -> Result<(), Infallible> {
    visitors.push(name.to_owned());
    Ok(())
}

fn infallible() {
    let mut visitors = Vec::new();
    // No `else`, no `Err` arm: the compiler knows there is no `Err` to match.
    let Ok(()) = admit(&mut visitors, "ada");
    println!("   admitted {visitors:?}");
}
// ANCHOR_END: infallible

// ANCHOR: traits
trait UserStore: Send + Sync + 'static {
    fn name_of(&self, id: u64) -> Option<String>;
}

struct InMemory(HashMap<u64, String>);

impl UserStore for InMemory {
    fn name_of(&self, id: u64) -> Option<String> {
        self.0.get(&id).cloned()
    }
}

/// Works with any store: the compiler writes one copy per store type.
fn greet<U: UserStore>(users: &U, id: u64) -> String {
    match users.name_of(id) {
        Some(name) => format!("hello {name}"),
        None => "hello stranger".to_owned(),
    }
}
// ANCHOR_END: traits

fn traits() {
    let users = InMemory(HashMap::from([(1, "ada".to_owned())]));
    println!("   {} / {}", greet(&users, 1), greet(&users, 2));
}

// ANCHOR: trait_objects
/// Code to run at logout. Each closure has a type of its own, so a list of
/// different closures holds each one behind a pointer, as a `dyn Fn`.
type LogoutHook = Box<dyn Fn(&str) + Send + Sync>;

fn trait_objects() {
    let farewell = String::from("bye");
    let hooks: Vec<LogoutHook> = vec![
        Box::new(|user| println!("   close the sockets of {user}")),
        Box::new(move |user| println!("   {farewell}, {user}")),
    ];
    for hook in &hooks {
        hook("ada"); // which closure runs is looked up at run time
    }
    // One store, shared by every clone of the app, whatever its type.
    let users: Arc<dyn UserStore> =
        Arc::new(InMemory(HashMap::from([(1, "ada".to_owned())])));
    println!("   {:?}", users.name_of(1));
}
// ANCHOR_END: trait_objects

// ANCHOR: lifetimes
/// `'static`: borrowed from something that lives as long as the program (a
/// literal), or owned. A `Cow` is either, so only a built text allocates.
fn refusal(failures: u32) -> Cow<'static, str> {
    match failures {
        0 => Cow::Borrowed("Unauthorized"),
        n => Cow::Owned(format!("{n} failed logins: wait a minute")),
    }
}

/// `'_`: the guard borrows the mutex, so it cannot outlive it. Which borrow
/// it is the compiler can tell from the arguments; `'_` says "that one".
fn lock(visitors: &Mutex<Vec<String>>) -> MutexGuard<'_, Vec<String>> {
    visitors.lock().unwrap_or_else(PoisonError::into_inner)
}
// ANCHOR_END: lifetimes

// ANCHOR: lifetime_de
#[derive(Deserialize)]
struct LoginForm {
    username: String,
    #[serde(default, deserialize_with = "checkbox")]
    remember: bool,
}

/// An HTML checkbox sends `"on"` when ticked and nothing when not. `'de` is
/// the life of the input serde reads from: this function copies what it
/// needs, so any `'de` will do, and it only has to name it.
fn checkbox<'de, D: Deserializer<'de>>(input: D) -> Result<bool, D::Error> {
    Ok(String::deserialize(input)? == "on")
}
// ANCHOR_END: lifetime_de

fn lifetimes() {
    println!("   {} / {}", refusal(0), refusal(3));
    let visitors = Mutex::new(vec!["ada".to_owned()]);
    println!("   first visitor: {:?}", lock(&visitors).first());
    let body = String::from(r#"{"username":"ada","remember":"on"}"#);
    match serde_json::from_str::<LoginForm>(&body) {
        Ok(form) => {
            println!("   {}, remember: {}", form.username, form.remember)
        }
        Err(error) => println!("   {error}"),
    }
}

async fn async_closure() {
    // ANCHOR: async_closure
    let name = String::from("ada");
    let greet = async move |greeting: &str| format!("{greeting}, {name}");
    println!("   {}", greet("hello").await);
    // ANCHOR_END: async_closure
}

// ANCHOR: layers
async fn say(label: &'static str, request: Request, next: Next) -> Response {
    println!("   {label}: before");
    let response = next.run(request).await;
    println!("   {label}: after");
    response
}

fn layered_app() -> Router {
    Router::new()
        .route("/", get(|| async { "the handler" }))
        .layer(from_fn(|req: Request, next: Next| {
            say("added first", req, next)
        }))
        .layer(from_fn(|req: Request, next: Next| {
            say("added last", req, next)
        }))
}
// ANCHOR_END: layers

async fn layers() {
    let request = Request::get("/").body(Body::empty()).unwrap_or_default();
    let Ok(response) = layered_app().oneshot(request).await;
    println!("   answer: {}", body_text(response).await);
}

fn let_chain() {
    let query = HashMap::from([("room", "rust")]);
    // ANCHOR: let_chain
    if let Some(room) = query.get("room")
        && !room.is_empty()
    {
        println!("   join {room}");
    }
    // ANCHOR_END: let_chain
}

// ANCHOR: generic_handler
/// The app's state, generic over its store as step 3's `Passport<U>` is.
struct App<U> {
    users: U,
    visits: Mutex<u64>,
}

/// Counts a visit under a `std::sync::Mutex`, then awaits: the guard must be
/// gone by then, or the future is not `Send` and `visit` is no `Handler`.
async fn visit<U: UserStore>(State(app): State<Arc<App<U>>>) -> String {
    let count = {
        let mut visits =
            app.visits.lock().unwrap_or_else(PoisonError::into_inner);
        *visits += 1;
        *visits
    }; // the guard is dropped here, before the await
    tokio::task::yield_now().await; // stands for a database call
    let name = app.users.name_of(1).unwrap_or_default();
    format!("visit {count} by {name}")
}

fn visit_router<U: UserStore>(app: Arc<App<U>>) -> Router {
    Router::new().route("/", get(visit::<U>)).with_state(app)
}
// ANCHOR_END: generic_handler

// ANCHOR: is_send
/// Compiles only if `visit`'s future may move between threads. When it may
/// not, the error names the value that cannot, and the `.await` it is held
/// across.
fn visit_is_send<U: UserStore>(app: Arc<App<U>>) {
    fn is_send<T: Send>(_: &T) {}
    is_send(&visit(State(app)));
}
// ANCHOR_END: is_send

async fn handler_bound() {
    let users = InMemory(HashMap::from([(1, "ada".to_owned())]));
    let app = Arc::new(App {
        users,
        visits: Mutex::new(0),
    });
    visit_is_send(Arc::clone(&app)); // its work was done by the compiler
    let request = Request::get("/").body(Body::empty()).unwrap_or_default();
    let Ok(response) = visit_router(app).oneshot(request).await;
    println!("   {}", body_text(response).await);
}

// ANCHOR: handed_over
/// Takes a future to run later, on another thread: `Send` (it may move
/// between threads) and `'static` (it borrows nothing that could die first).
fn run_later(
    job: impl Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        job.await;
    })
}
// ANCHOR_END: handed_over

async fn handed_over() {
    let name = String::from("ada"); // owned, and moved into the future: 'static
    run_later(async move { println!("   later, {name}") })
        .await
        .ok();
}

async fn body_text(response: Response) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1024).await;
    String::from_utf8_lossy(&bytes.unwrap_or_default()).into_owned()
}
