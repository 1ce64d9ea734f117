//! The web page: enroll voices and watch a live conversation (`gateway/web/`).
//!
//! Plain ES modules and CSS, compiled into the binary with `include_str!` so the page needs no
//! build step and no files beside the executable. `/` is the page and `/web/<file>` its assets;
//! both are public (the page asks for an API key and sends it itself: the REST calls as
//! `Authorization: Bearer`, the WebSocket as `?token=`).

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::ApiError;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

/// One embedded file of `gateway/web/`.
macro_rules! asset {
    ($name:literal, $content_type:literal) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_str!(concat!("../web/", $name)),
        }
    };
}

/// Every file of `gateway/web/` the page uses.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("api.js", "text/javascript; charset=utf-8"),
    asset!("mic.js", "text/javascript; charset=utf-8"),
    asset!("capture-worklet.js", "text/javascript; charset=utf-8"),
];

/// The page may load its own scripts and styles and talk to this origin (HTTP and WebSocket);
/// nothing else. `ws:`/`wss:` are listed because `'self'` does not cover WebSocket schemes in
/// every browser.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self' ws: wss:; media-src 'self' blob:; object-src 'none'; \
                   base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

fn serve(name: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such file").into_response();
    };
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    // Small files, embedded in the binary: revalidate on each load so a new gateway version is
    // picked up at once.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn index() -> Response {
    serve("index.html")
}

async fn asset(Path(name): Path<String>) -> Response {
    serve(&name)
}

/// `/` and `/web/{file}`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/web/{file}", get(asset))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_imports_is_served() {
        // A file referenced from the page or a module but missing from ASSETS would be a 404
        // at run time; catch it here.
        for a in ASSETS {
            for (i, _) in a.body.match_indices("./") {
                let rest = &a.body[i + 2..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
                    .unwrap_or(rest.len());
                let file = &rest[..end];
                if file.ends_with(".js") || file.ends_with(".css") {
                    assert!(
                        ASSETS.iter().any(|b| b.name == file),
                        "{} refers to ./{file}, which is not embedded",
                        a.name
                    );
                }
            }
        }
        let html = ASSETS[0].body;
        assert!(html.contains("/web/app.js") && html.contains("/web/style.css"));
    }
}
