//! The WebSocket protocol, in embedded mode and against nats-server + a worker + Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use std::time::Duration;

use common::{
    Gateway, Mode, Transcript, Ws, next_json, read_all, s16, send_json, speech, stream_pcm,
    ws_connect,
};
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// Speaker 0 for 8 s, then speaker 1 for 8 s (held-out utterances), at 16 kHz.
fn two_voices() -> Vec<f32> {
    let mut x = speech(0, 6, 8.0);
    x.extend(speech(1, 6, 8.0));
    x
}

/// Checks the session's messages: in-order results covering the stream, the right speaker
/// for most windows of each half, turns to both speakers, a summary; closed with 1000.
fn check_two_voices(t: &Transcript, a: &str, b: &str, total_seconds: f64) {
    assert_eq!(t.close.as_ref().map(|c| c.0), Some(1000), "{:?}", t.close);
    let results = t.of_type("result");
    let seqs: Vec<u64> = results.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "results in order: {seqs:?}"
    );
    // 16 s at hop 0.5 s: windows end at 1.6, 2.1, … ≤ 16 → 29 windows.
    let expected = ((total_seconds - 1.6) / 0.5).floor() as usize + 1;
    assert_eq!(results.len(), expected, "one result per window");
    for r in &results {
        let (s, e) = (r["start"].as_f64().unwrap(), r["end"].as_f64().unwrap());
        assert!((e - s - 1.6).abs() < 1e-6);
        assert!((s - 0.5 * r["seq"].as_f64().unwrap()).abs() < 1e-6);
        assert!(r["latency_ms"].as_f64().unwrap() >= 0.0);
        assert_eq!(r["scores"].as_object().unwrap().len(), 2);
        assert!(r["speech"].as_f64().unwrap() <= 1.0);
        assert!(r["volume"].is_number() && r["lufs"].is_number());
    }
    let right = |who: &str, from: f64, to: f64| {
        let inside: Vec<_> = results
            .iter()
            .filter(|r| r["start"].as_f64().unwrap() >= from && r["end"].as_f64().unwrap() <= to)
            .collect();
        let ok = inside.iter().filter(|r| r["speaker"] == who).count();
        (ok, inside.len())
    };
    let (ok_a, n_a) = right(a, 0.0, 8.0);
    let (ok_b, n_b) = right(b, 8.0, 16.0);
    assert!(ok_a * 10 >= n_a * 7, "{a}: {ok_a}/{n_a}");
    assert!(ok_b * 10 >= n_b * 7, "{b}: {ok_b}/{n_b}");
    // The frame timeline: mostly `a` in the first half's speech, `b` in the second's.
    let frames = frame_labels(t, [a, b]);
    let share = |who: &str, from: f64, to: f64| {
        let speech: Vec<&String> = frames[(from * 100.0) as usize..(to * 100.0) as usize]
            .iter()
            .filter(|l| *l != "silence")
            .collect();
        let ok = speech.iter().filter(|l| **l == who).count();
        (ok, speech.len())
    };
    for (who, from, to) in [(a, 0.5, 7.5), (b, 8.5, 15.5)] {
        let (ok, n) = share(who, from, to);
        assert!(n >= 300 && ok * 10 >= n * 7, "{who}: {ok}/{n} frames");
    }
    let turns = t.of_type("turn");
    assert!(
        turns.iter().any(|x| x["speaker"] == a),
        "a turn to {a}: {turns:?}"
    );
    // The change of voice is the last turn (two voices this close may disagree in the
    // first windows, before the smoother has evidence).
    let to_b = turns.last().unwrap();
    assert_eq!(to_b["speaker"], b, "{turns:?}");
    let start_b = to_b["start"].as_f64().unwrap();
    assert!((6.5..10.5).contains(&start_b), "turn to {b} at {start_b}");
    let summary = t.of_type("summary");
    assert_eq!(summary.len(), 1);
    let s = summary[0];
    assert!(
        (s["duration"].as_f64().unwrap() - total_seconds).abs() < 0.05,
        "{s}"
    );
    assert_eq!(s["windows"].as_u64().unwrap() as usize, expected);
    assert_eq!(s["dropped"], 0);
    let talk_a = s["talk_time"][a].as_f64().unwrap();
    let talk_b = s["talk_time"][b].as_f64().unwrap();
    assert!(talk_a > 4.0 && talk_b > 4.0, "{s}");
    assert_eq!(
        t.messages.last().unwrap()["type"],
        "summary",
        "summary comes last"
    );
}

/// The session's frame timeline (every result's, then the summary's tail) as one label per
/// 10 ms frame: `silence`, `unknown`, `overlap` or the speaker's name. Checks on the way that
/// the runs tile the stream from 0 to the last window's end at 10 ms resolution.
fn frame_labels(t: &Transcript, names: [&str; 2]) -> Vec<String> {
    let mut labels = Vec::new();
    let runs = t
        .of_type("result")
        .into_iter()
        .chain(t.of_type("summary"))
        .flat_map(|m| m["timeline"].as_array().unwrap().clone());
    for r in runs {
        let start = (r["start"].as_f64().unwrap() * 100.0).round();
        let end = (r["end"].as_f64().unwrap() * 100.0).round();
        assert_eq!(start as usize, labels.len(), "a gap or an overlap at {r}");
        assert!(end > start, "{r}");
        let label = match r["label"].as_str().unwrap() {
            "speaker" => r["speaker"].as_str().unwrap().to_owned(),
            l => l.to_owned(),
        };
        assert!(
            ["silence", "unknown", "overlap"].contains(&label.as_str())
                || names.contains(&label.as_str()),
            "{r}"
        );
        labels.extend(std::iter::repeat_n(label, (end - start) as usize));
    }
    let last_end = t
        .of_type("result")
        .iter()
        .map(|r| r["end"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert_eq!(labels.len(), (last_end * 100.0).round() as usize);
    labels
}

async fn stream_with_profiles(mode: Mode) {
    let mut gw = Gateway::start(mode, &[]).await;
    let a = gw.enroll("alice", 0, None).await;
    let b = gw.enroll("bob", 1, None).await;
    let addr = gw.serve().await;
    let mut ws = ws_connect(addr, "/v1/stream").await;
    send_json(
        &mut ws,
        json!({"type":"start","audio":{"sample_rate":16000,"encoding":"pcm_s16le","channels":1},
               "speakers":[a, b]}),
    )
    .await;
    let ready = next_json(&mut ws).await;
    assert_eq!(ready["type"], "ready", "{ready}");
    assert!(uuid::Uuid::parse_str(ready["session"].as_str().unwrap()).is_ok());
    assert_eq!(ready["window_ms"], 1600);
    assert_eq!(ready["hop_ms"], 500);
    assert_eq!(ready["speakers"][0]["id"], a.as_str());
    assert_eq!(ready["speakers"][1]["name"], "bob");

    let audio = s16(&two_voices());
    // Odd frame sizes: samples split across frames must be reassembled.
    stream_pcm(&mut ws, &audio, 3_201, 32_000.0, Some(8.0)).await;
    send_json(&mut ws, json!({"type":"stop"})).await;
    let t = read_all(&mut ws, Duration::from_secs(60)).await;
    check_two_voices(&t, "alice", "bob", 16.0);
    gw.stop().await;
}

/// 44.1 kHz stereo float frames with inline (client-kept) signatures, on the original path.
async fn stream_44k_stereo_f32_inline(mode: Mode) {
    let mut gw = Gateway::start(mode, &[]).await;
    let mut sigs = Vec::new();
    for spk in [0, 1] {
        let (status, body) = gw
            .post_form(
                "/embed",
                vec![common::Part::File(
                    "file",
                    common::wav(&speech(spk, 0, 5.0), 16_000, 1),
                )],
                None,
            )
            .await;
        assert_eq!(status, axum::http::StatusCode::OK);
        sigs.push(body["embedding"].clone());
    }
    let addr = gw.serve().await;
    let mut ws = ws_connect(addr, "/ws/stream").await;
    send_json(
        &mut ws,
        json!({"type":"start","audio":{"sample_rate":44100,"encoding":"pcm_f32le","channels":2},
               "speakers":[{"name":"ann","embedding":sigs[0]},{"name":"ben","embedding":sigs[1]}]}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await["type"], "ready");
    let x = diglett_testkit::signal::upsample(&two_voices(), 44_100);
    let mut bytes = Vec::with_capacity(x.len() * 8);
    for (i, &v) in x.iter().enumerate() {
        // Left and right differ slightly; the gateway averages them.
        let l = v * if i % 2 == 0 { 1.02 } else { 0.98 };
        let r = 2.0 * v - l;
        bytes.extend_from_slice(&l.to_le_bytes());
        bytes.extend_from_slice(&r.to_le_bytes());
    }
    // 100 ms frames (the load tool's size), 8× real time.
    stream_pcm(&mut ws, &bytes, 44_100 * 8 / 10, 44_100.0 * 8.0, Some(8.0)).await;
    send_json(&mut ws, json!({"type":"stop"})).await;
    let t = read_all(&mut ws, Duration::from_secs(60)).await;
    check_two_voices(&t, "ann", "ben", 16.0);
    let stereo = frame_labels(&t, ["ann", "ben"]);
    // The same conversation as 16 kHz mono, same signatures: the same labels, frame for frame
    // but for a few near decision boundaries (the resampler is not bit-exact).
    let mut ws = ws_connect(addr, "/ws/stream").await;
    send_json(
        &mut ws,
        json!({"type":"start","audio":{"sample_rate":16000,"encoding":"pcm_s16le","channels":1},
               "speakers":[{"name":"ann","embedding":sigs[0]},{"name":"ben","embedding":sigs[1]}]}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await["type"], "ready");
    stream_pcm(&mut ws, &s16(&two_voices()), 3_200, 32_000.0, Some(8.0)).await;
    send_json(&mut ws, json!({"type":"stop"})).await;
    let mono = frame_labels(
        &read_all(&mut ws, Duration::from_secs(60)).await,
        ["ann", "ben"],
    );
    assert_eq!(stereo.len(), mono.len());
    // Resampling moves Silero's probabilities a little, so run boundaries shift by a few
    // frames (measured: 1430 of 1560 frames agree); a broken conversion would agree on far
    // fewer.
    let same = stereo.iter().zip(&mono).filter(|(x, y)| x == y).count();
    assert!(
        same * 100 >= mono.len() * 85,
        "44.1 kHz stereo and 16 kHz mono agree on {same} of {} frames",
        mono.len()
    );
    gw.stop().await;
}

/// A session that `start` made ready.
async fn ready_session(addr: std::net::SocketAddr, start: Message) -> Ws {
    let mut ws = ws_connect(addr, "/v1/stream").await;
    ws.send(start).await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "ready");
    ws
}

async fn fatal(addr: std::net::SocketAddr, first: Message) -> Transcript {
    let mut ws = ws_connect(addr, "/v1/stream").await;
    ws.send(first).await.unwrap();
    read_all(&mut ws, Duration::from_secs(20)).await
}

#[allow(clippy::needless_pass_by_value)]
fn start(
    audio: serde_json::Value,
    speakers: serde_json::Value,
    options: serde_json::Value,
) -> Message {
    Message::Text(
        json!({"type":"start","audio":audio,"speakers":speakers,"options":options})
            .to_string()
            .into(),
    )
}

fn expect_fatal(t: &Transcript, code: &str, close: u16) {
    let errors = t.of_type("error");
    assert_eq!(errors.len(), 1, "{:?}", t.messages);
    assert_eq!(errors[0]["code"], code, "{:?}", t.messages);
    assert_eq!(t.close.as_ref().map(|c| c.0), Some(close), "{:?}", t.close);
}

async fn protocol_errors(mode: Mode) {
    let mut gw = Gateway::start(mode, &[("DIGLETT_IDLE_TIMEOUT_SECS", "1")]).await;
    let id = gw.enroll("carol", 2, None).await;
    let addr = gw.serve().await;
    let pcm16 = json!({"sample_rate":16000,"encoding":"pcm_s16le"});

    let t = fatal(addr, Message::Binary(vec![0u8; 3200].into())).await;
    expect_fatal(&t, "binary_before_start", 1003);
    let t = fatal(addr, Message::Text("{not json".into())).await;
    expect_fatal(&t, "bad_start", 1007);
    let t = fatal(addr, Message::Text(r#"{"type":"stop"}"#.into())).await;
    expect_fatal(&t, "bad_start", 1007);
    for audio in [
        json!({"sample_rate":96000,"encoding":"pcm_s16le"}),
        json!({"sample_rate":16000,"encoding":"mp3"}),
        json!({"sample_rate":16000,"encoding":"pcm_s16le","channels":6}),
    ] {
        let t = fatal(addr, start(audio.clone(), json!([id]), json!({}))).await;
        expect_fatal(&t, "unsupported_format", 1003);
    }
    let t = fatal(
        addr,
        start(
            pcm16.clone(),
            json!([uuid::Uuid::new_v4().to_string()]),
            json!({}),
        ),
    )
    .await;
    expect_fatal(&t, "unknown_profile", 1008);
    let t = fatal(addr, start(pcm16.clone(), json!(["../../etc"]), json!({}))).await;
    expect_fatal(&t, "unknown_profile", 1008);
    for (speakers, options) in [
        (json!([]), json!({})),
        (json!(vec![id.clone(); 17]), json!({})),
        (json!([id, id]), json!({})),
        (json!([id]), json!({"hop_ms":100})),
        (json!([id]), json!({"threshold":3})),
        (json!([{"name":"x","embedding":[1.0, 2.0]}]), json!({})),
    ] {
        let t = fatal(
            addr,
            start(pcm16.clone(), speakers.clone(), options.clone()),
        )
        .await;
        expect_fatal(&t, "bad_start", 1007);
    }

    // Frame too large, after a good start.
    let mut ws = ready_session(addr, start(pcm16.clone(), json!([id]), json!({}))).await;
    ws.send(Message::Binary(vec![0u8; 300 * 1024].into()))
        .await
        .unwrap();
    let t = read_all(&mut ws, Duration::from_secs(20)).await;
    expect_fatal(&t, "frame_too_large", 1009);

    // A non-fatal bad message, then idle: closed with 1000 and a reason.
    let mut ws = ready_session(addr, start(pcm16.clone(), json!([id]), json!({}))).await;
    ws.send(Message::Text(r#"{"type":"dance"}"#.into()))
        .await
        .unwrap();
    let t = read_all(&mut ws, Duration::from_secs(20)).await;
    assert_eq!(t.of_type("error")[0]["code"], "bad_message");
    let (code, reason) = t.close.clone().unwrap();
    assert_eq!(code, 1000);
    assert!(reason.contains("idle"), "{reason}");
    assert_eq!(t.of_type("summary").len(), 1);
    gw.stop().await;
}

/// Shutdown: an open session gets its remaining results, a summary, and 1001, in bounded time.
async fn graceful_shutdown(mode: Mode) {
    let mut gw = Gateway::start(mode, &[]).await;
    let a = gw.enroll("dora", 3, None).await;
    let addr = gw.serve().await;
    let mut ws = ws_connect(addr, "/v1/stream").await;
    send_json(
        &mut ws,
        json!({"type":"start","audio":{"sample_rate":16000,"encoding":"pcm_s16le"},"speakers":[a]}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await["type"], "ready");
    // 6 s in one burst: 10 windows are cut at once and are in flight when shutdown begins.
    stream_pcm(&mut ws, &s16(&speech(3, 6, 6.0)), 64_000, 32_000.0, None).await;
    // Shut down as soon as the first result shows the session is running.
    assert_eq!(next_json(&mut ws).await["type"], "result");
    let server = gw.begin_shutdown().unwrap();
    let began = std::time::Instant::now();
    let t = read_all(&mut ws, Duration::from_secs(20)).await;
    assert_eq!(t.close.as_ref().map(|c| c.0), Some(1001), "{:?}", t.close);
    // The first result was read above.
    let results = t.of_type("result").len() + 1;
    let summary = t.of_type("summary");
    assert_eq!(summary.len(), 1);
    // Every window cut from the audio the gateway had read got its result before the close.
    let duration = summary[0]["duration"].as_f64().unwrap();
    assert!(
        duration > 1.6,
        "the burst was read before the shutdown: {duration}"
    );
    let windows = ((duration - 1.6) / 0.5 + 1e-9).floor() as usize + 1;
    assert_eq!(results, windows, "{duration}");
    assert_eq!(summary[0]["dropped"], 0);
    tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .unwrap()
        .unwrap();
    assert!(began.elapsed() < Duration::from_secs(20));
    // The listener is gone.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    gw.stop().await;
}

both_modes!(
    stream_with_profiles,
    stream_44k_stereo_f32_inline,
    protocol_errors,
    graceful_shutdown
);

/// Turns and session lifecycle events are published for other services.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_published_on_nats() {
    use futures_util::StreamExt;
    let mut gw = Gateway::start(Mode::Distributed, &[]).await;
    let a = gw.enroll("erin", 0, None).await;
    let b = gw.enroll("fay", 1, None).await;
    let client = async_nats::connect(gw.nats_url()).await.unwrap();
    let mut events = client
        .subscribe(diglett_schemas::subjects::EVENTS_ALL)
        .await
        .unwrap();
    let mut results = client
        .subscribe(diglett_schemas::subjects::RESULTS_ALL)
        .await
        .unwrap();
    client.flush().await.unwrap();
    let addr = gw.serve().await;
    let mut ws = ws_connect(addr, "/v1/stream").await;
    send_json(&mut ws, json!({"type":"start","audio":{"sample_rate":16000,"encoding":"pcm_s16le"},"speakers":[a,b]})).await;
    let session = next_json(&mut ws).await["session"]
        .as_str()
        .unwrap()
        .to_owned();
    stream_pcm(&mut ws, &s16(&two_voices()), 32_000, 32_000.0, Some(8.0)).await;
    send_json(&mut ws, json!({"type":"stop"})).await;
    let t = read_all(&mut ws, Duration::from_secs(60)).await;
    let turns = t.of_type("turn").len();
    let mut kinds = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(2), events.next()).await {
        let e: diglett_schemas::SessionEvent = diglett_schemas::decode(&m.payload).unwrap();
        assert_eq!(e.session, session);
        assert_eq!(m.subject.as_str(), format!("diglett.v1.events.{session}"));
        kinds.push(e.event);
    }
    assert!(
        matches!(kinds.first(), Some(diglett_schemas::EventKind::Started { speakers }) if speakers.len() == 2)
    );
    assert!(matches!(
        kinds.last(),
        Some(diglett_schemas::EventKind::Ended { .. })
    ));
    let turn_events = kinds
        .iter()
        .filter(|k| matches!(k, diglett_schemas::EventKind::SpeakerTurn { .. }))
        .count();
    assert_eq!(turn_events, turns);
    // The window results were on the bus too.
    let first = tokio::time::timeout(Duration::from_secs(2), results.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first.subject.as_str(),
        format!("diglett.v1.results.{session}")
    );
    gw.stop().await;
}
