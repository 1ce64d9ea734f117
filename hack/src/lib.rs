//! Nothing to call: this crate exists for its `Cargo.toml`.
//!
//! Cargo resolves features per build: `cargo run --release -p diglett-gateway` sees only the
//! gateway's dependencies, `cargo test --workspace` also every dev-dependency, so the two
//! enabled different features of a few shared crates (hyper's client, rustls' tls12, either's
//! std, …) and each rebuilt everything above them — the README's two commands compiled the
//! dependency tree twice. The gateway and the worker depend on this crate, which asks for the
//! workspace's feature set of exactly those crates, so both commands build the same units
//! (the "workspace-hack" pattern of cargo-hakari, written by hand).
