//! Windows per second through a real NATS server, for 1 and 2 compute threads.
//!
//! ```text
//! cargo run --release -p diglett-worker --example throughput -- [WINDOWS] [THREADS...]
//! ```
//! Defaults: 1024 windows, threads 1 and 2 (repeat a count to run it again). Starts its own `nats-server` (or uses
//! `DIGLETT_NATS_URL` when set), runs the worker in-process with the default batch settings,
//! publishes every window of real speech (3 enrolled speakers) as fast as it can, and times
//! from the first publish to the last result. Then it sends 100 windows one at a time and
//! reports the publish-to-result round trip (the batcher's wait included).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use diglett_model::compute::Compute;
use diglett_schemas::{EnrolledSpeaker, WindowRequest, WindowResult, codec, pcm, subjects};
use diglett_testkit::NatsServer;
use diglett_worker::engine::process_enrollment;
use diglett_worker::{Config, Models};
use futures_util::StreamExt;

/// Windows sent one at a time for the latency figure.
const LATENCY_WINDOWS: usize = 100;

const SPEAKERS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/speakers");

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(1024), |a| a.parse())?;
    let mut threads: Vec<usize> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
    if threads.is_empty() {
        threads = vec![1, 2];
    }

    let models = Arc::new(Models::load()?);
    let speakers =
        diglett_audio::corpus::load_speakers(Path::new(SPEAKERS_DIR)).context("speakers")?;
    let compute = Compute::new(2)?;
    let enrolled: Vec<EnrolledSpeaker> = speakers
        .iter()
        .take(3)
        .map(|s| {
            let e = process_enrollment(&models, &compute, &s.utterances[0].1);
            EnrolledSpeaker {
                id: s.id.clone(),
                name: None,
                embedding: e.embedding.map(|e| e.to_vec()).unwrap_or_default(),
            }
        })
        .collect();
    let pool: Vec<&[f32]> = speakers
        .iter()
        .flat_map(|s| s.utterances[1..].iter())
        .flat_map(|(_, w)| w.chunks_exact(25_600))
        .collect();
    println!(
        "{} distinct speech windows, sending {n} per run",
        pool.len()
    );

    let _server;
    let url = match std::env::var("DIGLETT_NATS_URL") {
        Ok(url) => url,
        Err(_) => {
            let s = NatsServer::try_start()?;
            let url = s.url();
            _server = s;
            url
        }
    };

    for &t in &threads {
        let t_str = t.to_string();
        let env = HashMap::from([
            ("DIGLETT_COMPUTE_THREADS", t_str.as_str()),
            ("DIGLETT_METRICS_ADDR", "off"),
            ("DIGLETT_EVENTS_STREAM", "false"),
        ]);
        let config = Config::from_env(&env)?;
        let worker_client = async_nats::connect(&url).await?;
        let client = async_nats::connect(&url).await?;
        let mut worker = diglett_worker::spawn(worker_client, config, Some(Arc::clone(&models)));
        (&mut worker.ready).await?;

        let session = format!("bench-{t}");
        let mut results = client.subscribe(subjects::results(&session)?).await?;
        diglett_worker::round_trip(&client, Duration::from_secs(5))
            .await
            .map_err(|e| anyhow::anyhow!("round trip: {e}"))?;
        let payloads: Vec<bytes::Bytes> = (0..n)
            .map(|i| {
                let req = WindowRequest {
                    model: diglett_schemas::SpeakerModel::Ge2e,
                    v: 1,
                    session: session.clone(),
                    seq: i as u64,
                    start: i as f64 * 1.6,
                    sample_rate: 16_000,
                    pcm: pcm::from_f32(pool[i % pool.len()]),
                    speakers: enrolled.clone(),
                    params: Default::default(),
                    expires_at_unix_ms: None,
                };
                codec::encode(&req).map(bytes::Bytes::from)
            })
            .collect::<Result<_, _>>()?;
        let subject = subjects::windows(&session)?;
        let started = Instant::now();
        let publisher = {
            let client = client.clone();
            tokio::spawn(async move {
                for p in payloads {
                    client.publish(subject.clone(), p).await?;
                }
                client.flush().await?;
                anyhow::Ok(())
            })
        };
        let (mut batch_sum, mut proc_ms, mut wait_ms) = (0u64, 0f64, 0f64);
        for _ in 0..n {
            let msg = tokio::time::timeout(Duration::from_secs(120), results.next())
                .await?
                .context("results closed")?;
            let r: WindowResult = codec::decode(&msg.payload)?;
            batch_sum += u64::from(r.timing.batch_size);
            proc_ms += f64::from(r.timing.processing_ms);
            wait_ms += f64::from(r.timing.queue_wait_ms);
        }
        let elapsed = started.elapsed();
        publisher.await??;
        println!(
            "threads={t}: {n} windows in {:.2} s = {:.0} windows/s ({:.1}× real time); mean batch {:.1}, mean batch time {:.1} ms, mean queue wait {:.1} ms",
            elapsed.as_secs_f64(),
            n as f64 / elapsed.as_secs_f64(),
            n as f64 * 1.6 / elapsed.as_secs_f64(),
            batch_sum as f64 / n as f64,
            proc_ms / n as f64,
            wait_ms / n as f64,
        );
        // Latency at low load: one window at a time, publish to result.
        let mut rtts = Vec::with_capacity(LATENCY_WINDOWS);
        for i in 0..LATENCY_WINDOWS {
            let req = WindowRequest {
                model: diglett_schemas::SpeakerModel::Ge2e,
                v: 1,
                session: session.clone(),
                seq: (n + i) as u64,
                start: 0.0,
                sample_rate: 16_000,
                pcm: pcm::from_f32(pool[i % pool.len()]),
                speakers: enrolled.clone(),
                params: Default::default(),
                expires_at_unix_ms: None,
            };
            let payload = bytes::Bytes::from(codec::encode(&req)?);
            let sent = Instant::now();
            client
                .publish(subjects::windows(&session)?, payload)
                .await?;
            tokio::time::timeout(Duration::from_secs(10), results.next())
                .await?
                .context("results closed")?;
            rtts.push(sent.elapsed().as_secs_f64() * 1e3);
        }
        rtts.sort_by(f64::total_cmp);
        println!(
            "threads={t}: one window at a time ({LATENCY_WINDOWS}): round trip p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms",
            rtts[rtts.len() / 2],
            rtts[rtts.len() * 9 / 10],
            rtts[rtts.len() - 1],
        );
        worker
            .stop(Duration::from_secs(60))
            .await
            .ok_or_else(|| anyhow::anyhow!("the worker did not stop within 60 s"))??;
    }
    Ok(())
}
