//! Diglett's HTTP and WebSocket contract, shared by the gateway that serves it and every Rust
//! client (`diglett-client`, the tools, the tests): nothing here links the server.
//!
//! - [`protocol`]: the WebSocket streaming protocol v1 (messages, limits, close codes).
//! - [`rest`]: the REST bodies and the multipart forms as the OpenAPI document shows them.
//! - [`error`]: the JSON error body.

pub mod error;
pub mod protocol;
pub mod rest;

pub use error::{ErrorBody, ErrorDetail};
