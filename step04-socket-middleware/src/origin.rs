//! Which web pages may open a socket: the `Origin` allow-list.
//!
//! A browser attaches the page's cookies to a WebSocket handshake whichever
//! site the page came from, and the Same-Origin Policy does not stop a page
//! from *opening* a WebSocket to another origin. Without a check, any page a
//! logged-in user visits could open a socket in their name and read their chat:
//! cross-site WebSocket hijacking (CSWSH). CORS does not help, because
//! WebSocket handshakes are not subject to CORS. What the browser does send,
//! and a page cannot forge, is the `Origin` header: so we check it ourselves.

use std::net::SocketAddr;

use axum::extract::{Request, State as HttpState};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::{HOST, ORIGIN};
use http::{HeaderMap, HeaderValue, StatusCode};
use socketioxide::adapter::Adapter;
use socketioxide::extract::{SocketRef, State};
use step03_passport_like_auth::ApiError;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::handshake::is_socket_io;

// ANCHOR: allowed_origins
/// The origins (scheme, host and port, like `http://localhost:3000`) whose
/// pages may connect.
#[derive(Debug, Clone)]
pub struct AllowedOrigins {
    origins: Vec<String>,
    same_host: bool,
}

impl AllowedOrigins {
    /// The server's own origins for `port`, plus a comma-separated extra list,
    /// typically the `ALLOWED_ORIGINS` environment variable. Trailing slashes
    /// are dropped, because an `Origin` header never has one.
    pub fn for_port(port: u16, extra: Option<&str>) -> Self {
        let mut origins = vec![
            format!("http://localhost:{port}"),
            format!("http://127.0.0.1:{port}"),
        ];
        for origin in extra.unwrap_or_default().split(',') {
            let origin = origin.trim().trim_end_matches('/');
            if !origin.is_empty() {
                origins.push(origin.to_owned());
            }
        }
        AllowedOrigins {
            origins,
            same_host: false,
        }
    }

    /// Reads `ALLOWED_ORIGINS` from the environment, on top of the server's own
    /// origins.
    pub fn from_env(port: u16) -> Self {
        Self::for_port(port, std::env::var("ALLOWED_ORIGINS").ok().as_deref())
    }
}
// ANCHOR_END: allowed_origins

// ANCHOR: for_listener
impl AllowedOrigins {
    /// The origins of a server listening on `addr`, plus `extra`: a LAN
    /// address is an origin of its own; with `0.0.0.0` nobody can list the
    /// names students will type, so a page may connect to the host it came
    /// from ([`AllowedOrigins::also_same_host`]).
    pub fn for_listener(addr: SocketAddr, extra: Option<&str>) -> Self {
        let origins = Self::for_port(addr.port(), extra);
        match addr.ip() {
            ip if ip.is_unspecified() => origins.also_same_host(),
            ip if ip.is_loopback() => origins,
            ip => {
                let own =
                    format!("http://{}", SocketAddr::new(ip, addr.port()));
                let extra = [extra.unwrap_or_default(), &own].join(",");
                Self::for_port(addr.port(), Some(&extra))
            }
        }
    }
}
// ANCHOR_END: for_listener

// ANCHOR: allows
impl AllowedOrigins {
    /// Also allows pages served by this very server under whatever name the
    /// browser used to reach it: the `Origin` is `http://` plus the request's
    /// own `Host`. For a server listening on `0.0.0.0` in a classroom, whose
    /// students type an address we cannot know in advance. Safe against
    /// hijacking: a foreign page's `Origin` is its own host, not ours.
    pub fn also_same_host(mut self) -> Self {
        self.same_host = true;
        self
    }

    /// Whether a page from `origin` may connect, on a request that said `Host:
    /// host`. Exact match: `http://localhost:3000` does not allow
    /// `http://localhost:3000.evil.example`.
    pub fn allows(&self, origin: &str, host: Option<&str>) -> bool {
        self.origins.iter().any(|allowed| allowed == origin)
            || (self.same_host
                && host.is_some_and(|host| {
                    origin.strip_prefix("http://") == Some(host)
                }))
    }

    /// The listed origins, for logs and for the CORS layer.
    pub fn as_slice(&self) -> &[String] {
        &self.origins
    }
}
// ANCHOR_END: allows

// ANCHOR: check_origin
/// Why a handshake was refused by [`check_origin`]. The text is what the
/// client's `connect_error` handler receives as `err.message`.
#[derive(Debug, thiserror::Error)]
#[error("Forbidden origin")]
pub struct ForbiddenOrigin;

/// Connect middleware: refuses a handshake whose `Origin` is not on the
/// allow-list.
///
/// No `Origin` header at all passes: browsers always send one on a WebSocket
/// handshake and on cross-origin requests, so a missing header means a
/// non-browser client (the Node.js client, a CLI, a test) or a same-origin
/// request. Those still need a valid session: this check only decides *which
/// pages* may use the user's cookie, not *who* the user is.
pub async fn check_origin<A: Adapter>(
    socket: SocketRef<A>,
    State(allowed): State<AllowedOrigins>,
) -> Result<(), ForbiddenOrigin> {
    let headers = &socket.req_parts().headers;
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(());
    };
    let host = headers.get(HOST).and_then(|host| host.to_str().ok());
    match origin.to_str() {
        Ok(origin) if allowed.allows(origin, host) => Ok(()),
        _ => {
            tracing::warn!(
                ?origin,
                sid = %socket.id,
                "refused a socket from a foreign origin"
            );
            Err(ForbiddenOrigin)
        }
    }
}
// ANCHOR_END: check_origin

/// Over HTTP, the same refusal is `403 {"error":"Forbidden origin"}`.
impl IntoResponse for ForbiddenOrigin {
    fn into_response(self) -> Response {
        ApiError::new(StatusCode::FORBIDDEN, self.to_string()).into_response()
    }
}

// ANCHOR: check_request_origin
/// HTTP middleware: refuses, with `403 {"error":"Forbidden origin"}`, a request
/// from a page that is not on the allow-list, if it could change something
/// (any method but `GET`, `HEAD`, `OPTIONS`) or open a socket. This is what
/// stops *login CSRF*: another site posting a form to `/login`.
pub async fn check_request_origin(
    HttpState(allowed): HttpState<AllowedOrigins>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method();
    let reads_only = method == http::Method::GET
        || method == http::Method::HEAD
        || method == http::Method::OPTIONS;
    if reads_only && !is_socket_io(request.uri().path()) {
        return next.run(request).await;
    }
    if !sent_by_allowed_page(&allowed, request.headers()) {
        let origin = request.headers().get(ORIGIN);
        let path = request.uri().path();
        tracing::warn!(?origin, %path, "refused a foreign origin");
        return ForbiddenOrigin.into_response(); // 403
    }
    next.run(request).await
}

/// Whether the request comes from one of our pages, or from no page at all:
/// browsers send `Origin` on every `POST` and WebSocket handshake, so without
/// one it is curl or a script, with no victim's cookie. `Sec-Fetch-Site`
/// covers an old browser that omits `Origin`.
fn sent_by_allowed_page(allowed: &AllowedOrigins, headers: &HeaderMap) -> bool {
    let host = headers.get(HOST).and_then(|host| host.to_str().ok());
    match headers.get(ORIGIN) {
        Some(origin) => origin
            .to_str()
            .is_ok_and(|origin| allowed.allows(origin, host)),
        None => headers
            .get("sec-fetch-site")
            .is_none_or(|site| site == "same-origin" || site == "none"),
    }
}
// ANCHOR_END: check_request_origin

// ANCHOR: cors
/// CORS for a front end served from another origin (say a dev server on port
/// 5173): name the origins exactly and allow credentials, so the browser sends
/// the session cookie on the long-polling requests and lets the page read the
/// answers. `Access-Control-Allow-Origin: *` is not allowed together with
/// credentials, and would be wrong here anyway.
pub fn cors_layer(allowed: &AllowedOrigins) -> CorsLayer {
    let origins: Vec<HeaderValue> = allowed
        .as_slice()
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_credentials(true)
        .allow_methods([http::Method::GET, http::Method::POST])
        .allow_headers([http::header::CONTENT_TYPE])
}
// ANCHOR_END: cors

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_origins_and_extra_ones_are_allowed_exactly() {
        let allowed =
            AllowedOrigins::for_port(3000, Some(" https://chat.example/ ,,"));
        assert!(allowed.allows("http://localhost:3000", None));
        assert!(allowed.allows("http://127.0.0.1:3000", None));
        assert!(allowed.allows("https://chat.example", None));
        assert!(!allowed.allows("http://localhost:3001", None));
        assert!(!allowed.allows("http://localhost:3000.evil.example", None));
        assert!(!allowed.allows("null", None));
        assert_eq!(allowed.as_slice().len(), 3);
    }

    #[test]
    fn same_host_allows_the_name_the_browser_used_for_us_and_nothing_else() {
        let classroom = AllowedOrigins::for_port(3000, None).also_same_host();
        let host = Some("192.168.1.20:3000");
        assert!(classroom.allows("http://192.168.1.20:3000", host));
        assert!(!classroom.allows("http://evil.example", host));
        assert!(
            !classroom.allows("http://192.168.1.20:3000", Some("other:3000"))
        );
        // Off unless asked for.
        let local = AllowedOrigins::for_port(3000, None);
        assert!(!local.allows("http://192.168.1.20:3000", host));
    }

    #[test]
    fn a_lan_address_is_an_allowed_origin_of_its_own() {
        let addr = "192.168.1.20:3000".parse().expect("addr");
        let origins = AllowedOrigins::for_listener(addr, None);
        assert!(origins.allows("http://192.168.1.20:3000", None));
        assert!(origins.allows("http://localhost:3000", None));
        assert!(!origins.allows("http://192.168.1.21:3000", None));
    }

    #[test]
    fn every_address_allows_the_host_the_browser_asked_for() {
        let addr = "0.0.0.0:3000".parse().expect("addr");
        let origins = AllowedOrigins::for_listener(addr, None);
        let host = Some("10.0.0.5:3000");
        assert!(origins.allows("http://10.0.0.5:3000", host));
        assert!(!origins.allows("http://evil.example", host));
    }

    #[test]
    fn loopback_allows_only_its_own_origins_and_the_extra_ones() {
        let addr = "127.0.0.1:3000".parse().expect("addr");
        let extra = Some("http://localhost:5173");
        let origins = AllowedOrigins::for_listener(addr, extra);
        assert!(origins.allows("http://localhost:5173", None));
        assert!(!origins.allows("http://10.0.0.5:3000", Some("10.0.0.5:3000")));
    }
}
