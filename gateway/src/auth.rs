//! Optional API keys, each mapped to a tenant.
//!
//! With `DIGLETT_API_KEYS` set, every `/v1/*` and `/embed` request needs
//! `Authorization: Bearer <key>`; the WebSocket also accepts `?token=<key>` because browsers
//! cannot set headers on a WebSocket. Keys are compared in constant time. Without keys, every
//! caller is the tenant `default`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::DEFAULT_TENANT;
use crate::error::ApiError;

/// The tenant a request acts for (a request extension set by [`require_key`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant(pub String);

/// Whether `t` is a valid tenant name: 1–64 of `A-Z a-z 0-9 _ -`.
pub fn valid_tenant(t: &str) -> bool {
    (1..=64).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Key → tenant; empty means authentication is off.
#[derive(Debug, Clone, Default)]
pub struct Keys(Arc<HashMap<String, String>>);

impl Keys {
    /// The configured keys.
    pub fn new(keys: HashMap<String, String>) -> Self {
        Self(Arc::new(keys))
    }

    /// The tenant of `key`, comparing against every key in constant time per key.
    fn tenant_of(&self, key: &str) -> Option<String> {
        let mut found = None;
        for (k, tenant) in self.0.iter() {
            if constant_time_eq(k.as_bytes(), key.as_bytes()) {
                found = Some(tenant.clone());
            }
        }
        found
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `token` query parameter, if any.
fn query_token(query: Option<&str>) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "token").then(|| percent_decode(v))
    })
}

/// Minimal `%XX` / `+` decoding for a query value (a malformed escape stays as it is).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], escaped) {
            (_, Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Middleware: resolves the caller's [`Tenant`] or answers 401.
pub async fn require_key(State(keys): State<Keys>, mut req: Request, next: Next) -> Response {
    let tenant = if keys.0.is_empty() {
        Some(DEFAULT_TENANT.to_owned())
    } else {
        let header = req
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(|k| k.trim().to_owned());
        let is_ws = req.uri().path().ends_with("/stream");
        let key = header.or_else(|| is_ws.then(|| query_token(req.uri().query())).flatten());
        key.and_then(|k| keys.tenant_of(&k))
    };
    match tenant {
        Some(t) => {
            req.extensions_mut().insert(Tenant(t));
            next.run(req).await
        }
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid API key is required: Authorization: Bearer <key> (or ?token=<key> on the WebSocket)",
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants() {
        assert!(valid_tenant("acme-01_x"));
        assert!(!valid_tenant(""));
        assert!(!valid_tenant("a:b"));
        assert!(!valid_tenant(&"a".repeat(65)));
    }

    #[test]
    fn query_tokens() {
        assert_eq!(
            query_token(Some("a=1&token=abc%2Bd")).as_deref(),
            Some("abc+d")
        );
        assert_eq!(query_token(Some("token=x%2")).as_deref(), Some("x%2"));
        assert_eq!(query_token(Some("tok=1")), None);
        assert_eq!(query_token(None), None);
    }

    #[test]
    fn keys_resolve() {
        let keys = Keys::new(HashMap::from([("0123456789abcdef".into(), "acme".into())]));
        assert_eq!(keys.tenant_of("0123456789abcdef").as_deref(), Some("acme"));
        assert_eq!(keys.tenant_of("0123456789abcdeX"), None);
        assert_eq!(keys.tenant_of(""), None);
    }
}
