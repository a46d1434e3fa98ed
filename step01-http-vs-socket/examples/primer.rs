//! The Rust this book uses without teaching it, one small runnable piece per
//! idea, for readers who know Node.js. The chapter "Rust for Node.js
//! developers" shows each piece next to its Node.js line. Run it and compare
//! the output with the chapter:
//!
//! ```console
//! cargo run -p step01-http-vs-socket --example primer
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::{Next, from_fn};
use axum::response::Response;
use axum::routing::get;
use tower::ServiceExt;

#[tokio::main]
async fn main() {
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
    println!("6. a trait, and a function generic over it");
    traits();
    println!("7. an async closure");
    async_closure().await;
    println!("8. layers: the last one added runs first");
    layers().await;
    println!("9. a let chain");
    let_chain();
    println!("10. a future handed over to run later");
    handed_over().await;
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

// ANCHOR: traits
trait UserStore {
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
