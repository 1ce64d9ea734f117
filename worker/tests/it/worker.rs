//! The worker against a real `nats-server`: enrollment, windows, batching, bad messages,
//! shutdown, the events stream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use diglett_decision::scoring::DecisionParams;
use diglett_model::compute::Compute;
use diglett_schemas::{
    EmbedOutcome, EmbedReply, EmbedRequest, EnrolledSpeaker, Enrollment, ErrorKind, Label,
    PartRequest, PcmPart, Verdict, WindowResult, codec, pcm, subjects,
};
use diglett_worker::embed_client::{EmbedOptions, embed_request, embed_request_with};
use diglett_worker::engine::{WindowInput, process_windows};
use futures_util::{FutureExt, StreamExt};

const TIMEOUT: Duration = Duration::from_secs(10);

fn enrollment(reply: EmbedReply) -> Enrollment {
    match reply.outcome {
        EmbedOutcome::Ok(e) => e,
        EmbedOutcome::Error(e) => panic!("embed failed: {e:?}"),
    }
}

fn embed_error(reply: EmbedReply) -> ErrorKind {
    match reply.outcome {
        EmbedOutcome::Error(e) => e.kind,
        EmbedOutcome::Ok(e) => panic!("expected an error, got {:?}", e.verdict),
    }
}

/// Sends a raw payload to `diglett.v1.embed` and decodes the reply.
async fn raw_embed(client: &async_nats::Client, payload: Vec<u8>) -> EmbedReply {
    let msg = tokio::time::timeout(TIMEOUT, client.request(subjects::EMBED, payload.into()))
        .await
        .expect("reply in time")
        .expect("reply");
    codec::decode(&msg.payload).expect("reply decodes")
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_real_utterance() {
    let mut h = Harness::start(config(&[])).await;
    let speaker = &speakers()[0];
    let wav = &speaker.utterances[0].1;
    let reply = embed_request(&h.client, &pcm::from_f32(wav), Some("Ada"))
        .await
        .expect("embed");
    let e = enrollment(reply);
    assert_eq!(e.verdict, Verdict::Ok);
    assert_eq!(e.name.as_deref(), Some("Ada"));
    assert!((e.duration_seconds - wav.len() as f32 / 16_000.0).abs() < 1e-3);
    assert!(e.speech_seconds > 2.0 && e.speech_seconds <= e.duration_seconds);
    assert!(
        e.loudness.dbfs > -40.0 && e.loudness.dbfs < -5.0,
        "{:?}",
        e.loudness
    );
    let emb = e.embedding.expect("embedding");
    assert_eq!(emb.len(), 256);
    assert!((norm(&emb) - 1.0).abs() < 1e-4);

    // The same as the model crate's enrollment path, called directly.
    let models = models();
    let compute = Compute::new(1).unwrap();
    let direct = diglett_worker::engine::process_enrollment(&models, &compute, wav);
    let direct = direct.embedding.unwrap();
    let cos: f32 = emb.iter().zip(&direct).map(|(a, b)| a * b).sum();
    assert!(cos > 0.9999, "cos {cos}");

    let metrics = h.metrics().await;
    assert_eq!(
        metric(&metrics, "diglett_worker_enrollments_total{verdict=\"ok\"}"),
        Some(1.0),
        "{metrics}"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_sixty_seconds_in_parts() {
    let mut h = Harness::start(config(&[])).await;
    let (mut wav, _) = enrollment_audio(&speakers()[0], 60.0);
    assert!(
        wav.len() >= 60 * 16_000,
        "speaker 0 has {} samples",
        wav.len()
    );
    wav.truncate(60 * 16_000);
    let bytes = pcm::from_f32(&wav);
    let max_payload = h.client.server_info().max_payload;
    assert!(
        bytes.len() > max_payload,
        "60 s must not fit in one message"
    );

    let e = enrollment(embed_request(&h.client, &bytes, None).await.expect("embed"));
    assert_eq!(e.verdict, Verdict::Ok);
    assert!((e.duration_seconds - 60.0).abs() < 1e-3);
    assert!(e.speech_seconds > 40.0, "{}", e.speech_seconds);
    let a = e.embedding.unwrap();

    // Many small parts give the same audio, hence the same embedding.
    let opts = EmbedOptions {
        part_bytes: Some(150_000),
        ..EmbedOptions::default()
    };
    let e2 = enrollment(
        embed_request_with(&h.client, &bytes, None, opts)
            .await
            .expect("embed"),
    );
    assert_eq!(e2.embedding.unwrap(), a);
    assert_eq!(e2.speech_seconds, e.speech_seconds);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_rejects_bad_requests() {
    let mut h = Harness::start(config(&[
        ("DIGLETT_MAX_ENROLL_SECONDS", "60"),
        ("DIGLETT_PART_TIMEOUT_MS", "300"),
    ]))
    .await;
    let c = &h.client;
    let base = EmbedRequest {
        v: 1,
        request_id: "r".into(),
        name: None,
        sample_rate: 16_000,
        total_samples: 2,
        parts: 1,
        parts_subject: None,
        pcm: vec![0; 4],
        expires_at_unix_ms: None,
    };
    let enc = |r: &EmbedRequest| codec::encode(r).unwrap();

    assert_eq!(
        embed_error(raw_embed(c, b"\x00garbage".to_vec()).await),
        ErrorKind::Malformed
    );
    assert_eq!(
        embed_error(
            raw_embed(
                c,
                enc(&EmbedRequest {
                    v: 9,
                    ..base.clone()
                })
            )
            .await
        ),
        ErrorKind::UnsupportedVersion
    );
    let long = EmbedRequest {
        total_samples: 61 * 16_000,
        ..base.clone()
    };
    assert_eq!(
        embed_error(raw_embed(c, enc(&long)).await),
        ErrorKind::TooLong
    );
    let odd = EmbedRequest {
        pcm: vec![0; 3],
        ..base.clone()
    };
    assert_eq!(
        embed_error(raw_embed(c, enc(&odd)).await),
        ErrorKind::BadPcm
    );
    let rate = EmbedRequest {
        sample_rate: 44_100,
        ..base.clone()
    };
    assert_eq!(
        embed_error(raw_embed(c, enc(&rate)).await),
        ErrorKind::BadPcm
    );
    let empty = EmbedRequest {
        total_samples: 0,
        pcm: vec![],
        ..base.clone()
    };
    assert_eq!(
        embed_error(raw_embed(c, enc(&empty)).await),
        ErrorKind::Empty
    );
    // A request taken after its client stopped waiting is not worked on.
    let stale = EmbedRequest {
        expires_at_unix_ms: Some(diglett_schemas::embed::unix_ms_now() - 60_000),
        ..base.clone()
    };
    assert_eq!(
        embed_error(raw_embed(c, enc(&stale)).await),
        ErrorKind::PartTimeout
    );

    // An over-long id is rejected, and echoed only as far as a valid id can go.
    let long_id = EmbedRequest {
        request_id: "i".repeat(200_000),
        ..base.clone()
    };
    let reply = raw_embed(c, enc(&long_id)).await;
    assert_eq!(
        reply.request_id,
        "i".repeat(diglett_worker::service::MAX_NAME_BYTES)
    );
    assert_eq!(embed_error(reply), ErrorKind::BadRequest);

    // 4096 samples = 8192 bytes: at most 2 parts of ≥ 4096 bytes.
    let chunked = EmbedRequest {
        total_samples: 4096,
        parts: 2,
        ..base.clone()
    };
    assert_eq!(
        embed_error(raw_embed(c, enc(&chunked)).await),
        ErrorKind::BadRequest,
        "no parts_subject"
    );
    let too_many = EmbedRequest {
        parts: 3,
        parts_subject: Some(c.new_inbox()),
        ..chunked.clone()
    };
    assert_eq!(
        embed_error(raw_embed(c, enc(&too_many)).await),
        ErrorKind::BadRequest,
        "more parts than 4096-byte parts need"
    );
    // The worker publishes part requests only to a client inbox: never to another service's
    // subject, a wildcard, or the JetStream API.
    let mut victim = c.subscribe("diglett.v1.results.victim").await.unwrap();
    for subject in [
        "diglett.v1.results.victim",
        "_INBOX.*",
        "_INBOX.>",
        "$JS.API.STREAM.DELETE.DIGLETT_EVENTS",
        "_INBOX",
    ] {
        let req = EmbedRequest {
            parts_subject: Some(subject.into()),
            ..chunked.clone()
        };
        assert_eq!(
            embed_error(raw_embed(c, enc(&req)).await),
            ErrorKind::BadRequest,
            "{subject}"
        );
    }
    // The worker would have published there before replying, on one ordered connection.
    diglett_worker::round_trip(c, TIMEOUT).await.unwrap();
    assert!(
        victim.next().now_or_never().is_none(),
        "published on a victim"
    );

    // Nobody answers the parts (a subscriber that never replies, so not NATS's instant
    // no-responders): the worker gives up after its part timeout.
    let orphan_subject = format!("{}.parts", c.new_inbox());
    let mut orphan_sub = c.subscribe(orphan_subject.clone()).await.unwrap();
    let orphan = EmbedRequest {
        parts_subject: Some(orphan_subject),
        ..chunked.clone()
    };
    assert_eq!(
        embed_error(raw_embed(c, enc(&orphan)).await),
        ErrorKind::PartTimeout
    );
    let asked = orphan_sub
        .next()
        .now_or_never()
        .flatten()
        .expect("asked for part 1");
    assert_eq!(
        codec::decode::<PartRequest>(&asked.payload).unwrap().index,
        1
    );

    // Parts that are empty, or odd (even where odd parts add up to whole samples), are bad
    // PCM. 6144 samples = 12 288 bytes: up to 3 parts.
    let cases: [(&str, usize, [usize; 2]); 3] = [
        ("empty part", 4096, [0, 8192]),
        ("odd parts adding up", 4096, [4095, 4097]),
        ("odd part 0", 4095, [4097, 4096]),
    ];
    for (what, part0, sizes) in cases {
        let subject = format!("{}.parts", c.new_inbox());
        let _server = serve_parts(c, &subject, move |index| {
            (Duration::ZERO, vec![0; sizes[index as usize - 1]])
        })
        .await;
        let req = EmbedRequest {
            total_samples: 6144,
            parts: 3,
            parts_subject: Some(subject),
            pcm: vec![0; part0],
            ..base.clone()
        };
        assert_eq!(
            embed_error(raw_embed(c, enc(&req)).await),
            ErrorKind::BadPcm,
            "{what}"
        );
    }

    // Valid requests with unusable audio get a verdict, not an error.
    let silence = vec![0.0f32; 3 * 16_000];
    let e = enrollment(
        embed_request(c, &pcm::from_f32(&silence), None)
            .await
            .unwrap(),
    );
    assert_eq!(e.verdict, Verdict::NoVoice);
    assert!(e.embedding.is_none());
    let wav = &speakers()[1].utterances[0].1;
    let clipped: Vec<f32> = wav.iter().map(|x| (x * 40.0).clamp(-1.0, 1.0)).collect();
    let e = enrollment(
        embed_request(c, &pcm::from_f32(&clipped), None)
            .await
            .unwrap(),
    );
    assert_eq!(e.verdict, Verdict::Clipped, "{}", e.clipped_fraction);
    let quiet: Vec<f32> = wav.iter().map(|x| x * 0.003).collect();
    let e = enrollment(
        embed_request(c, &pcm::from_f32(&quiet), None)
            .await
            .unwrap(),
    );
    assert_eq!(e.verdict, Verdict::TooQuiet, "{:?}", e.loudness);
    let short = &wav[..16_000];
    let e = enrollment(embed_request(c, &pcm::from_f32(short), None).await.unwrap());
    assert_eq!(e.verdict, Verdict::TooShort, "{}", e.speech_seconds);

    let metrics = h.metrics().await;
    assert_eq!(
        metric(&metrics, "diglett_worker_errors_total{kind=\"malformed\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &metrics,
            "diglett_worker_errors_total{kind=\"part_timeout\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        metric(&metrics, "diglett_worker_errors_total{kind=\"expired\"}"),
        Some(1.0)
    );
    h.shutdown().await;
}

/// Answers part requests on `subject` with `part(index)` = (delay, PCM bytes), until dropped.
async fn serve_parts(
    client: &async_nats::Client,
    subject: &str,
    part: impl Fn(u32) -> (Duration, Vec<u8>) + Send + 'static,
) -> AbortOnDrop {
    let mut sub = client.subscribe(subject.to_owned()).await.unwrap();
    let client = client.clone();
    AbortOnDrop(tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            let req: PartRequest = codec::decode(&msg.payload).unwrap();
            let (delay, pcm) = part(req.index);
            // A slow client: the delay is the behaviour under test, not synchronisation.
            tokio::time::sleep(delay).await;
            let reply = PcmPart {
                v: 1,
                request_id: req.request_id,
                index: req.index,
                pcm,
            };
            let _ = client
                .publish(msg.reply.unwrap(), codec::encode(&reply).unwrap().into())
                .await;
        }
    }))
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Slow clients (each part just inside the part timeout, 400 parts) are cut off by the overall
/// deadline, and meanwhile, and after, ordinary enrollments go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_chunked_uploads_hit_the_deadline() {
    let deadline = Duration::from_millis(1500);
    let mut h = Harness::start(config(&[
        ("DIGLETT_MAX_EMBEDS_IN_FLIGHT", "3"),
        ("DIGLETT_PART_TIMEOUT_MS", "1000"),
        ("DIGLETT_EMBED_DEADLINE_MS", "1500"),
    ]))
    .await;
    let c = h.client.clone();
    let (started_tx, mut started) = tokio::sync::mpsc::channel::<()>(8);
    let mut slow = Vec::new();
    let mut servers = Vec::new();
    for k in 0..2 {
        let subject = format!("{}.parts", c.new_inbox());
        let tx = started_tx.clone();
        servers.push(
            serve_parts(&c, &subject, move |index| {
                if index == 1 {
                    let _ = tx.try_send(());
                }
                (Duration::from_millis(200), vec![0; 4800])
            })
            .await,
        );
        // 60 s as 400 parts of 4800 bytes: 80 s at this pace without the deadline.
        let req = EmbedRequest {
            v: 1,
            request_id: format!("slow-{k}"),
            name: None,
            sample_rate: 16_000,
            total_samples: 400 * 2400,
            parts: 400,
            parts_subject: Some(subject),
            pcm: vec![0; 4800],
            expires_at_unix_ms: None,
        };
        let c = c.clone();
        slow.push(tokio::spawn(async move {
            let sent = Instant::now();
            let reply = raw_embed(&c, codec::encode(&req).unwrap()).await;
            (sent.elapsed(), reply)
        }));
    }
    // Both slow uploads hold a permit now.
    for _ in 0..2 {
        tokio::time::timeout(TIMEOUT, started.recv())
            .await
            .unwrap()
            .unwrap();
    }
    // A normal, chunked enrollment takes the third permit and finishes meanwhile.
    let (audio, _) = enrollment_audio(&speakers()[0], 8.0);
    let opts = EmbedOptions {
        part_bytes: Some(100_000),
        ..EmbedOptions::default()
    };
    let e = enrollment(
        embed_request_with(&c, &pcm::from_f32(&audio), None, opts)
            .await
            .unwrap(),
    );
    assert_eq!(e.verdict, Verdict::Ok);
    for task in slow {
        let (elapsed, reply) = task.await.unwrap();
        assert_eq!(embed_error(reply), ErrorKind::PartTimeout);
        // The deadline plus slack for a loaded machine; without it this takes 80 s.
        assert!(elapsed < deadline + Duration::from_secs(3), "{elapsed:?}");
    }
    drop(servers);
    h.shutdown().await;
}

/// Enrolls the first `n` speakers through the worker; returns them and the 1.6 s windows cut
/// from their other utterances (true speaker index, samples).
async fn enroll(
    client: &async_nats::Client,
    n: usize,
) -> (Vec<EnrolledSpeaker>, Vec<(usize, Vec<f32>)>) {
    let mut enrolled = Vec::new();
    let mut windows = Vec::new();
    for (i, s) in speakers().iter().take(n).enumerate() {
        let (audio, next) = enrollment_audio(s, 8.0);
        let e = enrollment(
            embed_request(client, &pcm::from_f32(&audio), Some(&s.id))
                .await
                .unwrap(),
        );
        assert_eq!(e.verdict, Verdict::Ok);
        enrolled.push(EnrolledSpeaker {
            id: s.id.clone(),
            name: Some(format!("speaker {}", s.id)),
            embedding: e.embedding.unwrap(),
        });
        for (_, wav) in &s.utterances[next..] {
            for w in wav.chunks_exact(25_600).take(2) {
                windows.push((i, w.to_vec()));
            }
        }
    }
    (enrolled, windows)
}

/// Collects `n` results from a subscription.
async fn collect(sub: &mut async_nats::Subscriber, n: usize) -> Vec<WindowResult> {
    let mut out: Vec<WindowResult> = Vec::with_capacity(n);
    while out.len() < n {
        let msg = tokio::time::timeout(TIMEOUT, sub.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} results in time", out.len()))
            .expect("subscription open");
        out.push(codec::decode(&msg.payload).expect("result decodes"));
    }
    out.sort_by_key(|r| r.seq);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_identify_enrolled_speakers() {
    let mut h = Harness::start(config(&[])).await;
    let (enrolled, windows) = enroll(&h.client, 3).await;
    let session = "sess-1";
    let mut results = h
        .client
        .subscribe(subjects::results(session).unwrap())
        .await
        .unwrap();
    // A second, independent subscriber on every session's results.
    let observer = connect(&h.server.url()).await;
    let mut all = observer.subscribe(subjects::RESULTS_ALL).await.unwrap();
    diglett_worker::round_trip(&observer, TIMEOUT)
        .await
        .unwrap();

    let mut sent = Vec::new();
    for (seq, (truth, w)) in windows.iter().enumerate() {
        let req = window(session, seq as u64, w, &enrolled);
        h.client
            .publish(
                subjects::windows(session).unwrap(),
                codec::encode(&req).unwrap().into(),
            )
            .await
            .unwrap();
        sent.push(*truth);
    }
    // Silence: digital zeros and faint noise.
    let zeros = vec![0.0f32; 25_600];
    let mut state = 12345u32;
    let hiss: Vec<f32> = (0..25_600)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (f32::from((state >> 16) as u16) / 65_536.0 - 0.5) * 2e-4
        })
        .collect();
    let n_speech = sent.len();
    for (k, w) in [zeros, hiss].iter().enumerate() {
        let req = window(session, (n_speech + k) as u64, w, &enrolled);
        h.client
            .publish(
                subjects::windows(session).unwrap(),
                codec::encode(&req).unwrap().into(),
            )
            .await
            .unwrap();
    }
    let n = n_speech + 2;
    let got = collect(&mut results, n).await;
    let seen = collect(&mut all, n).await;
    assert_eq!(got, seen, "the second subscriber sees every result");

    let mut correct = 0;
    let mut top1 = 0;
    let mut voiced = 0;
    for (r, &truth) in got[..n_speech].iter().zip(&sent) {
        assert_eq!(r.session, session);
        assert!((r.end - r.start - 1.6).abs() < 1e-9);
        if r.label == Label::Silence {
            continue;
        }
        voiced += 1;
        assert_eq!(r.scores.len(), 3);
        assert!(r.timing.processing_ms > 0.0);
        let best = r
            .scores
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.score.total_cmp(&b.1.score))
            .unwrap()
            .0;
        top1 += usize::from(best == truth);
        if r.label == Label::Speaker && r.speaker_id.as_deref() == Some(enrolled[truth].id.as_str())
        {
            correct += 1;
            assert_eq!(r.speaker_name, enrolled[truth].name);
        }
        // Never confidently the wrong person.
        if r.label == Label::Speaker {
            assert_eq!(
                r.speaker_id.as_deref(),
                Some(enrolled[truth].id.as_str()),
                "{r:?}"
            );
        }
    }
    eprintln!(
        "{n_speech} speech windows: {voiced} voiced, top-1 {top1}, labelled correctly {correct}"
    );
    assert!(voiced * 10 >= n_speech * 9, "{voiced}/{n_speech} voiced");
    assert!(top1 * 10 >= voiced * 9, "top-1 {top1}/{voiced}");
    assert!(correct * 10 >= voiced * 7, "correct {correct}/{voiced}");
    for r in &got[n_speech..] {
        assert_eq!(r.label, Label::Silence, "{r:?}");
        assert!(r.scores.is_empty() && r.speaker_id.is_none() && r.best_score.is_none());
        assert!(r.speech.voiced_fraction < DecisionParams::default().min_voiced);
    }
    assert!(got[n_speech].loudness.dbfs <= -99.0);

    let metrics = h.metrics().await;
    let silence = metric(&metrics, "diglett_worker_windows_total{label=\"silence\"}").unwrap();
    assert!(silence >= 2.0);
    assert!(metrics.contains("diglett_worker_batch_size_bucket"));
    assert!(metrics.contains("diglett_worker_queue_wait_seconds_bucket"));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_equals_unbatched() {
    // Directly: one batch of 12 against 12 batches of one.
    let models = models();
    let compute = Compute::new(2).unwrap();
    let enrolled: Vec<[f32; 256]> = (0..3)
        .map(|i| {
            let wav = &speakers()[i].utterances[0].1;
            diglett_worker::engine::process_enrollment(&models, &compute, wav)
                .embedding
                .unwrap()
        })
        .collect();
    let mut inputs = Vec::new();
    for s in speakers().iter().take(4) {
        for w in s.utterances[1].1.chunks_exact(25_600).take(3) {
            inputs.push(WindowInput {
                samples: w.to_vec(),
                model: diglett_schemas::SpeakerModel::Ge2e,
                speakers: enrolled.iter().map(|e| e.to_vec()).collect(),
                params: DecisionParams::default(),
                received: Instant::now(),
                deadline: None,
            });
        }
    }
    inputs.push(WindowInput {
        samples: vec![0.0; 25_600],
        ..inputs[0].clone()
    });
    let batched = process_windows(&models, &compute, &inputs);
    assert!(batched.iter().all(|o| o.batch_size == inputs.len()));
    for (input, b) in inputs.iter().zip(&batched) {
        let single = process_windows(&models, &compute, std::slice::from_ref(input));
        let s = &single[0];
        assert_eq!(s.decision, b.decision);
        assert_eq!(s.scores, b.scores);
        assert_eq!(
            (s.speech_mean, s.voiced_fraction),
            (b.speech_mean, b.voiced_fraction)
        );
        assert_eq!(s.loudness, b.loudness);
    }

    // Through NATS: a burst to a worker with batch 32 and a generous wait forms real batches,
    // and the results match unbatched processing.
    let mut h = Harness::start(config(&[("DIGLETT_BATCH_WAIT_MS", "50")])).await;
    let speakers_msg: Vec<EnrolledSpeaker> = enrolled
        .iter()
        .enumerate()
        .map(|(i, e)| EnrolledSpeaker {
            id: format!("s{i}"),
            name: None,
            embedding: e.to_vec(),
        })
        .collect();
    let mut sub = h
        .client
        .subscribe(subjects::results("b").unwrap())
        .await
        .unwrap();
    for (seq, input) in inputs.iter().enumerate() {
        let req = window("b", seq as u64, &input.samples, &speakers_msg);
        h.client
            .publish(
                subjects::windows("b").unwrap(),
                codec::encode(&req).unwrap().into(),
            )
            .await
            .unwrap();
    }
    let got = collect(&mut sub, inputs.len()).await;
    assert!(
        got.iter().any(|r| r.timing.batch_size > 1),
        "no batch formed"
    );
    for (r, b) in got.iter().zip(&batched) {
        let scores: Vec<f32> = r.scores.iter().map(|s| s.score).collect();
        assert_eq!(scores, b.scores);
        assert_eq!(r.best_score, b.decision.best_score);
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_windows_get_error_results() {
    let mut h = Harness::start(config(&[])).await;
    let session = "bad";
    let subject = subjects::windows(session).unwrap();
    let mut sub = h
        .client
        .subscribe(subjects::results(session).unwrap())
        .await
        .unwrap();
    let good_wav = speakers()[0].utterances[1].1[..25_600].to_vec();
    let speaker = EnrolledSpeaker {
        id: "a".into(),
        name: None,
        embedding: vec![1.0 / 16.0; 256],
    };
    let good = window(session, 5, &good_wav, std::slice::from_ref(&speaker));

    let mut cases: Vec<(Vec<u8>, ErrorKind)> = vec![(b"garbage".to_vec(), ErrorKind::Malformed)];
    let mut v9 = good.clone();
    v9.v = 9;
    cases.push((codec::encode(&v9).unwrap(), ErrorKind::UnsupportedVersion));
    let mut short = good.clone();
    short.pcm.truncate(1000);
    cases.push((codec::encode(&short).unwrap(), ErrorKind::BadPcm));
    let mut nan = good.clone();
    nan.speakers[0].embedding[3] = f32::NAN;
    cases.push((codec::encode(&nan).unwrap(), ErrorKind::BadEmbedding));
    let mut dim = good.clone();
    dim.speakers[0].embedding.pop();
    cases.push((codec::encode(&dim).unwrap(), ErrorKind::BadEmbedding));
    let mut other = good.clone();
    // Quoted in the error message, but only so far.
    other.session = "someone-else".repeat(20_000);
    cases.push((codec::encode(&other).unwrap(), ErrorKind::BadRequest));
    // The sender stopped waiting long ago: not computed.
    let mut stale = good.clone();
    stale.expires_at_unix_ms = Some(1);
    cases.push((codec::encode(&stale).unwrap(), ErrorKind::Expired));
    for (payload, _) in &cases {
        h.client
            .publish(subject.clone(), payload.clone().into())
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..cases.len() {
        let msg = tokio::time::timeout(TIMEOUT, sub.next())
            .await
            .unwrap()
            .unwrap();
        let r: WindowResult = codec::decode(&msg.payload).unwrap();
        assert_eq!(r.label, Label::Error);
        let error = r.error.unwrap();
        assert!(
            error.message.len() <= diglett_worker::service::MAX_MESSAGE_BYTES + 3,
            "{} bytes",
            error.message.len()
        );
        got.push(error.kind);
    }
    let mut expected: Vec<ErrorKind> = cases.iter().map(|c| c.1).collect();
    got.sort_by_key(|k| k.as_str());
    expected.sort_by_key(|k| k.as_str());
    assert_eq!(got, expected);

    // The worker is still fine, and computes a window whose sender still waits.
    let mut good = good;
    good.expires_at_unix_ms = Some(diglett_schemas::embed::unix_ms_now() + 60_000);
    h.client
        .publish(subject, codec::encode(&good).unwrap().into())
        .await
        .unwrap();
    let r = collect(&mut sub, 1).await.remove(0);
    assert_eq!(r.seq, 5);
    assert_ne!(r.label, Label::Error);

    let metrics = h.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "diglett_worker_errors_total{kind=\"bad_embedding\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        metric(&metrics, "diglett_worker_windows_total{label=\"error\"}"),
        Some(7.0)
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_every_accepted_window() {
    // Few permits, so most windows wait in the subscription when shutdown starts.
    let mut h = Harness::start(config(&[
        ("DIGLETT_MAX_IN_FLIGHT", "4"),
        ("DIGLETT_BATCH_SIZE", "4"),
    ]))
    .await;
    let n = 40;
    let mut sub = h.client.subscribe(subjects::RESULTS_ALL).await.unwrap();
    let wav = &speakers()[2].utterances[1].1;
    for seq in 0..n {
        let start = (seq as usize * 4000) % (wav.len() - 25_600);
        let req = window("drain", seq, &wav[start..start + 25_600], &[]);
        h.client
            .publish(
                subjects::windows("drain").unwrap(),
                codec::encode(&req).unwrap().into(),
            )
            .await
            .unwrap();
    }
    // Once this returns, the server has routed every window to the worker's connection.
    diglett_worker::round_trip(&h.client, TIMEOUT)
        .await
        .unwrap();
    h.shutdown().await;
    let got = collect(&mut sub, n as usize).await;
    let seqs: Vec<u64> = got.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (0..n).collect::<Vec<_>>());
    assert!(got.iter().all(|r| r.label != Label::Error));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_kept_in_the_events_stream() {
    let mut h = Harness::start(config(&[("DIGLETT_EVENTS_MAX_AGE_SECS", "3600")])).await;
    let js = async_nats::jetstream::new(h.client.clone());
    let mut stream = js
        .get_stream(subjects::EVENTS_STREAM)
        .await
        .expect("stream exists");
    let info = stream.info().await.unwrap();
    assert_eq!(info.config.max_age, Duration::from_secs(3600));
    assert_eq!(
        info.config.subjects,
        vec![
            subjects::RESULTS_ALL.to_owned(),
            subjects::EVENTS_ALL.to_owned()
        ]
    );
    let mut sub = h
        .client
        .subscribe(subjects::results("js").unwrap())
        .await
        .unwrap();
    let req = window("js", 0, &vec![0.0; 25_600], &[]);
    h.client
        .publish(
            subjects::windows("js").unwrap(),
            codec::encode(&req).unwrap().into(),
        )
        .await
        .unwrap();
    collect(&mut sub, 1).await;
    // The stream captured the result: replay it with an ordered consumer.
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: subjects::results("js").unwrap(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let msg = tokio::time::timeout(TIMEOUT, messages.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let r: WindowResult = codec::decode(&msg.payload).unwrap();
    assert_eq!(
        (r.session.as_str(), r.seq, r.label),
        ("js", 0, Label::Silence)
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_nats_restart() {
    let server = diglett_testkit::NatsServer::start_for_restarts();
    let mut h = Harness::start_on(server, config(&[])).await;
    let (tx, mut reconnected) = tokio::sync::mpsc::channel(4);
    let observer = async_nats::ConnectOptions::new()
        .max_reconnects(None)
        .event_callback(move |e| {
            let tx = tx.clone();
            async move {
                if matches!(e, async_nats::Event::Connected) {
                    let _ = tx.send(()).await;
                }
            }
        })
        .connect(h.server.url())
        .await
        .unwrap();
    // The first event is the initial connection.
    tokio::time::timeout(TIMEOUT, reconnected.recv())
        .await
        .unwrap()
        .unwrap();
    h.server.restart().expect("restart");
    tokio::time::timeout(TIMEOUT, reconnected.recv())
        .await
        .unwrap()
        .unwrap();
    // The worker's client reconnects on its own schedule: retry the request until it answers
    // (each try is a real round trip, not a sleep).
    let wav = &speakers()[0].utterances[0].1;
    let bytes = pcm::from_f32(&wav[..3 * 16_000]);
    let deadline = Instant::now() + TIMEOUT;
    let reply = loop {
        let opts = EmbedOptions {
            timeout: Duration::from_millis(500),
            ..Default::default()
        };
        match embed_request_with(&observer, &bytes, None, opts).await {
            Ok(r) => break r,
            Err(e) if Instant::now() < deadline => eprintln!("not yet: {e}"),
            Err(e) => panic!("worker did not come back: {e}"),
        }
    };
    assert!(matches!(reply.outcome, EmbedOutcome::Ok(_)));
    h.shutdown().await;
}

#[test]
fn config_errors_name_the_variable() {
    let env = HashMap::from([("DIGLETT_COMPUTE_THREADS", "many")]);
    let e = diglett_worker::Config::from_env(&env).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid DIGLETT_COMPUTE_THREADS=\"many\": expected an integer from 0 to 256"
    );
}
