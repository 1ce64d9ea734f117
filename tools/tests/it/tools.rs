//! The tools' binaries against a real gateway in embedded mode (in-process worker, redb in a
//! temporary folder, served on a free port): `diglett-load` for 2 streams × 3 s,
//! `diglett-eval conversation` on the first 20 s of `sample.wav` (`--fast`),
//! `diglett-eval speakers` on two speakers of `data/speakers`, and `diglett-load report`.
//! Behaviour, not timing: sane, self-consistent JSON.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::Path;

use diglett_gateway::{Config, StartOptions};
use serde_json::Value;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data");

/// Runs a tool; returns (exit code, stdout, stderr).
async fn tool(bin: &str, args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(bin)
        .args(args)
        .env_remove("DIGLETT_URL")
        .env_remove("DIGLETT_API_KEY")
        .output()
        .await
        .unwrap_or_else(|e| panic!("{bin}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn share(v: &Value) -> f64 {
    let x = v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
    assert!((0.0..=1.0).contains(&x), "{x} is not a share");
    x
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_against_an_embedded_gateway() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let env: HashMap<String, String> = HashMap::from([
        ("DIGLETT_LISTEN".into(), "127.0.0.1:0".into()),
        ("DIGLETT_DATA_DIR".into(), data_dir.display().to_string()),
        ("DIGLETT_COMPUTE_THREADS".into(), "1".into()),
    ]);
    let config = Config::from_env(&env).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (state, _exit) = diglett_gateway::start(config, StartOptions::default())
        .await
        .expect("gateway starts");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(diglett_gateway::serve(listener, state, async {
        let _ = stopped.await;
    }));
    let (load, eval) = (
        env!("CARGO_BIN_EXE_diglett-load"),
        env!("CARGO_BIN_EXE_diglett-eval"),
    );
    let speakers_dir = format!("{DATA}/speakers");

    // ---- diglett-load: 2 streams × 3 s, watching this process (the gateway runs in it).
    let load_json = tmp.path().join("load.json");
    let (code, out, err) = tool(
        load,
        &[
            "--url",
            &url,
            "--streams",
            "2",
            "--duration",
            "3",
            "--speakers-dir",
            &speakers_dir,
            "--proc",
            &format!("gateway={}", std::process::id()),
            "--label",
            "test",
            "--json",
            load_json.to_str().unwrap(),
            "--limit-p99-ms",
            "10000",
        ],
    )
    .await;
    assert_eq!(code, 0, "diglett-load: {out}{err}");
    let r = json(&load_json);
    assert_eq!(r["streams"], 2);
    assert_eq!(r["sessions_ok"], 2, "{r}");
    assert_eq!(r["sessions_failed"], 0);
    // 3 s at hop 0.5 s: windows at 0, 0.5 and 1.0 s (1.6 s each) per session.
    assert_eq!(r["windows_expected"], 6);
    assert_eq!(r["results"], 6);
    assert_eq!(
        (r["dropped"].as_u64(), r["missing"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(r["latency_ms"]["count"], 6);
    let p50 = r["latency_ms"]["p50"].as_f64().unwrap();
    assert!(p50 > 0.0 && p50 <= r["latency_ms"]["max"].as_f64().unwrap());
    let procs = r["processes"].as_array().unwrap();
    let gw = procs
        .iter()
        .find(|p| p["label"] == "gateway")
        .expect("gateway watched");
    assert!(gw["rss_peak_mib"].as_f64().unwrap() > 1.0, "{gw}");
    assert!(procs.iter().any(|p| p["label"] == "diglett-load"));
    assert!(r["gateway_kib_per_stream"].is_number());
    // The gateway's own counter agrees with what the client received.
    let metrics = &r["metrics"][format!("{url}/metrics")];
    assert_eq!(
        metrics["counters"]["diglett_gateway_results_total"].as_f64(),
        Some(6.0),
        "{metrics}"
    );
    assert!(out.contains("latency"), "{out}");
    // Per-stage timings: the in-process worker's histograms are on the gateway's /metrics.
    let typed: diglett_tools::load::Report =
        serde_json::from_str(&std::fs::read_to_string(&load_json).unwrap()).unwrap();
    let wait = diglett_tools::report::stage_mean(&typed, "diglett_worker_queue_wait_seconds");
    assert!(wait.is_some_and(|w| w >= 0.0), "{metrics}");

    // ---- diglett-load report: the table and the plot.
    let (md, png) = (tmp.path().join("load.md"), tmp.path().join("load.png"));
    let (code, out, err) = tool(
        load,
        &[
            "report",
            load_json.to_str().unwrap(),
            "--markdown",
            md.to_str().unwrap(),
            "--png",
            png.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(code, 0, "report: {out}{err}");
    let table = std::fs::read_to_string(&md).unwrap();
    assert!(table.contains("| test | 2 |"), "{table}");
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));

    // ---- diglett-eval conversation: the first 20 s of sample.wav, as fast as served.
    let conv_json = tmp.path().join("conversation.json");
    let (code, out, err) = tool(
        eval,
        &[
            "--url",
            &url,
            "--json",
            conv_json.to_str().unwrap(),
            "conversation",
            &format!("{DATA}/conversation/sample.wav"),
            &format!("{DATA}/conversation/sample.rttm"),
            "--fast",
            "--max-seconds",
            "20",
        ],
    )
    .await;
    assert_eq!(code, 0, "diglett-eval conversation: {out}{err}");
    let c = json(&conv_json);
    assert_eq!(c["seconds"], 20.0);
    // (20 s − 1.6 s) / 0.5 s + 1 whole windows.
    assert_eq!(
        (c["windows"].as_u64(), c["dropped"].as_u64()),
        (Some(37), Some(0))
    );
    assert!(
        c["turns"].as_u64().unwrap() >= 2,
        "two voices make at least two turns"
    );
    let speakers = c["speakers"].as_array().unwrap();
    assert_eq!(speakers.len(), 2);
    assert!(speakers.iter().all(|s| s["verdict"] == "ok"), "{c}");
    let timelines = c["timelines"].as_array().unwrap();
    // The frame timeline first, then raw windows and smoothed turns, each also as shown live.
    assert_eq!(timelines.len(), 5);
    assert_eq!(timelines[0]["name"], "frame timeline", "{c}");
    for t in timelines {
        let parts = share(&t["single_right"])
            + share(&t["single_wrong"])
            + share(&t["single_overlap"])
            + share(&t["single_missed"]);
        assert!((parts - 1.0).abs() < 1e-9, "{t}");
        share(&t["nonspeech_false_alarm"]);
        share(&t["accuracy"]);
    }
    // The model gets ~88% of these frames right offline; far less means a broken pipeline.
    assert!(share(&timelines[0]["single_right"]) > 0.6, "{c}");
    assert!(share(&timelines[1]["single_right"]) > 0.6, "{c}");
    // Without real-time pacing a raw label is known 0.8 s after the window's centre.
    assert!((c["raw_label_delay_s"]["mean"].as_f64().unwrap() - 0.8).abs() < 1e-6);
    assert!(out.contains("| raw windows |"), "{out}");

    // ---- diglett-eval conversations: two recordings (RTTM beside each), pooled.
    let convs_json = tmp.path().join("conversations.json");
    let (code, out, err) = tool(
        eval,
        &[
            "--url",
            &url,
            "--json",
            convs_json.to_str().unwrap(),
            "conversations",
            &format!("{DATA}/conversation/sample.wav"),
            &format!("{DATA}/meetings/trn00.wav"),
            "--fast",
            "--max-seconds",
            "12",
            "--latency-ms",
            "1000",
        ],
    )
    .await;
    assert_eq!(code, 0, "diglett-eval conversations: {out}{err}");
    let reports = json(&convs_json);
    let reports = reports.as_array().unwrap();
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert!(reports.iter().all(|r| r["seconds"] == 12.0), "{reports:?}");
    assert!(
        out.contains("sample.wav") && out.contains("trn00.wav"),
        "{out}"
    );
    assert!(out.contains("| **pooled** |"), "the pooled row: {out}");

    // ---- diglett-eval speakers: two speakers, three utterances each.
    let corpus = tmp.path().join("speakers");
    for id in ["1688", "1998"] {
        let dir = corpus.join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let mut files: Vec<_> = std::fs::read_dir(format!("{speakers_dir}/{id}"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files.iter().take(3) {
            std::os::unix::fs::symlink(f, dir.join(f.file_name().unwrap())).unwrap();
        }
    }
    let spk_json = tmp.path().join("speakers.json");
    let (code, out, err) = tool(
        eval,
        &[
            "--url",
            &url,
            "--json",
            spk_json.to_str().unwrap(),
            "speakers",
            corpus.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(code, 0, "diglett-eval speakers: {out}{err}");
    let s = json(&spk_json);
    let trials = s["trials"].as_u64().unwrap();
    assert!(trials > 10, "{s}");
    assert_eq!(
        s["expected_trials"].as_u64(),
        Some(trials),
        "no window lost"
    );
    assert!(share(&s["identification"]) > 0.5, "{s}");
    assert!(share(&s["eer"]) < 0.5, "{s}");
    assert_eq!(s["speakers"].as_array().unwrap().len(), 2);

    // Every profile the tools enrolled was deleted.
    let client = diglett_client::Client::new(&url, None).unwrap();
    assert!(client.speakers().await.unwrap().0.is_empty());

    // ---- bad input: exit code 2 and one line.
    let (code, _, err) = tool(
        eval,
        &[
            "--url",
            &url,
            "conversation",
            "/nonexistent.wav",
            "/nonexistent.rttm",
        ],
    )
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("/nonexistent.wav"), "{err}");

    let _ = stop.send(());
    let _ = server.await;
}
