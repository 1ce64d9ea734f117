//! End-to-end and fault scenarios over real processes: nats-server, redis-server, the
//! gateway binary and two worker binaries, each test with its own servers and ports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_lossless)]

use std::time::{Duration, Instant};

use diglett_e2e::{Nats, Proc, Redis, base_env, start_gateway, start_worker, wait_ready};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const SR: usize = 16_000;
/// The two voices of the conversation (indices into data/speakers).
const VOICES: [usize; 2] = [2, 3];

/// The hour-long tests take both cores for a minute or more; the other tests pace audio like a
/// microphone and would see their windows skipped as overloaded beside them. So the hour-long
/// ones run alone ([`alone`]) and the rest side by side ([`shared`]).
static CPU: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Runs beside the other ordinary tests, never beside an hour-long one.
async fn shared() -> tokio::sync::RwLockReadGuard<'static, ()> {
    CPU.read().await
}

/// Runs with no other test of this file.
async fn alone() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    CPU.write().await
}

use diglett_audio::wav::wav_16k as wav;
use diglett_schemas::pcm::from_f32 as s16;
use diglett_testkit::corpus::speech;

/// A running stack: NATS, Redis, two workers, a gateway.
struct Stack {
    nats: Nats,
    redis: Redis,
    workers: Vec<Proc>,
    gateway: Proc,
    addr: String,
}

impl Stack {
    async fn start(workers: usize, extra: &[(&str, &str)]) -> Self {
        let nats = Nats::start();
        let redis = Redis::start();
        let mut env = base_env(&nats.url(), &redis.url());
        for (k, v) in extra {
            env.insert((*k).into(), (*v).into());
        }
        let workers = (0..workers).map(|_| start_worker(&env)).collect();
        let (gateway, addr) = start_gateway(&env);
        wait_ready(&addr, Duration::from_secs(60)).await;
        Self {
            nats,
            redis,
            workers,
            gateway,
            addr,
        }
    }

    /// Enrolls a profile from ~5 s of a speaker's first utterances.
    async fn enroll(&self, name: &str, speaker: usize) -> String {
        let (status, body) = self.enroll_raw(name, &speech(speaker, 0, 5.0)).await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    async fn enroll_raw(&self, name: &str, audio: &[f32]) -> (u16, Value) {
        enroll_at(&self.addr, name, audio).await
    }

    /// `/embed`'s GE2E signature of `audio`.
    async fn embed(&self, audio: &[f32]) -> Value {
        self.embed_response(audio).await["embedding"].clone()
    }

    /// `/embed`'s whole answer for `audio`.
    async fn embed_response(&self, audio: &[f32]) -> Value {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(wav(audio)).file_name("a.wav"),
        );
        let r = diglett_e2e::http()
            .post(format!("http://{}/embed", self.addr))
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()
    }
}

/// `POST /v1/speakers` on the gateway at `addr`: (status, body).
async fn enroll_at(addr: &str, name: &str, audio: &[f32]) -> (u16, Value) {
    let form = reqwest::multipart::Form::new()
        .text("name", name.to_owned())
        .part(
            "file",
            reqwest::multipart::Part::bytes(wav(audio)).file_name("a.wav"),
        );
    let r = diglett_e2e::http()
        .post(format!("http://{addr}/v1/speakers"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// What a session gave the client.
#[derive(Debug, Default)]
struct Transcript {
    messages: Vec<Value>,
    close: Option<(u16, String)>,
}

impl Transcript {
    fn of_type(&self, t: &str) -> Vec<&Value> {
        self.messages.iter().filter(|m| m["type"] == t).collect()
    }
}

/// Streams `audio` (16 kHz) in 100 ms frames at `speed` × real time, calling `fault` once
/// when `fault_at` of stream time has been sent, then `stop`; returns everything received.
async fn session(
    addr: &str,
    speakers: Value,
    audio: &[f32],
    speed: f64,
    fault_at: Option<f64>,
    fault: impl AsyncFnOnce(),
) -> Transcript {
    session_with(addr, speakers, json!({}), audio, speed, fault_at, fault).await
}

/// [`session`] with these `start` options.
async fn session_with(
    addr: &str,
    speakers: Value,
    options: Value,
    audio: &[f32],
    speed: f64,
    fault_at: Option<f64>,
    fault: impl AsyncFnOnce(),
) -> Transcript {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/v1/stream"))
        .await
        .unwrap();
    let (mut tx, mut rx) = ws.split();
    let start = json!({"type":"start","audio":{"sample_rate":16000,"encoding":"pcm_s16le","channels":1},"speakers":speakers,"options":options});
    tx.send(Message::Text(start.to_string().into()))
        .await
        .unwrap();
    let reader = tokio::spawn(async move {
        let mut t = Transcript::default();
        while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(120), rx.next()).await {
            match m {
                Ok(Message::Text(s)) => t.messages.push(serde_json::from_str(&s).unwrap()),
                Ok(Message::Close(f)) => {
                    t.close = f.map(|f| (u16::from(f.code), f.reason.to_string()));
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        t
    });
    let began = tokio::time::Instant::now();
    let mut fault = Some(fault);
    let frame = SR / 10;
    for (i, chunk) in audio.chunks(frame).enumerate() {
        if tx.send(Message::Binary(s16(chunk).into())).await.is_err() {
            break;
        }
        let sent = (i + 1) as f64 * 0.1;
        if fault_at.is_some_and(|at| sent >= at)
            && let Some(f) = fault.take()
        {
            f().await;
        }
        tokio::time::sleep_until(began + Duration::from_secs_f64(sent / speed)).await;
    }
    let _ = tx.send(Message::Text(r#"{"type":"stop"}"#.into())).await;
    tokio::time::timeout(Duration::from_secs(120), reader)
        .await
        .expect("the session ends")
        .unwrap()
}

/// A session at 8× real time with nothing going wrong.
async fn quick_session(addr: &str, speakers: Value, audio: &[f32]) -> Transcript {
    session(addr, speakers, audio, 8.0, None, async || {}).await
}

/// A session at 2× real time that runs `fault` once `at` seconds of audio have been sent.
async fn faulted_session(
    addr: &str,
    speakers: Value,
    audio: &[f32],
    at: f64,
    fault: impl AsyncFnOnce(),
) -> Transcript {
    session(addr, speakers, audio, 2.0, Some(at), fault).await
}

/// A conversation: alternating 6 s turns of the two voices from utterances not used to
/// enroll, with 1–2 s of near-silence between turns. Returns the audio and the turns
/// `(voice index, start s, end s)`.
fn conversation() -> (Vec<f32>, Vec<(usize, f64, f64)>) {
    let mut audio = Vec::new();
    let mut truth = Vec::new();
    let gaps = [1.0, 2.0, 1.5, 2.0, 1.0];
    let mut noise = 12345u32;
    let mut quiet = |n: usize, out: &mut Vec<f32>| {
        for _ in 0..n {
            noise = noise.wrapping_mul(1_103_515_245).wrapping_add(12345);
            out.push(((noise >> 16) as f32 / 65536.0 - 0.5) * 2e-4);
        }
    };
    quiet(SR / 2, &mut audio);
    for turn in 0..6 {
        let who = turn % 2;
        let x = speech(VOICES[who], 3 + turn / 2, 6.0);
        let start = audio.len() as f64 / SR as f64;
        audio.extend_from_slice(&x);
        truth.push((who, start, audio.len() as f64 / SR as f64));
        if let Some(g) = gaps.get(turn) {
            quiet((g * SR as f64) as usize, &mut audio);
        }
    }
    (audio, truth)
}

/// Scenario 1: enroll two voices, stream a conversation paced like a microphone, check
/// speakers, silences, turns and talk time against the truth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_end_to_end() {
    let _cpu = shared().await;
    let stack = Stack::start(2, &[]).await;
    let a = stack.enroll("ana", VOICES[0]).await;
    let b = stack.enroll("bea", VOICES[1]).await;
    let names = ["ana", "bea"];
    let (audio, truth) = conversation();
    let t = session(&stack.addr, json!([a, b]), &audio, 1.0, None, async || {}).await;
    assert_eq!(t.close.as_ref().map(|c| c.0), Some(1000), "{:?}", t.close);
    let results = t.of_type("result");
    let total = audio.len() as f64 / SR as f64;
    assert_eq!(
        results.len(),
        ((total - 1.6) / 0.5) as usize + 1,
        "one result per window"
    );
    // Speech windows: at least 80% inside one turn. Silence windows: wholly in a gap.
    let (mut right, mut speech_windows, mut silent_ok, mut silent) = (0, 0, 0, 0);
    for r in &results {
        let (s, e) = (r["start"].as_f64().unwrap(), r["end"].as_f64().unwrap());
        let inside = |&(_, ts, te): &(usize, f64, f64)| (e.min(te) - s.max(ts)).max(0.0);
        if let Some(&(who, ..)) = truth.iter().find(|t| inside(t) >= 0.8 * 1.6) {
            speech_windows += 1;
            if r["speaker"] == names[who] {
                right += 1;
            }
        } else if truth.iter().all(|t| inside(t) == 0.0) {
            silent += 1;
            if r["label"] == "silence" {
                silent_ok += 1;
            }
        }
    }
    assert!(speech_windows >= 30, "{speech_windows}");
    assert!(
        right * 10 >= speech_windows * 9,
        "right speaker on {right}/{speech_windows} speech windows"
    );
    assert!(silent >= 2, "the 2 s gaps hold silence windows");
    assert_eq!(silent_ok, silent, "silences are silence");

    // Turns: in order; each change of voice has a turn to the new voice within 1.25 s (less
    // than a window; the utterances begin with up to ~0.5 s of their own silence, and a turn
    // after a pause starts once a window is mostly speech).
    let turns = t.of_type("turn");
    let starts: Vec<f64> = turns.iter().map(|x| x["start"].as_f64().unwrap()).collect();
    assert!(
        starts.windows(2).all(|w| w[0] <= w[1]),
        "turns in order: {starts:?}"
    );
    // (The stream's first turn is no change of voice: its first window is only judged at
    // 1.6 s.)
    for &(who, ts, _) in &truth[1..] {
        assert!(
            turns
                .iter()
                .any(|x| x["speaker"] == names[who]
                    && (x["start"].as_f64().unwrap() - ts).abs() <= 1.25),
            "a turn to {} near {ts:.2} s: {turns:?}",
            names[who]
        );
    }
    // Talk time within 15% of the truth.
    let summary = t.of_type("summary")[0];
    for (i, name) in names.iter().enumerate() {
        let truth_s: f64 = truth.iter().filter(|t| t.0 == i).map(|t| t.2 - t.1).sum();
        let got = summary["talk_time"][name].as_f64().unwrap();
        assert!(
            (got - truth_s).abs() <= 0.15 * truth_s,
            "{name}: talk time {got:.2} vs {truth_s:.2}"
        );
    }
    assert_eq!(summary["dropped"], 0);
    drop(stack);
}

/// Speaker models over the bus: profiles enrolled through a worker carry both models'
/// embeddings; a CAM++ session (`options.model`) labels the conversation through the worker's
/// CAM++ and says so in `ready`; `/embed`'s CAM++ signature works inline in a CAM++ session;
/// a GE2E signature in a CAM++ session is refused (mixing models) with close 1007.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campp_session_end_to_end() {
    let _cpu = shared().await;
    let stack = Stack::start(1, &[]).await;
    let a = stack.enroll("ana", VOICES[0]).await;
    let b = stack.enroll("bea", VOICES[1]).await;
    let names = ["ana", "bea"];
    let profile: Value = diglett_e2e::http()
        .get(format!(
            "http://{}/v1/speakers/{a}?include=embedding",
            stack.addr
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(profile["models"], json!(["ge2e", "campp"]), "{profile}");
    assert_eq!(profile["campp_embedding"].as_array().unwrap().len(), 192);
    let (audio, truth) = conversation();
    let t = session_with(
        &stack.addr,
        json!([a, b]),
        json!({"model": "campp"}),
        &audio,
        8.0,
        None,
        async || {},
    )
    .await;
    assert_eq!(t.close.as_ref().map(|c| c.0), Some(1000), "{:?}", t.close);
    assert_eq!(t.of_type("ready")[0]["model"], "campp");
    let results = t.of_type("result");
    let total = audio.len() as f64 / SR as f64;
    assert_eq!(results.len(), ((total - 1.6) / 0.5) as usize + 1);
    let (mut right, mut speech_windows) = (0, 0);
    for r in &results {
        let (s, e) = (r["start"].as_f64().unwrap(), r["end"].as_f64().unwrap());
        let inside = |&(_, ts, te): &(usize, f64, f64)| (e.min(te) - s.max(ts)).max(0.0);
        if let Some(&(who, ..)) = truth.iter().find(|t| inside(t) >= 0.8 * 1.6) {
            speech_windows += 1;
            if r["speaker"] == names[who] {
                right += 1;
            }
        }
    }
    assert!(speech_windows >= 30, "{speech_windows}");
    assert!(
        right * 10 >= speech_windows * 9,
        "CAM++: right speaker on {right}/{speech_windows} speech windows"
    );

    // Client-held signatures: /embed gives both, each tagged by model.
    let full = stack.embed_response(&speech(VOICES[0], 0, 5.0)).await;
    assert_eq!(full["model"], "ge2e");
    let e = full["embedding"].clone();
    assert_eq!(e.as_array().unwrap().len(), 256);
    let campp = full["campp_embedding"].clone();
    assert_eq!(campp.as_array().unwrap().len(), 192);
    let inline = json!([{"name": "ana", "embedding": campp, "model": "campp"}]);
    let t = session_with(
        &stack.addr,
        inline,
        json!({"model": "campp"}),
        &speech(VOICES[0], 3, 4.0),
        8.0,
        None,
        async || {},
    )
    .await;
    assert_eq!(t.close.as_ref().map(|c| c.0), Some(1000), "{:?}", t.close);
    assert!(
        t.of_type("result").iter().any(|r| r["speaker"] == "ana"),
        "{:?}",
        t.messages
    );
    let mixed = json!([{"name": "ana", "embedding": e}]);
    let t = session_with(
        &stack.addr,
        mixed,
        json!({"model": "campp"}),
        &speech(VOICES[0], 3, 2.0),
        8.0,
        None,
        async || {},
    )
    .await;
    assert_eq!(t.close.as_ref().map(|c| c.0), Some(1007), "{:?}", t.close);
    assert_eq!(
        t.of_type("error")[0]["code"],
        "bad_start",
        "{:?}",
        t.messages
    );
    drop(stack);
}

/// Scenario 2: another service sees every result of a session, live (plain NATS) and after
/// the fact (a JetStream consumer on the workers' stream).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_services_see_every_result() {
    let _cpu = shared().await;
    let stack = Stack::start(2, &[]).await;
    let a = stack.enroll("ana", VOICES[0]).await;
    let nc = async_nats::connect(stack.nats.url()).await.unwrap();
    let mut live = nc
        .subscribe(diglett_schemas::subjects::RESULTS_ALL)
        .await
        .unwrap();
    nc.flush().await.unwrap();
    let t = session(
        &stack.addr,
        json!([a]),
        &speech(VOICES[0], 4, 8.0),
        4.0,
        None,
        async || {},
    )
    .await;
    let session_id = t.of_type("ready")[0]["session"]
        .as_str()
        .unwrap()
        .to_owned();
    let client_seqs: Vec<u64> = t
        .of_type("result")
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    assert!(!client_seqs.is_empty());

    let mut live_seqs = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(2), live.next()).await {
        let r: diglett_schemas::WindowResult = diglett_schemas::decode(&m.payload).unwrap();
        assert_eq!(r.session, session_id);
        live_seqs.push(r.seq);
    }
    live_seqs.sort_unstable();
    live_seqs.dedup();
    assert_eq!(
        live_seqs, client_seqs,
        "a plain subscriber saw every result"
    );

    let js = async_nats::jetstream::new(nc);
    let stream = js
        .get_stream(diglett_schemas::subjects::EVENTS_STREAM)
        .await
        .unwrap();
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            filter_subject: diglett_schemas::subjects::results(&session_id).unwrap(),
            deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer
        .fetch()
        .max_messages(1000)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .unwrap();
    let mut replayed = Vec::new();
    while let Some(Ok(m)) = messages.next().await {
        let r: diglett_schemas::WindowResult = diglett_schemas::decode(&m.payload).unwrap();
        replayed.push(r.seq);
    }
    replayed.sort_unstable();
    replayed.dedup();
    assert_eq!(
        replayed, client_seqs,
        "a JetStream consumer replays every result"
    );
}

/// Scenario 3: SIGKILL one of two workers mid-stream; the session completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_worker_mid_stream() {
    let _cpu = shared().await;
    let mut stack = Stack::start(2, &[("DIGLETT_WINDOW_TIMEOUT_MS", "1000")]).await;
    let a = stack.enroll("ana", VOICES[0]).await;
    let audio = speech(VOICES[0], 4, 14.0);
    let mut victim = stack.workers.remove(0);
    let t = faulted_session(&stack.addr, json!([a]), &audio, 5.0, async || victim.kill()).await;
    assert_eq!(t.close.as_ref().map(|c| c.0), Some(1000), "{:?}", t.close);
    let windows = ((14.0 - 1.6) / 0.5) as u64 + 1;
    let summary = t.of_type("summary")[0];
    let results = t.of_type("result").len() as u64;
    let dropped = summary["dropped"].as_u64().unwrap();
    assert_eq!(
        results + dropped,
        windows,
        "every window answered or reported"
    );
    assert!(
        dropped <= 8,
        "at most the in-flight windows are lost: {dropped}"
    );
}

/// Scenario 4: restart nats-server mid-stream; everything reconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_nats_mid_stream() {
    let _cpu = shared().await;
    let mut stack = Stack::start(2, &[("DIGLETT_WINDOW_TIMEOUT_MS", "1000")]).await;
    let a = stack.enroll("ana", VOICES[0]).await;
    let sig = stack.embed(&speech(VOICES[0], 0, 5.0)).await;
    let audio = speech(VOICES[0], 4, 12.0);
    let restarted = std::cell::Cell::new(None);
    let nats = &mut stack.nats;
    let t = faulted_session(&stack.addr, json!([a]), &audio, 4.0, async || {
        nats.restart();
        restarted.set(Some(Instant::now()));
    })
    .await;
    // Either the session went on to its summary, or it ended with a clear error frame.
    match t.close.as_ref().map(|c| c.0) {
        Some(1000) => assert_eq!(t.of_type("summary").len(), 1),
        other => assert!(
            !t.of_type("error").is_empty(),
            "close {other:?} without an error: {:?}",
            t.messages.last()
        ),
    }
    // A new session works within 10 s of the restart.
    let since = restarted.get().expect("restarted");
    let fresh = quick_session(
        &stack.addr,
        json!([{"name":"ana","embedding":sig}]),
        &speech(VOICES[0], 6, 4.0),
    )
    .await;
    assert!(!fresh.of_type("result").is_empty(), "{:?}", fresh.messages);
    assert!(
        since.elapsed() < Duration::from_secs(10),
        "took {:?}",
        since.elapsed()
    );
}

/// Scenario 5: Redis down → enrollment 503, inline streams still work; Redis back → enrollment
/// works again without restarting anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage() {
    let _cpu = shared().await;
    let mut stack = Stack::start(1, &[]).await;
    let sig = stack.embed(&speech(VOICES[0], 0, 5.0)).await;
    stack.redis.stop();
    let (status, body) = stack.enroll_raw("ana", &speech(VOICES[0], 0, 5.0)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "store_unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unavailable")
    );
    let t = quick_session(
        &stack.addr,
        json!([{"name":"ana","embedding":sig}]),
        &speech(VOICES[0], 4, 4.0),
    )
    .await;
    assert_eq!(t.close.as_ref().map(|c| c.0), Some(1000));
    assert!(!t.of_type("result").is_empty());
    stack.redis.resume();
    let start = Instant::now();
    loop {
        let (status, body) = stack.enroll_raw("ana", &speech(VOICES[0], 0, 5.0)).await;
        if status == 201 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "enrollment after Redis returned: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Scenario 6: SIGTERM the gateway mid-session: remaining results, then 1001.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_gateway_mid_session() {
    let _cpu = shared().await;
    let mut stack = Stack::start(1, &[]).await;
    let a = stack.enroll("ana", VOICES[0]).await;
    let audio = speech(VOICES[0], 4, 10.0);
    let gateway = &stack.gateway;
    let t = faulted_session(&stack.addr, json!([a]), &audio, 4.0, async || {
        gateway.terminate()
    })
    .await;
    assert_eq!(t.close.as_ref().map(|c| c.0), Some(1001), "{:?}", t.close);
    let summary = t.of_type("summary");
    assert_eq!(summary.len(), 1);
    let duration = summary[0]["duration"].as_f64().unwrap();
    let windows = ((duration - 1.6) / 0.5 + 1e-9).floor() as usize + 1;
    assert_eq!(
        t.of_type("result").len(),
        windows,
        "every cut window answered before the close"
    );
    assert_eq!(
        stack.gateway.wait(Duration::from_secs(20)),
        Some(0),
        "the gateway exits cleanly"
    );
}

/// The compose file, honestly tested without a Docker engine: its declared shape is checked,
/// then the same programs run with the same commands, flags and environment it declares —
/// container paths, host names and ports mapped to local ones — and serve a session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_stack_runs() {
    let _cpu = shared().await;
    use serde_yaml::Value as Y;
    use std::collections::HashMap;
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let text = std::fs::read_to_string(format!("{root}/docker-compose.yml")).unwrap();
    let doc: Y = serde_yaml::from_str(&text).unwrap();
    let svc = &doc["services"];
    let command = |name: &str| -> Vec<String> {
        svc[name]["command"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{name}: command list"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    let environment = |name: &str| -> HashMap<String, String> {
        svc[name]["environment"]
            .as_mapping()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().unwrap().to_owned(),
                            v.as_str().unwrap().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };

    // The declared shape.
    assert!(command("nats").contains(&"-js".to_owned()), "JetStream on");
    let redis_cmd = command("redis");
    assert!(
        redis_cmd.windows(2).any(|w| w == ["--appendonly", "yes"]),
        "append-only Redis"
    );
    let named: Vec<&str> = doc["volumes"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    let redis_volume = svc["redis"]["volumes"][0].as_str().unwrap();
    assert!(
        named.contains(&redis_volume.split(':').next().unwrap()),
        "Redis data on a named volume"
    );
    for s in ["nats", "redis"] {
        assert!(
            svc[s]["healthcheck"]["test"].is_sequence(),
            "{s} has a health check"
        );
    }
    for dep in ["nats", "redis"] {
        assert_eq!(
            svc["gateway"]["depends_on"][dep]["condition"],
            "service_healthy"
        );
    }
    assert_eq!(
        svc["worker"]["depends_on"]["nats"]["condition"],
        "service_healthy"
    );
    assert!(
        svc["gateway"]["ports"]
            .as_sequence()
            .is_some_and(|p| !p.is_empty()),
        "gateway port published"
    );
    assert_eq!(svc["worker"]["deploy"]["replicas"].as_u64(), Some(2));
    assert!(
        svc["worker"]["ports"].is_null(),
        "scalable workers publish no host ports"
    );
    for (name, s) in svc.as_mapping().unwrap() {
        assert!(
            s["container_name"].is_null(),
            "{name:?}: no fixed container name"
        );
    }
    let dockerfile = std::fs::read_to_string(format!("{root}/Dockerfile")).unwrap();
    assert!(
        dockerfile.matches("FROM ").count() >= 2,
        "multi-stage Dockerfile"
    );
    let user = dockerfile
        .lines()
        .rev()
        .find(|l| l.starts_with("USER "))
        .expect("a USER line");
    assert!(
        !user.contains("root") && !user.contains(" 0"),
        "runs as non-root: {user}"
    );

    // The same programs, locally.
    let dir = tempfile::tempdir().unwrap();
    let local = |p: &str, sub: &str| -> String {
        let d = dir.path().join(sub);
        std::fs::create_dir_all(&d).unwrap();
        if p == "/data" {
            d.display().to_string()
        } else {
            p.to_owned()
        }
    };
    let (nats_port, monitor_port, redis_port) = (
        diglett_e2e::free_port(),
        diglett_e2e::free_port(),
        diglett_e2e::free_port(),
    );
    let mut nats_args: Vec<String> = command("nats").iter().map(|a| local(a, "nats")).collect();
    if let Some(i) = nats_args.iter().position(|a| a == "-m") {
        nats_args[i + 1] = monitor_port.to_string();
    }
    nats_args.extend([
        "-a".into(),
        "127.0.0.1".into(),
        "-p".into(),
        nats_port.to_string(),
    ]);
    let args: Vec<&str> = nats_args.iter().map(String::as_str).collect();
    let _nats = Proc::spawn("nats", &"nats-server".into(), &args, &HashMap::new());
    let mut redis_args: Vec<String> = redis_cmd[1..].iter().map(|a| local(a, "redis")).collect();
    redis_args.extend([
        "--bind".into(),
        "127.0.0.1".into(),
        "--port".into(),
        redis_port.to_string(),
    ]);
    let args: Vec<&str> = redis_args.iter().map(String::as_str).collect();
    let _redis = Proc::spawn(
        "redis",
        &redis_cmd[0].clone().into(),
        &args,
        &HashMap::new(),
    );
    // Health checks, as declared (host and port mapped).
    let nats_health = format!("http://127.0.0.1:{monitor_port}/healthz?js-enabled-only=true");
    let http = diglett_e2e::http();
    let begun = Instant::now();
    loop {
        let nats_ok = http
            .get(&nats_health)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        let redis_ok = std::process::Command::new("redis-cli")
            .args(["-p", &redis_port.to_string(), "ping"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG");
        if nats_ok && redis_ok {
            break;
        }
        assert!(
            begun.elapsed() < Duration::from_secs(20),
            "health checks: nats {nats_ok}, redis {redis_ok}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let gateway_port = diglett_e2e::free_port();
    let map = |mut env: HashMap<String, String>| {
        for v in env.values_mut() {
            *v = v
                .replace("nats://nats:4222", &format!("nats://127.0.0.1:{nats_port}"))
                .replace(
                    "redis://redis:6379",
                    &format!("redis://127.0.0.1:{redis_port}"),
                )
                .replace("0.0.0.0:8080", &format!("127.0.0.1:{gateway_port}"))
                // Each container has its own metrics port; local processes share one host.
                .replace("0.0.0.0:9464", "127.0.0.1:0");
        }
        env
    };
    let worker_env = map(environment("worker"));
    let _workers: Vec<Proc> = (0..svc["worker"]["deploy"]["replicas"].as_u64().unwrap())
        .map(|_| {
            Proc::spawn(
                "worker",
                &diglett_e2e::bin(&command("worker")[0]),
                &[],
                &worker_env,
            )
        })
        .collect();
    let _gateway = Proc::spawn(
        "gateway",
        &diglett_e2e::bin(&command("gateway")[0]),
        &[],
        &map(environment("gateway")),
    );
    let addr = format!("127.0.0.1:{gateway_port}");
    wait_ready(&addr, Duration::from_secs(60)).await;
    let stack_addr = addr.clone();
    let (status, created) = enroll_at(&stack_addr, "ana", &speech(VOICES[0], 0, 5.0)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("profile created").to_owned();
    let t = quick_session(&stack_addr, json!([id]), &speech(VOICES[0], 4, 5.0)).await;
    assert_eq!(t.close.as_ref().map(|c| c.0), Some(1000));
    let results = t.of_type("result");
    assert!(results.len() >= 6, "{results:?}");
    assert!(results.iter().filter(|r| r["speaker"] == "ana").count() * 10 >= results.len() * 7);
}

/// A free port and the environment of an embedded-mode gateway on it (profiles under `dir`,
/// no metrics listener).
fn embedded_env(dir: &std::path::Path) -> (u16, std::collections::HashMap<String, String>) {
    let port = diglett_e2e::free_port();
    let env = std::collections::HashMap::from([
        ("DIGLETT_LISTEN".to_owned(), format!("127.0.0.1:{port}")),
        (
            "DIGLETT_DATA_DIR".to_owned(),
            dir.join("data").display().to_string(),
        ),
        ("DIGLETT_METRICS_ADDR".to_owned(), "off".to_owned()),
    ]);
    (port, env)
}

/// Scenario: a client's bad uploads are the client's problem. Against the gateway binary with
/// its own default log filter (no `RUST_LOG`), undecodable and unsupported files get their 4xx
/// JSON error, are logged once each at `info` as rejected requests, and nothing is logged at
/// `ERROR` (symphonia's probe used to log every one of them so). Each log line names the
/// request (the client's `x-request-id`, echoed back) or the session; a bad WebSocket `start` is
/// an `info` too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_logged_as_client_errors() {
    let _cpu = shared().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("gateway.log");
    let (port, mut env) = embedded_env(dir.path());
    env.insert("DIGLETT_COMPUTE_THREADS".to_owned(), "1".to_owned());
    let mut gateway =
        Proc::spawn_logged("gateway", &diglett_e2e::bin("diglett-gateway"), &env, &log);
    let addr = format!("127.0.0.1:{port}");
    wait_ready(&addr, Duration::from_secs(60)).await;
    // Bytes no format reader claims (symphonia's probe reads to the end: "probe reach EOF"),
    // and a WAV header cut short.
    let uploads: [(&str, Vec<u8>, &str); 2] = [
        ("zeros.bin", vec![0u8; 3000], "unsupported_audio"),
        (
            "cut.wav",
            b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec(),
            "undecodable_audio",
        ),
    ];
    for (file, bytes, code) in &uploads {
        let form = reqwest::multipart::Form::new().text("name", "x").part(
            "file",
            reqwest::multipart::Part::bytes(bytes.clone()).file_name(*file),
        );
        let r = diglett_e2e::http()
            .post(format!("http://{addr}/v1/speakers"))
            .header("x-request-id", format!("upload-{file}"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        assert_eq!(
            r.headers()["x-request-id"].to_str().unwrap(),
            format!("upload-{file}"),
            "the client's request id is echoed"
        );
        let body: Value = r.json().await.unwrap();
        assert!((400..500).contains(&status), "{file}: {status} {body}");
        assert_eq!(body["error"]["code"], *code, "{file}: {body}");
    }
    // A request without an id gets one.
    let r = diglett_e2e::http()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    let given = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid_like(&given), "{given}");
    // A bad start message over the WebSocket: the client's mistake, logged with the session.
    let request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{addr}/v1/stream"),
    )
    .map(|mut r| {
        r.headers_mut()
            .insert("x-request-id", "ws-bad-start".parse().unwrap());
        r
    })
    .unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    ws.send(Message::Text(r#"{"type":"start","speakers":[]}"#.into()))
        .await
        .unwrap();
    let mut error = None;
    while let Some(Ok(m)) = ws.next().await {
        if let Message::Text(t) = m {
            error = Some(serde_json::from_str::<Value>(&t).unwrap());
        }
    }
    let error = error.expect("an error message before the close");
    assert_eq!(error["type"], "error", "{error}");
    gateway.terminate();
    assert!(
        gateway.wait(Duration::from_secs(20)).is_some(),
        "gateway stops"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("ERROR"),
        "no ERROR for a client's file:\n{text}"
    );
    assert_eq!(
        text.matches("request rejected").count(),
        uploads.len(),
        "each rejection logged once:\n{text}"
    );
    for (file, _, code) in &uploads {
        let line = text
            .lines()
            .find(|l| l.contains("request rejected") && l.contains(code))
            .unwrap_or_else(|| panic!("{code} in the log:\n{text}"));
        assert!(
            line.contains(&format!("id=upload-{file}")),
            "the rejection names its request: {line}"
        );
    }
    let refused = text
        .lines()
        .find(|l| l.contains("session refused"))
        .unwrap_or_else(|| panic!("the bad start is logged:\n{text}"));
    assert!(
        refused.contains("INFO") && refused.contains("request=ws-bad-start"),
        "at info, naming the session and its request: {refused}"
    );
    assert!(refused.contains("session="), "{refused}");
}

/// `8-4-4-4-12` hex digits.
fn uuid_like(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && s.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
}

/// Resident memory of a process (KiB), from `/proc/<pid>/status`.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// What an hour-long session gave the client: (seq, start, end) per result, the summary,
/// anything else but `ready` and `turn`, the seconds sent, and the gateway's RSS (KiB) after
/// 5 minutes of audio and at the end.
struct HourRun {
    results: Vec<(u64, f64, f64)>,
    summary: Option<Value>,
    other: Vec<Value>,
    sent_s: f64,
    rss: (u64, u64),
}

/// Streams one hour of 44.1 kHz stereo f32 (30 s of the two voices, taken to 44.1 kHz by linear
/// interpolation, the right channel 3 dB down, looped) to `addr` as fast as it takes it, with
/// `fault` run once `fault_at` seconds have been sent.
async fn hour_session(
    addr: &str,
    id: &str,
    gateway_pid: u32,
    fault_at: f64,
    fault: impl AsyncFnOnce(),
) -> HourRun {
    const RATE: usize = 44_100;
    const HOUR_S: usize = 3600;
    let mono: Vec<f32> = [speech(VOICES[0], 1, 15.0), speech(VOICES[1], 1, 15.0)].concat();
    let n = mono.len() * RATE / SR;
    let mut loop_bytes = Vec::with_capacity(n * 8);
    for i in 0..n {
        let t = i as f64 * SR as f64 / RATE as f64;
        let (k, f) = (t.floor() as usize, (t - t.floor()) as f32);
        let x = mono[k] * (1.0 - f) + mono.get(k + 1).copied().unwrap_or(0.0) * f;
        loop_bytes.extend_from_slice(&x.to_le_bytes());
        loop_bytes.extend_from_slice(&(x * 0.708).to_le_bytes());
    }
    let frame_bytes = RATE / 10 * 8; // 100 ms
    let total_bytes = HOUR_S * RATE * 8;

    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/v1/stream"))
        .await
        .unwrap();
    let (mut tx, mut rx) = ws.split();
    let start = json!({"type":"start","audio":{"sample_rate":RATE,"encoding":"pcm_f32le","channels":2},"speakers":[id]});
    tx.send(Message::Text(start.to_string().into()))
        .await
        .unwrap();
    // Only what is checked is kept.
    let reader = tokio::spawn(async move {
        let (mut results, mut summary, mut other) = (Vec::new(), None, Vec::new());
        while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(120), rx.next()).await
        {
            match m {
                Message::Text(s) => {
                    let v: Value = serde_json::from_str(&s).unwrap();
                    match v["type"].as_str() {
                        Some("result") => results.push((
                            v["seq"].as_u64().unwrap(),
                            v["start"].as_f64().unwrap(),
                            v["end"].as_f64().unwrap(),
                        )),
                        Some("summary") => summary = Some(v),
                        Some("ready" | "turn") => {}
                        _ => other.push(v),
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        (results, summary, other)
    });
    let (mut sent, mut warm_rss, mut fault) = (0usize, None, Some(fault));
    'send: loop {
        for chunk in loop_bytes.chunks(frame_bytes) {
            let chunk = &chunk[..chunk.len().min(total_bytes - sent)];
            if chunk.is_empty() {
                break 'send;
            }
            tx.send(Message::Binary(chunk.to_vec().into()))
                .await
                .unwrap();
            sent += chunk.len();
            if warm_rss.is_none() && sent >= 300 * RATE * 8 {
                warm_rss = Some(rss_kib(gateway_pid));
            }
            if sent as f64 >= fault_at * (RATE * 8) as f64
                && let Some(f) = fault.take()
            {
                f().await;
            }
        }
    }
    let end_rss = rss_kib(gateway_pid);
    tx.send(Message::Text(r#"{"type":"stop"}"#.into()))
        .await
        .unwrap();
    let (results, summary, other) = reader.await.unwrap();
    HourRun {
        results,
        summary,
        other,
        sent_s: (sent / 8) as f64 / RATE as f64,
        rss: (warm_rss.unwrap_or(0), end_rss),
    }
}

/// The hour's checks: every window's result, in order, none dropped; the summary's duration
/// within 20 ms of what was sent; the last window less than a hop before the end (no drift);
/// the gateway's RSS at most 8 MiB above its level after 5 minutes of audio.
fn check_hour(run: &HourRun, what: &str) {
    let sent_s = run.sent_s;
    assert!((sent_s - 3600.0).abs() < 1e-9, "{what}: sent {sent_s} s");
    assert!(
        run.other.is_empty(),
        "{what}: no warning or error: {:?}",
        run.other
    );
    let summary = run.summary.as_ref().expect("a summary");
    let duration = summary["duration"].as_f64().unwrap();
    assert!(
        (duration - sent_s).abs() <= 0.020,
        "{what}: summary duration {duration} for {sent_s} s sent"
    );
    assert_eq!(summary["dropped"], 0, "{what}: {summary}");
    let expected = ((sent_s - 1.6) / 0.5).floor() as usize + 1;
    assert_eq!(run.results.len(), expected, "{what}: every window's result");
    assert_eq!(summary["windows"].as_u64(), Some(expected as u64), "{what}");
    for (k, &(seq, start, end)) in run.results.iter().enumerate() {
        assert_eq!(seq, k as u64, "{what}: in order, no gap");
        assert!(
            (start - k as f64 * 0.5).abs() < 1e-6,
            "{what}: window {k} at {start}"
        );
        assert!(
            (end - start - 1.6).abs() < 1e-6,
            "{what}: window {k} is 1.6 s"
        );
    }
    let last_end = run.results.last().unwrap().2;
    assert!(
        (0.0..0.5).contains(&(sent_s - last_end)),
        "{what}: the last window ends at {last_end} of {sent_s} s"
    );
    let (warm, end) = run.rss;
    assert!(
        end <= warm + 8 * 1024,
        "{what}: gateway RSS {warm} KiB after 5 min of audio, {end} KiB after the hour"
    );
    eprintln!("{what}: {expected} windows, gateway RSS {warm} → {end} KiB");
}

/// Scenario: a conversation is long. One hour of 44.1 kHz stereo f32 through one session of
/// the gateway binary in embedded mode, as fast as it takes it ([`check_hour`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_long_conversation_in_one_session() {
    let _cpu = alone().await;
    let dir = tempfile::tempdir().unwrap();
    let (port, env) = embedded_env(dir.path());
    let gateway = Proc::spawn("gateway", &diglett_e2e::bin("diglett-gateway"), &[], &env);
    let addr = format!("127.0.0.1:{port}");
    wait_ready(&addr, Duration::from_secs(60)).await;
    let (status, created) = enroll_at(&addr, "ana", &speech(VOICES[0], 0, 5.0)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let run = hour_session(&addr, &id, gateway.pid(), f64::INFINITY, async || {}).await;
    check_hour(&run, "embedded");
}

/// The same hour over NATS with two workers, one of them restarted (SIGTERM, drained, a new one
/// started) half-way through: still every result, none dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_over_nats_with_a_worker_restart() {
    let _cpu = alone().await;
    let mut stack = Stack::start(2, &[]).await;
    let id = stack.enroll("ana", VOICES[0]).await;
    let env = base_env(&stack.nats.url(), &stack.redis.url());
    let mut old = stack.workers.remove(0);
    let (addr, pid) = (stack.addr.clone(), stack.gateway.pid());
    let restarted = std::sync::Arc::new(std::sync::Mutex::new(None));
    let slot = restarted.clone();
    let run = hour_session(&addr, &id, pid, 1800.0, async move || {
        old.terminate();
        assert!(
            old.wait(Duration::from_secs(30)).is_some(),
            "the worker drains and exits"
        );
        *slot.lock().unwrap() = Some(start_worker(&env));
    })
    .await;
    assert!(restarted.lock().unwrap().is_some(), "the restart happened");
    check_hour(&run, "over NATS, a worker restarted");
}

/// A NATS client of `user` (password `<user>-secret`, as in `docs/nats-authorization.conf`).
async fn as_user(user: &str, port: u16) -> async_nats::Client {
    async_nats::ConnectOptions::with_user_and_password(user.into(), format!("{user}-secret"))
        .connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap()
}

/// Whether `sub` gets a message within `limit`.
async fn receives(sub: &mut async_nats::Subscriber, limit: Duration) -> bool {
    tokio::time::timeout(limit, sub.next())
        .await
        .is_ok_and(|m| m.is_some())
}

/// A `nats-server -js` on 127.0.0.1:`port` with `extra` appended to its configuration file
/// (kept in `dir`, with the JetStream store).
fn configured_nats(dir: &std::path::Path, port: u16, extra: &str) -> Proc {
    let conf = dir.join("nats.conf");
    std::fs::write(
        &conf,
        format!(
            "port: {port}\nhost: 127.0.0.1\njetstream {{ store_dir: {:?} }}\n{extra}",
            dir.join("js").display().to_string()
        ),
    )
    .unwrap();
    Proc::spawn(
        "nats-server",
        &std::path::PathBuf::from("nats-server"),
        &["-c", conf.to_str().unwrap()],
        &std::collections::HashMap::new(),
    )
}

/// Scenario: NATS with authorization on, configured by `docs/nats-authorization.conf` (the
/// README's permissions): a gateway and a worker, each with its own user, serve an enrollment
/// and a session end to end, and a third user (`reader`) sees the session's results; a worker
/// cannot publish windows (a gateway can: the same subscriber gets those), and the reader
/// cannot publish at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorized_nats() {
    let _cpu = shared().await;
    let dir = tempfile::tempdir().unwrap();
    let port = diglett_e2e::free_port();
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/nats-authorization.conf"),
    )
    .unwrap();
    let _nats = configured_nats(dir.path(), port, &example);
    diglett_e2e::wait_for_port(port, Duration::from_secs(10));
    let url = |user: &str| format!("nats://{user}:{user}-secret@127.0.0.1:{port}");
    let redis = Redis::start();
    let mut env = base_env(&url("worker"), &redis.url());
    let _worker = start_worker(&env);
    env.insert("DIGLETT_NATS_URL".into(), url("gateway"));
    let (_gateway, addr) = start_gateway(&env);
    wait_ready(&addr, Duration::from_secs(60)).await;

    let reader = as_user("reader", port).await;
    let mut results = reader.subscribe("diglett.v1.results.>").await.unwrap();
    reader.flush().await.unwrap();
    let (status, created) = enroll_at(&addr, "ana", &speech(VOICES[0], 0, 5.0)).await;
    assert_eq!(
        status, 201,
        "enrollment through the gateway and worker users: {created}"
    );
    let id = created["id"].as_str().unwrap().to_owned();
    let t = quick_session(&addr, json!([id]), &speech(VOICES[0], 4, 5.0)).await;
    assert_eq!(t.close.as_ref().map(|c| c.0), Some(1000), "{:?}", t.close);
    let got = t.of_type("result");
    assert!(got.len() >= 6, "{got:?}");
    assert!(got.iter().filter(|r| r["speaker"] == "ana").count() * 10 >= got.len() * 7);
    assert!(
        receives(&mut results, Duration::from_secs(5)).await,
        "the reader sees results"
    );

    // A worker may subscribe to windows but not publish them; a gateway may.
    let worker = as_user("worker", port).await;
    let mut windows = worker.subscribe("diglett.v1.windows.*").await.unwrap();
    worker.flush().await.unwrap();
    let _ = worker
        .publish("diglett.v1.windows.forged", "x".into())
        .await;
    let _ = worker.flush().await;
    assert!(
        !receives(&mut windows, Duration::from_secs(1)).await,
        "a worker's window publish is refused"
    );
    let gateway = as_user("gateway", port).await;
    gateway
        .publish("diglett.v1.windows.probe", "x".into())
        .await
        .unwrap();
    gateway.flush().await.unwrap();
    assert!(
        receives(&mut windows, Duration::from_secs(5)).await,
        "the same subscriber gets a gateway's window"
    );
    // The reader publishes nothing, not even on the subjects it reads.
    // (On the forged subjects alone: a late duplicate of the session's results, from a window
    // re-published under load, must not pass for the reader's own publish.)
    let mut events = reader.subscribe("diglett.v1.events.forged").await.unwrap();
    let mut results = reader.subscribe("diglett.v1.results.forged").await.unwrap();
    reader.flush().await.unwrap();
    for subject in ["diglett.v1.events.forged", "diglett.v1.results.forged"] {
        let _ = reader.publish(subject, "x".into()).await;
    }
    let _ = reader.flush().await;
    assert!(
        !receives(&mut events, Duration::from_secs(1)).await,
        "reader publish refused"
    );
    assert!(
        !receives(&mut results, Duration::from_secs(1)).await,
        "reader publish refused"
    );
}

/// The schemathesis executable: `DIGLETT_SCHEMATHESIS`, else the virtualenv `scripts/test`
/// keeps under the cache.
fn schemathesis() -> std::path::PathBuf {
    let path = std::env::var_os("DIGLETT_SCHEMATHESIS").map_or_else(
        || {
            let home = std::env::var_os("HOME").expect("HOME is set");
            std::path::PathBuf::from(home).join(".cache/diglett/venv/bin/schemathesis")
        },
        std::path::PathBuf::from,
    );
    assert!(
        path.exists(),
        "schemathesis not found at {} (set DIGLETT_SCHEMATHESIS); ./scripts/test installs it \
         into a virtualenv under ~/.cache/diglett",
        path.display()
    );
    path
}

/// Scenario: a client generated from `/openapi.json` meets the server that published it.
/// schemathesis (PyPI) runs every phase (the document's examples, boundary coverage, random
/// fuzzing, and stateful sequences along the document's links from `POST /v1/speakers`) with all
/// of its checks against the embedded gateway: no 5xx, every status, content type, header and
/// body as documented, schema-valid requests accepted, schema-invalid ones refused, a deleted
/// profile gone. Generated uploads are swapped for real speech
/// (`tests/schemathesis/hooks.py`) so that profiles do get created and the links followed. Any
/// finding fails the test, with schemathesis's report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_what_the_server_does() {
    let _cpu = shared().await;
    let exe = schemathesis();
    let dir = tempfile::tempdir().unwrap();
    let (port, env) = embedded_env(dir.path());
    let gateway = Proc::spawn_logged(
        "gateway",
        &diglett_e2e::bin("diglett-gateway"),
        &env,
        &dir.path().join("gateway.log"),
    );
    let addr = format!("127.0.0.1:{port}");
    wait_ready(&addr, Duration::from_secs(60)).await;
    let speech_wav = dir.path().join("speech.wav");
    std::fs::write(&speech_wav, wav(&speech(VOICES[0], 0, 4.0))).unwrap();
    let hooks = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemathesis/hooks.py");
    let out = tokio::process::Command::new(&exe)
        .args(["run", &format!("http://{addr}/openapi.json")])
        .args(["--checks", "all", "--workers", "1", "--seed", "20261204"])
        .args(["--max-examples", "50", "--request-timeout", "30"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .env("SCHEMATHESIS_HOOKS", &hooks)
        .env("DIGLETT_SPEECH_WAV", &speech_wav)
        .env("NO_COLOR", "1")
        .current_dir(dir.path())
        .output()
        .await
        .expect("schemathesis runs");
    gateway.terminate();
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}"
    );
    // Every phase that can run ran, the stateful one along the document's links included.
    for phase in ["✅ Coverage", "✅ Fuzzing", "✅ Stateful"] {
        assert!(report.contains(phase), "{phase}:\n{report}");
    }
    assert!(report.contains(" passed"), "{report}");
}

/// A CA and a certificate for 127.0.0.1/localhost signed by it, made with `openssl` in `dir`:
/// `(ca.pem, server.pem, server.key)`.
fn self_signed_ca(dir: &std::path::Path) -> (String, String, String) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs (Debian package openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=Diglett test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("san.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.cnf",
        "-out",
        "server.pem",
    ]);
    let p = |f: &str| dir.join(f).display().to_string();
    (p("ca.pem"), p("server.pem"), p("server.key"))
}

/// Scenario: NATS and Redis over TLS with a private CA (made here by openssl). nats-server
/// requires TLS, Redis listens only on its TLS port; the worker and the gateway connect with
/// `tls://` and `rediss://` URLs and `DIGLETT_NATS_CA` / `DIGLETT_REDIS_CA`, and an enrollment
/// and a session work end to end. A gateway without the CA refuses the Redis server's
/// certificate and exits with the store error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_and_redis_over_tls() {
    let _cpu = shared().await;
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = self_signed_ca(dir.path());
    let nats_port = diglett_e2e::free_port();
    let _nats = configured_nats(
        dir.path(),
        nats_port,
        &format!("tls {{ cert_file: {cert:?}, key_file: {key:?} }}\n"),
    );
    let redis_port = diglett_e2e::free_port();
    let redis_port_s = redis_port.to_string();
    let _redis = Proc::spawn(
        "redis-server",
        &std::path::PathBuf::from("redis-server"),
        &[
            "--port",
            "0",
            "--tls-port",
            &redis_port_s,
            "--bind",
            "127.0.0.1",
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        &std::collections::HashMap::new(),
    );
    diglett_e2e::wait_for_port(nats_port, Duration::from_secs(10));
    diglett_e2e::wait_for_port(redis_port, Duration::from_secs(10));

    let nats_url = format!("tls://127.0.0.1:{nats_port}");
    let redis_url = format!("rediss://127.0.0.1:{redis_port}");
    let mut env = base_env(&nats_url, &redis_url);
    env.insert("DIGLETT_NATS_CA".into(), ca.clone());
    let _worker = start_worker(&env);

    // Without the CA, the gateway does not trust the Redis server and says so.
    let mut untrusting = env.clone();
    untrusting.insert(
        "DIGLETT_LISTEN".into(),
        format!("127.0.0.1:{}", diglett_e2e::free_port()),
    );
    let log = dir.path().join("untrusting.log");
    let mut g = Proc::spawn_logged(
        "gateway",
        &diglett_e2e::bin("diglett-gateway"),
        &untrusting,
        &log,
    );
    let code = g.wait(Duration::from_secs(30));
    assert!(
        code.is_some_and(|c| c != 0),
        "a gateway that cannot verify Redis exits: {code:?}"
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("redis") && text.to_lowercase().contains("certificate"),
        "it names the certificate problem:\n{text}"
    );

    env.insert("DIGLETT_REDIS_CA".into(), ca);
    let (_gateway, addr) = start_gateway(&env);
    wait_ready(&addr, Duration::from_secs(60)).await;
    let (status, created) = enroll_at(&addr, "ana", &speech(VOICES[0], 0, 5.0)).await;
    assert_eq!(status, 201, "enrollment over TLS: {created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let t = quick_session(&addr, json!([id]), &speech(VOICES[0], 4, 5.0)).await;
    assert_eq!(t.close.as_ref().map(|c| c.0), Some(1000), "{:?}", t.close);
    let got = t.of_type("result");
    assert!(got.len() >= 6, "{got:?}");
    assert!(got.iter().filter(|r| r["speaker"] == "ana").count() * 10 >= got.len() * 7);
}
