//! The security headers of every response: what `helmet()` adds in Express.
//!
//! They change nothing for a page that behaves; they limit the damage when
//! something does not. The Content-Security-Policy tells the browser which
//! scripts, styles and connections the page may use, so that markup injected
//! into it (a chat message shown with `innerHTML` by mistake, say) cannot run a
//! script or send data elsewhere. The other headers forbid framing the page
//! (clickjacking), guessing a file's type from its content, and leaking the
//! page's address to other sites.

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::header::{
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderName, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};

use crate::socket_io_client::LOCAL_CLIENT_PATH;

/// The pinned Socket.IO client the pages load from its CDN, with Subresource
/// Integrity. The policy allows this one file and no other script from
/// elsewhere.
pub const SOCKET_IO_CLIENT_URL: &str =
    "https://cdn.socket.io/4.8.3/socket.io.min.js";

/// The policy of every response that is not a page: nothing may load, nothing
/// may frame it.
pub const NON_PAGE_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// The largest page whose inline code is hashed. The book's pages are about 30
/// kB.
pub(crate) const MAX_PAGE_BYTES: usize = 1024 * 1024;

// ANCHOR: fixed_headers
/// The headers that are the same on every response.
const FIXED_HEADERS: [(HeaderName, &str); 3] = [
    // Never shown inside a frame of another site (older browsers'
    // `frame-ancestors 'none'`).
    (X_FRAME_OPTIONS, "DENY"),
    // A file is what its Content-Type says, never sniffed into a script.
    (X_CONTENT_TYPE_OPTIONS, "nosniff"),
    // Full address to this site, nothing to others. Not `no-referrer`:
    // with it, the browser sends `Origin: null` on the page's own POSTs,
    // and the Origin check of the login routes could not tell them apart
    // from a sandboxed attacker's.
    (REFERRER_POLICY, "same-origin"),
];
// ANCHOR_END: fixed_headers

/// Middleware that adds the security headers to every response, without
/// replacing one the handler set itself. `serve` applies it; an app served some
/// other way can add it with
/// `router.layer(axum::middleware::from_fn(security_headers))`.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let mut response = if is_html(&response) {
        with_page_policy(response).await
    } else {
        with_policy(response, NON_PAGE_POLICY)
    };
    for (name, value) in FIXED_HEADERS {
        response
            .headers_mut()
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    response
}

pub(crate) fn is_html(response: &Response) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"))
}

/// Reads the page, then sets the policy that allows exactly its inline code.
async fn with_page_policy(response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let Ok(page) = to_bytes(body, MAX_PAGE_BYTES).await else {
        tracing::error!(
            "a page too large, or failing, to hash for its \
             Content-Security-Policy"
        );
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let policy = page_policy(&String::from_utf8_lossy(&page));
    with_policy(Response::from_parts(parts, Body::from(page)), &policy)
}

fn with_policy(mut response: Response, policy: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(policy) {
        response
            .headers_mut()
            .entry(CONTENT_SECURITY_POLICY)
            .or_insert(value);
    }
    response
}

// ANCHOR: page_policy
/// The Content-Security-Policy of `page`: the pinned Socket.IO client (on
/// its CDN, or on this server in local mode) and the page's own inline
/// `<script>`s and `<style>`s, named by their SHA-256 hash; connections
/// to this origin only (WebSockets included).
///
/// Hashing the page as it is served trusts the page: right for pages
/// compiled into the binary, as all of this book's are. A page that
/// mixes in user input needs a template engine's nonces instead: here,
/// an injected inline script would be hashed and allowed with the rest.
pub fn page_policy(page: &str) -> String {
    let scripts = hash_sources(inline_blocks(page, "script"));
    let styles = hash_sources(inline_blocks(page, "style"));
    let local = format!("src=\"{LOCAL_CLIENT_PATH}\"");
    let client = if page.contains(&local) {
        "'self'"
    } else {
        SOCKET_IO_CLIENT_URL
    };
    [
        "default-src 'self'".to_owned(),
        format!("script-src {client}{scripts}"),
        format!("style-src 'self'{styles}"),
        "img-src 'self' data:".to_owned(),
        "connect-src 'self'".to_owned(),
        "object-src 'none'".to_owned(),
        "base-uri 'none'".to_owned(),
        "form-action 'self'".to_owned(),
        "frame-ancestors 'none'".to_owned(),
    ]
    .join("; ")
}
// ANCHOR_END: page_policy

/// ` 'sha256-…'` for each block: the base64 SHA-256 of its exact text, which is
/// what the browser computes before running an inline script or applying an
/// inline style.
fn hash_sources<'a>(blocks: impl Iterator<Item = &'a str>) -> String {
    blocks
        .map(|block| {
            format!(" 'sha256-{}'", BASE64.encode(Sha256::digest(block)))
        })
        .collect()
}

/// The text inside each `<tag ...>...</tag>` of `page` that has no `src`
/// attribute. A simple scan, enough for the pages this crate's authors write;
/// not an HTML parser.
fn inline_blocks<'a>(
    page: &'a str,
    tag: &'a str,
) -> impl Iterator<Item = &'a str> {
    let open = format!("<{tag}");
    let close = format!("</{tag}>");
    let mut rest = page;
    std::iter::from_fn(move || {
        loop {
            let start = rest.find(&open)?;
            let after_name = &rest[start + open.len()..];
            let attributes_end = after_name.find('>')?;
            let attributes = &after_name[..attributes_end];
            let content = &after_name[attributes_end + 1..];
            let content_end = content.find(&close)?;
            rest = &content[content_end + close.len()..];
            // `<scripts>` is not `<script>`; `<script src=...>` has no inline
            // code.
            let is_this_tag = attributes.is_empty()
                || attributes.starts_with(char::is_whitespace);
            if is_this_tag && !attributes.contains("src=") {
                return Some(&content[..content_end]);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256(text: &str) -> String {
        format!("'sha256-{}'", BASE64.encode(Sha256::digest(text)))
    }

    #[test]
    fn inline_scripts_and_styles_are_found_and_external_scripts_skipped() {
        let page = "<style>b{}</style><script src=\"x.js\"></script>\
                    <script>\nlet a = 1;\n</script><script type=\"module\">go()\
                    </script>";
        assert_eq!(
            inline_blocks(page, "script").collect::<Vec<_>>(),
            ["\nlet a = 1;\n", "go()"]
        );
        assert_eq!(inline_blocks(page, "style").collect::<Vec<_>>(), ["b{}"]);
    }

    #[test]
    fn the_policy_names_each_inline_block_by_its_hash() {
        let policy = page_policy("<style>p{}</style><script>go()</script>");
        assert!(
            policy.contains(&format!(
                "script-src {SOCKET_IO_CLIENT_URL} {}",
                sha256("go()")
            )),
            "{policy}"
        );
        assert!(
            policy.contains(&format!("style-src 'self' {}", sha256("p{}"))),
            "{policy}"
        );
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert!(!policy.contains("unsafe-inline"), "{policy}");
    }

    #[test]
    fn an_unterminated_block_allows_nothing() {
        assert_eq!(inline_blocks("<script>go()", "script").count(), 0);
    }
}
