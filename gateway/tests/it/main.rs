//! The integration tests of `gateway`, one binary (one link) for all of them: each module
//! was a test file of its own.

#[macro_use]
mod common;

mod overload;
mod redis_outage;
mod rest;
mod stream;
mod tenants;
mod web;
