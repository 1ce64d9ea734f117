//! The binary's configuration contract: a bad value exits with code 64 and one line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn bad_config_exits_64_with_one_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_diglett-worker"))
        .env("DIGLETT_BATCH_SIZE", "abc")
        .output()
        .expect("run the binary");
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr,
        "diglett-worker: invalid DIGLETT_BATCH_SIZE=\"abc\": expected an integer from 1 to 256\n"
    );
    assert!(out.stdout.is_empty());
}
