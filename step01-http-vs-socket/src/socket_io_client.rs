//! Where the pages get the official Socket.IO client: from its CDN, or from
//! this server.
//!
//! Every page of the book names the pinned client on `cdn.socket.io`, with a
//! Subresource Integrity hash. In a classroom whose network does not reach the
//! Internet, that script never arrives and every page stays blank. So the
//! server hands out the very same file itself, at [`LOCAL_CLIENT_PATH`], and
//! rewrites the pages' `<script src>` to point there, whenever it has the file:
//! the `socket.io-client` npm package (the tests install it in `testkit/js`),
//! never a copy in this repository. Its hash is checked before it is served,
//! and the pages keep their `integrity` attribute, so the browser checks it
//! too. Without the file, the pages load it from the CDN, as they are written.

use std::path::Path;

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha384};

use crate::security_headers::{MAX_PAGE_BYTES, SOCKET_IO_CLIENT_URL, is_html};

/// The Subresource Integrity hash of the pinned client (socket.io-client
/// 4.8.3's `dist/socket.io.min.js`), as the pages' `integrity` attributes carry
/// it.
pub const SOCKET_IO_CLIENT_SRI: &str =
    "sha384-kzavj5fiMwLKzzD1f8S7TeoVIEi7uKHvbTA3ueZkrzYq75pNQUiUi6Dy98Q3fxb0";

/// Where this server hands out the client when it serves it itself. Not under
/// `/socket.io`: the Socket.IO layer answers every path that starts with that.
pub const LOCAL_CLIENT_PATH: &str = "/vendor/socket.io.min.js";

/// The file the server serves when it can (and must, with
/// `SOCKET_IO_CLIENT=local`): the npm package that `npm ci` in `testkit/js`
/// installs (so does `bash scripts/test.sh`), found from this crate's folder.
pub const NPM_CLIENT_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../testkit/js/node_modules/socket.io-client/dist/socket.io.min.js"
);

// ANCHOR: socket_io_client
/// Where the pages load the Socket.IO client from, set by `SOCKET_IO_CLIENT`:
/// unset, from this server when the npm package ([`NPM_CLIENT_FILE`]) is
/// installed and pinned, else from the CDN; `cdn`, always the CDN; `local`,
/// the npm package or an error; or the path of a copy of `socket.io.min.js`
/// 4.8.3.
#[derive(Clone, Debug, Default)]
pub struct SocketIoClient {
    /// The file's bytes when this server serves it; `None` for the CDN.
    local: Option<Bytes>,
}

impl SocketIoClient {
    /// The pinned file on `cdn.socket.io`: the pages as they are written.
    pub fn cdn() -> Self {
        Self::default()
    }

    /// Serves `file`, after checking that it is the pinned version.
    pub fn local(file: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(file).map_err(|error| {
            format!(
                "SOCKET_IO_CLIENT: cannot read {} ({error}); install it with \
                 `npm ci` in testkit/js, or give the path of socket.io.min.js",
                file.display()
            )
        })?;
        let sri = sri_sha384(&bytes);
        if sri != SOCKET_IO_CLIENT_SRI {
            return Err(format!(
                "SOCKET_IO_CLIENT: {} is not socket.io-client 4.8.3 \
                 (its hash is {sri}, the pages pin {SOCKET_IO_CLIENT_SRI})",
                file.display()
            ));
        }
        Ok(Self {
            local: Some(bytes.into()),
        })
    }
    // ANCHOR_END: socket_io_client

    /// The npm package's file when it is there and is the pinned version;
    /// the CDN otherwise (a wrong version is worth a warning: somebody ran
    /// `npm install` instead of `npm ci`).
    pub fn local_if_installed(file: &Path) -> Self {
        if !file.is_file() {
            return Self::cdn();
        }
        Self::local(file).unwrap_or_else(|error| {
            tracing::warn!("{error}: the pages load it from the CDN");
            Self::cdn()
        })
    }

    /// Reads `SOCKET_IO_CLIENT`.
    pub fn from_env() -> Result<Self, String> {
        Self::from_setting(std::env::var("SOCKET_IO_CLIENT").ok().as_deref())
    }

    /// [`SocketIoClient::from_env`] with the setting given, so that it can be
    /// tested.
    pub fn from_setting(setting: Option<&str>) -> Result<Self, String> {
        match setting.map(str::trim) {
            None | Some("") => {
                Ok(Self::local_if_installed(Path::new(NPM_CLIENT_FILE)))
            }
            Some("cdn") => Ok(Self::cdn()),
            Some("local") => Self::local(Path::new(NPM_CLIENT_FILE)),
            Some(path) => Self::local(Path::new(path)),
        }
    }

    /// Whether this server serves the client itself.
    pub fn is_local(&self) -> bool {
        self.local.is_some()
    }

    // ANCHOR: apply
    /// `app`, plus, in local mode, the client at [`LOCAL_CLIENT_PATH`] and
    /// pages that load it from there. In CDN mode, `app` unchanged.
    pub fn apply(self, app: Router) -> Router {
        match self.local {
            None => app,
            Some(file) => app.layer(axum::middleware::from_fn_with_state(
                file,
                serve_local_client,
            )),
        }
    }
    // ANCHOR_END: apply
}

/// The middleware of local mode: answers [`LOCAL_CLIENT_PATH`] with the file,
/// and points every page's `<script src>` at it instead of the CDN.
async fn serve_local_client(
    State(file): State<Bytes>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path() == LOCAL_CLIENT_PATH {
        let headers = [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=3600"),
        ];
        return (headers, file).into_response();
    }
    let response = next.run(request).await;
    if !is_html(&response) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(page) = to_bytes(body, MAX_PAGE_BYTES).await else {
        tracing::error!(
            "a page too large, or failing, to point at the local Socket.IO \
             client"
        );
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let page = String::from_utf8_lossy(&page).replace(
        &format!("src=\"{SOCKET_IO_CLIENT_URL}\""),
        &format!("src=\"{LOCAL_CLIENT_PATH}\""),
    );
    // The page is now shorter than its original length said.
    parts.headers.remove(CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(page))
}

/// The `sha384-…` Subresource Integrity value of `bytes`.
fn sri_sha384(bytes: &[u8]) -> String {
    format!("sha384-{}", BASE64.encode(Sha384::digest(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdn_is_always_the_cdn() {
        for setting in [Some("cdn"), Some(" cdn ")] {
            let client =
                SocketIoClient::from_setting(setting).expect("valid setting");
            assert!(!client.is_local(), "{setting:?}");
        }
    }

    /// What `cargo run` does on a machine where `bash scripts/test.sh` ran:
    /// the page works with no Internet, and nobody had to know the setting.
    #[test]
    fn unset_serves_the_installed_npm_file() {
        assert!(
            Path::new(NPM_CLIENT_FILE).is_file(),
            "run `npm ci` in testkit/js first (bash scripts/test.sh does)"
        );
        for setting in [None, Some(""), Some("  ")] {
            let client =
                SocketIoClient::from_setting(setting).expect("valid setting");
            assert!(client.is_local(), "{setting:?}");
        }
    }

    #[test]
    fn without_the_npm_file_the_pages_use_the_cdn() {
        let missing = Path::new("/nowhere/socket.io.min.js");
        assert!(!SocketIoClient::local_if_installed(missing).is_local());
        let file = std::env::temp_dir()
            .join(format!("another-socket-io-{}.js", std::process::id()));
        std::fs::write(&file, "console.log('another version')")
            .expect("write scratch file");
        let client = SocketIoClient::local_if_installed(&file);
        std::fs::remove_file(&file).ok();
        assert!(!client.is_local(), "a file with another hash is not served");
    }

    #[test]
    fn a_missing_file_is_an_error_that_says_how_to_get_it() {
        let error =
            SocketIoClient::from_setting(Some("/nowhere/socket.io.min.js"))
                .expect_err("no such file");
        assert!(error.contains("npm ci"), "{error}");
    }

    #[test]
    fn a_file_with_another_hash_is_refused() {
        let file = std::env::temp_dir()
            .join(format!("not-socket-io-{}.js", std::process::id()));
        std::fs::write(&file, "console.log('not the client')")
            .expect("write scratch file");
        let error = SocketIoClient::local(&file).expect_err("wrong hash");
        std::fs::remove_file(&file).ok();
        assert!(error.contains("is not socket.io-client 4.8.3"), "{error}");
    }

    /// The pinned `<script>` tag is written out in every page that loads the
    /// client (steps 1, 4 and 5): a page must carry it whole for the browser
    /// to check it. This keeps the copies equal to the one pin served here.
    #[test]
    fn every_page_of_the_project_pins_this_client() {
        let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let workspace = here.parent().expect("the workspace folder");
        let mut pinned = Vec::new();
        for member in std::fs::read_dir(workspace).expect("read workspace") {
            let pages = member.expect("folder entry").path().join("static");
            let Ok(pages) = std::fs::read_dir(pages) else {
                continue;
            };
            for page in pages {
                let path = page.expect("folder entry").path();
                let html = std::fs::read_to_string(&path).unwrap_or_default();
                if !html.contains("socket.io.min.js") {
                    continue;
                }
                let tag = format!(
                    "<script src=\"{SOCKET_IO_CLIENT_URL}\"\n          \
                     integrity=\"{SOCKET_IO_CLIENT_SRI}\"\n          \
                     crossorigin=\"anonymous\"></script>"
                );
                let shown = path.display();
                assert!(html.contains(&tag), "{shown} pins another client");
                pinned.push(path);
            }
        }
        assert!(pinned.len() >= 3, "only {pinned:?} load the client");
    }

    #[test]
    fn the_sri_hash_is_the_one_the_page_pins() {
        let page = include_str!("../static/index.html");
        assert!(page.contains(&format!("src=\"{SOCKET_IO_CLIENT_URL}\"")));
        assert!(page.contains(SOCKET_IO_CLIENT_SRI));
    }
}
