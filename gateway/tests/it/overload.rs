//! When the workers cannot keep up: windows are skipped and reported, memory stays flat,
//! and windows without results are re-published once, then reported dropped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{Gateway, Mode, next_json, read_all, s16, send_json, speech, stream_pcm, ws_connect};
use diglett_schemas::{Label, WindowRequest, WindowResult, codec, subjects};
use futures_util::StreamExt;
use serde_json::json;

/// How the fake worker treats windows.
#[derive(Clone, Copy)]
enum Fake {
    /// Answers each window after this delay.
    Slow(Duration),
    /// Ignores the first delivery of each window, answers the second at once.
    SecondTime,
    /// Never answers.
    Silent,
}

/// A stand-in worker in the queue group that answers windows as `fake` says.
async fn fake_worker(url: String, fake: Fake) -> Arc<AtomicU64> {
    let seen = Arc::new(AtomicU64::new(0));
    let client = async_nats::connect(url).await.unwrap();
    let mut sub = client
        .queue_subscribe(subjects::WINDOWS_ALL, subjects::WORKER_QUEUE_GROUP.into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    let count = Arc::clone(&seen);
    tokio::spawn(async move {
        let mut first_time = std::collections::HashSet::new();
        while let Some(msg) = sub.next().await {
            count.fetch_add(1, Ordering::SeqCst);
            let req: WindowRequest = codec::decode(&msg.payload).unwrap();
            let delay = match fake {
                Fake::Silent => continue,
                Fake::SecondTime => {
                    if first_time.insert(req.seq) {
                        continue;
                    }
                    Duration::ZERO
                }
                Fake::Slow(d) => d,
            };
            let client = client.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let result = WindowResult::bare(&req.session, req.seq, req.start, Label::Silence);
                let subject = subjects::results(&req.session).unwrap();
                client
                    .publish(subject, codec::encode(&result).unwrap().into())
                    .await
                    .unwrap();
            });
        }
    });
    seen
}

fn inline_speaker() -> serde_json::Value {
    let e: Vec<f32> = (0..256)
        .map(|i| if i % 2 == 0 { 0.0625 } else { -0.0625 })
        .collect();
    json!([{"name":"x","embedding":e}])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_workers_skip_windows_and_memory_stays_flat() {
    let mut gw = Gateway::start_with(
        Mode::Distributed,
        &[
            ("DIGLETT_SESSION_MAX_IN_FLIGHT", "2"),
            ("DIGLETT_WINDOW_TIMEOUT_MS", "5000"),
        ],
        false,
    )
    .await;
    // Two windows per 1.5 s against two windows per second of audio: a third too slow.
    fake_worker(gw.nats_url(), Fake::Slow(Duration::from_millis(1500))).await;
    let addr = gw.serve().await;
    let mut ws = ws_connect(addr, "/v1/stream").await;
    send_json(&mut ws, json!({"type":"start","audio":{"sample_rate":16000,"encoding":"pcm_s16le"},"speakers":inline_speaker()})).await;
    assert_eq!(next_json(&mut ws).await["type"], "ready");
    let seconds = 14.0;
    let audio = s16(&speech(0, 0, seconds));
    let metrics = Arc::clone(&gw.state.metrics);
    let peak = Arc::new(AtomicU64::new(0));
    let probe = {
        let peak = Arc::clone(&peak);
        tokio::spawn(async move {
            loop {
                let held = metrics.buffered_samples.get().max(0) as u64;
                peak.fetch_max(held, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    // Real time, 100 ms frames; the server reads while we send, so warnings queue up for us.
    let (mut tx, mut rx) = ws.split();
    let reader = tokio::spawn(async move {
        let mut msgs = Vec::new();
        let mut close = None;
        while let Some(Ok(m)) = rx.next().await {
            match m {
                tokio_tungstenite::tungstenite::Message::Text(t) => {
                    msgs.push(serde_json::from_str::<serde_json::Value>(&t).unwrap());
                }
                tokio_tungstenite::tungstenite::Message::Close(f) => {
                    close = f.map(|f| u16::from(f.code));
                    break;
                }
                _ => {}
            }
        }
        (msgs, close)
    });
    {
        use futures_util::SinkExt;
        let start = tokio::time::Instant::now();
        for (i, chunk) in audio.chunks(3200).enumerate() {
            tx.send(tokio_tungstenite::tungstenite::Message::Binary(
                chunk.to_vec().into(),
            ))
            .await
            .unwrap();
            tokio::time::sleep_until(start + Duration::from_millis(100 * (i as u64 + 1))).await;
        }
        tx.send(tokio_tungstenite::tungstenite::Message::Text(
            r#"{"type":"stop"}"#.into(),
        ))
        .await
        .unwrap();
    }
    let (msgs, close) = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .unwrap()
        .unwrap();
    probe.abort();
    assert_eq!(close, Some(1000));
    let windows = ((f64::from(seconds) - 1.6) / 0.5).floor() as u64 + 1;
    let results = msgs.iter().filter(|m| m["type"] == "result").count() as u64;
    let warned: u64 = msgs
        .iter()
        .filter(|m| m["type"] == "warning" && m["code"] == "overloaded")
        .map(|m| m["dropped"].as_u64().unwrap())
        .sum();
    let summary = msgs.iter().find(|m| m["type"] == "summary").unwrap();
    assert!(warned > 0, "skipped windows are reported: {msgs:?}");
    assert_eq!(summary["dropped"].as_u64().unwrap(), warned);
    assert_eq!(
        results + warned,
        windows,
        "every window is either answered or reported"
    );
    // Memory: the session's buffer never held more than the in-flight windows plus a hop
    // (2 windows of 1.6 s overlapping at 0.5 s, plus backlog and a frame) — far from the
    // 14 s of the stream.
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= 16_000 * 4, "buffer peaked at {peak} samples");
    assert_eq!(
        gw.state.metrics.buffered_samples.get(),
        0,
        "released at the end"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_windows_are_republished_once_then_dropped() {
    for (fake, republished_ok) in [(Fake::SecondTime, true), (Fake::Silent, false)] {
        let mut gw = Gateway::start_with(
            Mode::Distributed,
            &[("DIGLETT_WINDOW_TIMEOUT_MS", "300")],
            false,
        )
        .await;
        let seen = fake_worker(gw.nats_url(), fake).await;
        let addr = gw.serve().await;
        let mut ws = ws_connect(addr, "/v1/stream").await;
        send_json(&mut ws, json!({"type":"start","audio":{"sample_rate":16000,"encoding":"pcm_s16le"},"speakers":inline_speaker()})).await;
        assert_eq!(next_json(&mut ws).await["type"], "ready");
        // 3.1 s: 4 windows.
        stream_pcm(&mut ws, &s16(&speech(0, 0, 3.1)), 32_000, 32_000.0, None).await;
        send_json(&mut ws, json!({"type":"stop"})).await;
        let t = read_all(&mut ws, Duration::from_secs(30)).await;
        assert_eq!(t.close.as_ref().map(|c| c.0), Some(1000));
        let summary = t.of_type("summary")[0].clone();
        assert_eq!(
            seen.load(Ordering::SeqCst),
            8,
            "each window published exactly twice"
        );
        assert_eq!(gw.state.metrics.windows_republished.get(), 4);
        if republished_ok {
            assert_eq!(t.of_type("result").len(), 4);
            assert_eq!(summary["dropped"], 0);
        } else {
            assert!(t.of_type("result").is_empty());
            let warned: u64 = t
                .of_type("warning")
                .iter()
                .filter(|w| w["code"] == "timeout")
                .map(|w| w["dropped"].as_u64().unwrap())
                .sum();
            assert_eq!(warned, 4);
            assert_eq!(summary["dropped"], 4);
        }
        gw.stop().await;
    }
}
