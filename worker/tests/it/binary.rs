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

#[test]
fn unparsable_nats_url_exits_64() {
    for url in ["nats://[bad", "not a url at all"] {
        let out = Command::new(env!("CARGO_BIN_EXE_diglett-worker"))
            .env("DIGLETT_NATS_URL", url)
            .output()
            .expect("run the binary");
        assert_eq!(out.status.code(), Some(64), "{url}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.starts_with("diglett-worker: invalid DIGLETT_NATS_URL=")
                && stderr.lines().count() == 1,
            "{stderr}"
        );
    }
}

/// Starts the binary with `url`, waits for a log line containing `marker`, sends SIGTERM, and
/// returns the exit status (panics if it does not exit in time).
#[cfg(unix)]
fn sigterm_after(url: &str, marker: &'static str) -> std::process::ExitStatus {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::sync::mpsc;
    use std::time::Duration;

    let mut child = Command::new(env!("CARGO_BIN_EXE_diglett-worker"))
        .env("DIGLETT_NATS_URL", url)
        .env("DIGLETT_METRICS_ADDR", "off")
        .env("DIGLETT_EVENTS_STREAM", "false")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run the binary");
    let stdout = child.stdout.take().unwrap();
    let (seen_tx, seen) = mpsc::channel();
    std::thread::spawn(move || {
        let mut seen_tx = Some(seen_tx);
        // Keeps reading so the pipe never fills.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains(marker)
                && let Some(tx) = seen_tx.take()
            {
                let _ = tx.send(());
            }
        }
    });
    seen.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("no {marker:?} in the log"));
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let (done_tx, done) = mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = done_tx.send(child.wait());
    });
    match done.recv_timeout(Duration::from_secs(30)) {
        Ok(status) => status.expect("wait"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("the worker ignored SIGTERM");
        }
    }
}

/// SIGTERM while connecting (no server), and right after connecting (while the models load,
/// before `run` polls its shutdown future): both end the process cleanly.
#[cfg(unix)]
#[test]
fn sigterm_during_startup_is_not_lost() {
    let status = sigterm_after("nats://127.0.0.1:1", "cannot connect to NATS");
    assert_eq!(status.code(), Some(0));
    let server = diglett_testkit::NatsServer::start();
    let status = sigterm_after(&server.url(), "connected to NATS");
    assert_eq!(status.code(), Some(0));
}
