//! The `diglett-client` binary against an embedded gateway: enroll, list, stream, errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// The gateway's own test harness (an embedded gateway per test), shared by path rather than
// published from the gateway crate, which would make it part of the server's API.
#[macro_use]
#[path = "../../gateway/tests/it/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Output;

use common::{Gateway, Mode, speech, wav};

/// Runs the client binary with `args` (no `DIGLETT_*` from the test's environment).
async fn client(url: &str, args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_diglett-client"));
    cmd.env_remove("DIGLETT_URL")
        .env_remove("DIGLETT_API_KEY")
        .arg("--url")
        .arg(url)
        .args(args);
    tokio::task::spawn_blocking(move || cmd.output().expect("client runs"))
        .await
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn write_wav(dir: &Path, name: &str, samples: &[f32]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, wav(samples, 16_000, 1)).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_list_and_stream() {
    let mut gw = Gateway::start(Mode::Embedded, &[]).await;
    let addr = gw.serve().await;
    let url = format!("http://{addr}");
    let dir = tempfile::tempdir().unwrap();
    let alice = write_wav(dir.path(), "alice.wav", &speech(0, 0, 5.0));
    let bob = write_wav(dir.path(), "bob.wav", &speech(1, 0, 5.0));
    // Speaker 0 for 8 s, then speaker 1 for 8 s, from held-out utterances.
    let mut conv = speech(0, 6, 8.0);
    conv.extend(speech(1, 6, 8.0));
    let conversation = write_wav(dir.path(), "conversation.wav", &conv);

    let mut ids = Vec::new();
    for (name, file) in [("alice", &alice), ("bob", &bob)] {
        let out = client(&url, &["enroll", "--name", name, file]).await;
        assert!(out.status.success(), "{}", text(&out.stderr));
        let line = text(&out.stdout);
        assert!(line.contains(name) && line.contains("verdict"), "{line}");
        let id = line.split_whitespace().next().unwrap().to_owned();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{line}");
        ids.push(id);
    }

    let out = client(&url, &["speakers"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.starts_with("ID"), "{table}");
    for (id, name) in ids.iter().zip(["alice", "bob"]) {
        assert!(
            table
                .lines()
                .any(|l| l.contains(id.as_str()) && l.contains(name)),
            "{table}"
        );
    }

    // A name and an id, mixed.
    let speakers = format!("alice,{}", ids[1]);
    let out = client(
        &url,
        &[
            "stream",
            &conversation,
            "--speakers",
            &speakers,
            "--fast",
            "--json",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let messages: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON message per line"))
        .collect();
    let of = |t: &'static str| messages.iter().filter(move |m| m["type"] == t);
    assert_eq!(messages[0]["type"], "ready", "{:?}", messages[0]);
    let seqs: Vec<u64> = of("result").map(|r| r["seq"].as_u64().unwrap()).collect();
    // 16 s at hop 0.5 s: windows end at 1.6, 2.1, … ≤ 16 → 29, none skipped.
    assert_eq!(seqs, (0..29).collect::<Vec<u64>>());
    let turns: Vec<_> = of("turn").collect();
    assert!(turns.iter().any(|t| t["speaker"] == "alice"), "{turns:?}");
    assert_eq!(turns.last().unwrap()["speaker"], "bob", "{turns:?}");
    let summary = messages.last().unwrap();
    assert_eq!(summary["type"], "summary", "{summary}");
    // The frame timelines of the results, then the summary's tail, tile the stream from 0 to
    // the last window's end without a gap or an overlap, at 10 ms resolution.
    let runs: Vec<&serde_json::Value> = of("result")
        .chain(std::iter::once(summary))
        .flat_map(|m| m["timeline"].as_array().unwrap())
        .collect();
    let at = |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap();
    assert_eq!(at(runs[0], "start"), 0.0, "{runs:?}");
    for pair in runs.windows(2) {
        assert!(
            (at(pair[1], "start") - at(pair[0], "end")).abs() < 1e-6,
            "{pair:?}"
        );
    }
    for r in &runs {
        let (a, b) = (at(r, "start"), at(r, "end"));
        assert!(
            b > a && ((a * 100.0).round() - a * 100.0).abs() < 1e-6,
            "{r}"
        );
    }
    let last_end = of("result").map(|r| at(r, "end")).fold(0.0, f64::max);
    assert!(
        (at(runs[runs.len() - 1], "end") - last_end).abs() < 1e-6,
        "{runs:?}"
    );
    for name in ["alice", "bob"] {
        assert!(runs.iter().any(|r| r["speaker"] == name), "{runs:?}");
    }
    assert_eq!(summary["windows"], 29);
    assert_eq!(summary["dropped"], 0);
    assert!(
        summary["talk_time"]["alice"].as_f64().unwrap() > 4.0,
        "{summary}"
    );
    assert!(
        summary["talk_time"]["bob"].as_f64().unwrap() > 4.0,
        "{summary}"
    );

    // Plain text output (stdout is a pipe here): a turn line per turn and the summary table.
    let out = client(
        &url,
        &["stream", &conversation, "--speakers", "alice,bob", "--fast"],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plain = text(&out.stdout);
    assert!(
        !plain.contains('\x1b'),
        "no escapes when not a terminal: {plain}"
    );
    assert!(
        plain
            .lines()
            .any(|l| l.starts_with("turn") && l.contains("bob")),
        "{plain}"
    );
    assert!(
        plain.contains("summary: 16.0 s of audio, 29 windows, 0 dropped"),
        "{plain}"
    );
    assert!(
        plain
            .lines()
            .any(|l| l.starts_with("frames") && l.contains("alice")),
        "{plain}"
    );

    // Unknown and ambiguous names fail before streaming, with one clear line.
    let out = client(&url, &["stream", &conversation, "--speakers", "alice,zed"]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("unknown speaker \"zed\"") && err.contains("alice, bob"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let out = client(&url, &["enroll", "--name", "alice", &alice]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = client(&url, &["stream", &conversation, "--speakers", "alice"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("ambiguous speaker \"alice\""),
        "{}",
        text(&out.stderr)
    );

    // A server error is the server's code and message, exit 1.
    let out = client(
        &url,
        &["speakers", "rm", "00000000-0000-4000-8000-000000000000"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("404 not_found"),
        "{}",
        text(&out.stderr)
    );
    let out = client(&url, &["speakers", "rm", &ids[1]]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = client(&url, &["speakers", "--json"]).await;
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["speakers"].as_array().unwrap().len(), 2, "{list}");

    // Not audio: exit 2 before any request.
    let junk = dir.path().join("junk.wav");
    std::fs::write(&junk, b"not audio at all").unwrap();
    let out = client(
        &url,
        &["stream", &junk.display().to_string(), "--speakers", "alice"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_and_usage_errors() {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = client(&url, &["speakers"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("cannot reach"),
        "{}",
        text(&out.stderr)
    );
    let out = client("not a url", &["speakers"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = client(&url, &["enroll", "x.wav"]).await;
    assert_eq!(out.status.code(), Some(2), "--name or --to is required");
}
