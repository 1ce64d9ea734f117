//! The web page in a real browser: headless Chromium (Debian's `chromium` + `chromium-driver`)
//! with a fake microphone playing real speech from `shared/data`, driven over WebDriver.
//!
//! The gateway runs in embedded mode with API keys on, so the page's key handling (REST header,
//! WebSocket `?token=`) is exercised too. The test enrolls a voice through the page's own
//! buttons, streams a conversation from the same fake microphone, and checks the timeline:
//! windows of that voice carry its name, windows of the file's silences are `silence`. On the
//! way it cuts the page's connection (a relay between browser and gateway) and checks that the
//! page says so and reconnects, shows a server error frame in words, and deletes a profile.
//! Screenshots of both screens are written to `DIGLETT_SCREENSHOT_DIR` (default
//! `$CARGO_TARGET_TMPDIR/web-screenshots`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use common::{Gateway, Mode, speech, wav};
use serde_json::{Value, json};

const KEY: &str = "web-test-key-0123456789";
const NAME: &str = "Ada";
/// The fake microphone's file: speech, silence, more speech, silence (seconds), looped by Chromium.
const SPEECH_S: f32 = 8.0;
const SILENCE_S: f32 = 5.0;
/// How long the conversation is streamed.
const CONVERSATION: Duration = Duration::from_secs(30);

fn chromium_binaries() -> (PathBuf, PathBuf) {
    let chromium = std::env::var_os("DIGLETT_CHROMIUM")
        .map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from);
    let driver = std::env::var_os("DIGLETT_CHROMEDRIVER")
        .map_or_else(|| "/usr/bin/chromedriver".into(), PathBuf::from);
    assert!(
        chromium.exists() && driver.exists(),
        "the browser test needs Chromium and ChromeDriver: `apt-get install chromium chromium-driver` \
         (or set DIGLETT_CHROMIUM / DIGLETT_CHROMEDRIVER); ./scripts/test installs them when it runs as root"
    );
    (chromium, driver)
}

/// A `chromedriver` process, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start(binary: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if let Ok(r) = http.get(format!("{}/status", driver.url)).send().await
                && r.status().is_success()
            {
                return driver;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not answer on {}", driver.url);
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A W3C WebDriver session: the few commands this test needs, over plain HTTP.
struct Browser {
    http: reqwest::Client,
    base: String,
}

impl Browser {
    async fn open(driver: &Driver, chromium: &Path, profile: &Path, mic: &Path) -> Self {
        let http = reqwest::Client::new();
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1280,1100".into(),
            format!("--user-data-dir={}", profile.display()),
            "--use-fake-ui-for-media-stream".into(),
            "--use-fake-device-for-media-stream".into(),
            format!("--use-file-for-fake-audio-capture={}", mic.display()),
            "--autoplay-policy=no-user-gesture-required".into(),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let r: Value = http
            .post(format!("{}/session", driver.url))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {r}"));
        Self {
            http,
            base: format!("{}/session/{id}", driver.url),
        }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        self.try_cmd(method, path, body)
            .await
            .unwrap_or_else(|(err, message)| panic!("WebDriver {path}: {err}: {message}"))
    }

    /// A WebDriver command: its value, or (error, message).
    async fn try_cmd(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Result<Value, (String, String)> {
        let req = self.http.request(method, format!("{}{path}", self.base));
        let req = if body.is_null() { req } else { req.json(&body) };
        let r: Value = req.send().await.unwrap().json().await.unwrap();
        match r["value"].get("error") {
            Some(err) => Err((
                err.as_str().unwrap_or_default().to_owned(),
                r["value"]["message"].to_string(),
            )),
            None => Ok(r["value"].clone()),
        }
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap()
            .to_owned()
    }

    /// Clicks the element `css` selects. The page re-renders lists and buttons as it goes (the
    /// profile list after a refresh, a button turning into "Delete for good?"), so an element
    /// found just before it was replaced goes stale: then it is found again, for up to 5 s.
    async fn click(&self, css: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let el = self.find(css).await;
            let path = format!("/element/{el}/click");
            match self.try_cmd(reqwest::Method::POST, &path, json!({})).await {
                Ok(_) => return,
                Err((err, _))
                    if err == "stale element reference"
                        && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err((err, message)) => panic!("WebDriver click {css}: {err}: {message}"),
            }
        }
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{el}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// Runs `script` (a function body) in the page and returns its value.
    async fn js(&self, script: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// Polls `script` until it returns something truthy, at most `within`.
    async fn wait_for(&self, script: &str, within: Duration, what: &str) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let v = self.js(script).await;
            if !(v.is_null() || v == json!(false) || v == json!("")) {
                return v;
            }
            if tokio::time::Instant::now() > deadline {
                let page = self
                    .js("return document.body.innerText.slice(0, 2000)")
                    .await;
                panic!("timed out waiting for {what}; the page says:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the message box `id` (`error` or `notice`) is shown; returns its text.
    async fn shown(&self, id: &str, within: Duration, what: &str) -> String {
        let script =
            format!("const e = document.getElementById('{id}'); return !e.hidden && e.textContent");
        let v = self.wait_for(&script, within, what).await;
        v.as_str().unwrap().to_owned()
    }

    async fn screenshot(&self, path: &Path) {
        let v = self
            .cmd(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }

    async fn close(&self) {
        let _ = self.http.delete(&self.base).send().await;
    }
}

/// A TCP relay in front of the gateway whose connections the test can cut, as a network drop
/// would: the browser sees its WebSocket close without a close frame (1006).
struct Relay {
    addr: std::net::SocketAddr,
    cut: tokio::sync::watch::Sender<u32>,
}

impl Relay {
    async fn start(target: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, watch) = tokio::sync::watch::channel(0u32);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut cut = watch.clone();
                cut.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self { addr, cut }
    }

    /// Drops every open connection.
    fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }
}

fn screenshot_dir() -> PathBuf {
    let dir = std::env::var_os("DIGLETT_SCREENSHOT_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_enrolls_from_the_microphone_and_shows_who_speaks() {
    let (chromium, driver_bin) = chromium_binaries();
    // reqwest is built without a default TLS provider (the gateway links ring's).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();

    // The fake microphone: one voice, then silence, another stretch of it, silence; Chromium
    // loops the file. Digital silence gives windows at the −100 dBFS floor.
    let silence = vec![0f32; (SILENCE_S * 16_000.0) as usize];
    let mut audio = speech(0, 0, SPEECH_S);
    audio.extend_from_slice(&silence);
    audio.extend(speech(0, 4, SPEECH_S));
    audio.extend_from_slice(&silence);
    let mic = tmp.path().join("mic.wav");
    std::fs::write(&mic, wav(&audio, 16_000, 1)).unwrap();

    let mut gateway = Gateway::start(
        Mode::Embedded,
        &[("DIGLETT_API_KEYS", &format!("{KEY}=webtests"))],
    )
    .await;
    let relay = Relay::start(gateway.serve().await).await;
    let addr = relay.addr;
    let driver = Driver::start(&driver_bin).await;
    let browser = Browser::open(&driver, &chromium, &tmp.path().join("profile"), &mic).await;
    let shots = screenshot_dir();

    browser.goto(&format!("http://{addr}/")).await;
    // Without a key the page says one is needed.
    let error = browser
        .shown("error", Duration::from_secs(10), "the missing-key error")
        .await;
    assert!(error.contains("API key"), "{error}");
    browser.type_into("#api-key", KEY).await;
    browser.click("#save-key").await;
    browser
        .wait_for(
            "return document.getElementById('error').hidden",
            Duration::from_secs(10),
            "the error to clear once the key is set",
        )
        .await;

    // Every control has an accessible name (its label, text or aria-label).
    let unnamed = browser
        .js("return [...document.querySelectorAll('button, input, meter, [role=tab], [role=progressbar]')]
               .filter(e => !((e.labels && e.labels.length) || e.getAttribute('aria-label')
                              || e.getAttribute('aria-labelledby') || e.textContent.trim()))
               .map(e => e.outerHTML.slice(0, 80))")
        .await;
    assert_eq!(unnamed, json!([]), "controls without an accessible name");

    // Enroll through the page's own controls, from the fake microphone.
    browser.type_into("#speaker-name", NAME).await;
    browser.click("#record").await;
    let verdict = browser
        .wait_for(
            "return document.getElementById('verdict').dataset.verdict",
            Duration::from_secs(40),
            "the enrollment verdict",
        )
        .await;
    assert_eq!(verdict, "ok");
    let listed = browser
        .wait_for(
            "return [...document.querySelectorAll('#profiles .profile-name')].map(e => e.textContent).join(',')",
            Duration::from_secs(10),
            "the profile list",
        )
        .await;
    assert_eq!(listed, NAME);
    browser.screenshot(&shots.join("enroll.png")).await;

    // Converse: the enrolled voice is picked by default.
    browser.click("#tab-converse").await;
    let picked = browser
        .js("return [...document.querySelectorAll('#pick-list input:checked')].length")
        .await;
    assert_eq!(picked, 1);
    browser.click("#start").await;
    browser
        .wait_for(
            "return /Listening/.test(document.getElementById('session-state').textContent)",
            Duration::from_secs(20),
            "the session to start",
        )
        .await;
    // What the big "speaking now" display shows over time.
    let mut shown = std::collections::BTreeSet::new();
    let began = tokio::time::Instant::now();
    let until = began + CONVERSATION;
    let mut shot_taken = false;
    let mut cut = false;
    while tokio::time::Instant::now() < until {
        if !cut && began.elapsed() > Duration::from_secs(10) {
            // The network drops: the page says so and carries on in a new session.
            relay.cut();
            cut = true;
            let notice = browser
                .shown(
                    "notice",
                    Duration::from_secs(5),
                    "the connection-lost notice",
                )
                .await;
            assert!(notice.contains("Reconnecting"), "{notice}");
            browser
                .wait_for(
                    "return document.getElementById('notice').hidden \
                     && /Listening/.test(document.getElementById('session-state').textContent)",
                    Duration::from_secs(10),
                    "the page to reconnect",
                )
                .await;
        }
        let now = browser
            .js("const e = document.getElementById('now-speaker'); return e.dataset.label + ':' + e.textContent")
            .await;
        shown.insert(now.as_str().unwrap().to_owned());
        if !shot_taken && tokio::time::Instant::now() + Duration::from_secs(8) > until {
            browser.screenshot(&shots.join("converse.png")).await;
            shot_taken = true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let latency = browser
        .js("return document.getElementById('latency-text').textContent")
        .await;
    assert!(
        latency.as_str().unwrap().ends_with(" ms"),
        "no measured latency shown: {latency}"
    );
    browser.click("#stop").await;
    browser
        .wait_for(
            "return !document.getElementById('summary').hidden",
            Duration::from_secs(20),
            "the summary",
        )
        .await;
    browser
        .screenshot(&shots.join("converse-summary.png"))
        .await;

    let blocks = browser
        .js(
            "return [...document.querySelectorAll('#lane-windows .seg')].map(e => ({
               label: e.dataset.label, speaker: e.dataset.speaker,
               volume: parseFloat(e.dataset.volume), speech: parseFloat(e.dataset.speech)}))",
        )
        .await;
    let blocks = blocks.as_array().unwrap();
    let frames = browser
        .js(
            "return [...document.querySelectorAll('#lane-frames .seg')].map(e => ({
               label: e.dataset.label, speaker: e.dataset.speaker,
               start: parseFloat(e.dataset.start), end: parseFloat(e.dataset.end)}))",
        )
        .await;
    let frames = frames.as_array().unwrap().clone();
    let errors = browser
        .js("return document.getElementById('error').hidden ? '' : document.getElementById('error').textContent")
        .await;
    let summary = browser
        .js("return document.getElementById('summary-list').innerText")
        .await;
    let ada = browser
        .js("return document.querySelector('#profiles li').dataset.id")
        .await;

    // A server error frame becomes a readable message: the profile is deleted behind the
    // page's back, and starting with it gets `unknown_profile` (then a 1008 close).
    let (status, _) = gateway
        .delete(
            &format!("/v1/speakers/{}", ada.as_str().unwrap()),
            Some(KEY),
        )
        .await;
    assert_eq!(status.as_u16(), 204);
    browser.click("#start").await;
    let error = browser
        .shown(
            "error",
            Duration::from_secs(10),
            "the unknown-profile error",
        )
        .await;
    assert!(error.contains("no longer exists"), "{error}");
    browser
        .wait_for(
            "return !document.getElementById('start').disabled",
            Duration::from_secs(10),
            "the session to end after the error",
        )
        .await;

    // Deleting through the page (two steps: "Delete", then "Delete for good?").
    gateway.enroll("Bea", 1, Some(KEY)).await;
    browser.click("#tab-enroll").await;
    browser.click("#refresh-profiles").await;
    browser
        .wait_for(
            "return document.querySelector('#profiles li .danger')",
            Duration::from_secs(10),
            "Bea in the list",
        )
        .await;
    browser.click("#profiles li .danger").await;
    browser.click("#profiles li .danger").await;
    browser
        .wait_for(
            "return document.querySelectorAll('#profiles li').length === 0 \
             && !document.getElementById('profiles-empty').hidden",
            Duration::from_secs(10),
            "the list to be empty after deleting Bea",
        )
        .await;
    let (_, listed) = gateway.get("/v1/speakers", Some(KEY)).await;
    assert_eq!(listed["speakers"], json!([]), "{listed}");
    browser.close().await;
    drop(driver);
    gateway.stop().await;

    eprintln!(
        "shown: {shown:?}\nlatency: {latency}\nsummary: {summary}\nscreenshots in {}",
        shots.display()
    );
    assert_eq!(errors, "", "the page showed an error");
    // ~30 s at a 0.5 s hop.
    assert!(
        blocks.len() >= 40,
        "only {} results on the timeline",
        blocks.len()
    );
    let label = |b: &Value| b["label"].as_str().unwrap().to_owned();
    // Windows clearly inside speech (loud and mostly voiced) carry the enrolled voice.
    let voiced: Vec<&Value> = blocks
        .iter()
        .filter(|b| b["volume"].as_f64().unwrap() > -45.0 && b["speech"].as_f64().unwrap() >= 0.5)
        .collect();
    let named = voiced
        .iter()
        .filter(|b| label(b) == "speaker" && b["speaker"] == NAME)
        .count();
    assert!(voiced.len() >= 10, "too few voiced windows: {blocks:?}");
    // 80 %, not 90 %: the fake microphone runs in real time, so where the 1.6 s windows fall
    // against the phrases differs from run to run; windows straddling a phrase's fading end score
    // below the threshold (`unknown`). Runs on 2026-12-01/02 gave 25/28, 26/29 and ≥ 90 %, so a
    // 90 % bound failed about one run in two without any change. A broken pipeline, a wrong
    // speaker or a page that mislabels still fails this (it would be near 0 %).
    assert!(
        named as f64 >= 0.8 * voiced.len() as f64,
        "{named} of {} voiced windows show {NAME}: {blocks:?}",
        voiced.len()
    );
    // Windows wholly inside the file's silences (at the floor) are `silence`.
    let silent: Vec<&Value> = blocks
        .iter()
        .filter(|b| b["volume"].as_f64().unwrap() <= -90.0)
        .collect();
    assert!(silent.len() >= 3, "too few silent windows: {blocks:?}");
    assert!(
        silent.iter().all(|b| label(b) == "silence"),
        "a silent window was not `silence`: {blocks:?}"
    );
    // The frame lane: runs in time order that never overlap, cover most of the conversation
    // (all of it but each connection's last `latency_ms`, which a dropped connection never
    // decides) and show the voice and the silences.
    let num = |b: &Value, k: &str| b[k].as_f64().unwrap();
    assert!(
        frames
            .windows(2)
            .all(|p| num(&p[1], "start") >= num(&p[0], "end") - 0.005),
        "frame runs overlap or are out of order: {frames:?}"
    );
    let covered: f64 = frames.iter().map(|f| num(f, "end") - num(f, "start")).sum();
    let streamed = blocks.len() as f64 * 0.5;
    assert!(
        covered >= 0.8 * streamed,
        "frame runs cover {covered:.1} s of ~{streamed:.1} s: {frames:?}"
    );
    assert!(
        frames
            .iter()
            .any(|f| label(f) == "speaker" && f["speaker"] == NAME),
        "{frames:?}"
    );
    assert!(frames.iter().any(|f| label(f) == "silence"), "{frames:?}");
    // The big display showed the voice and the silence.
    assert!(shown.contains(&format!("speaker:{NAME}")), "{shown:?}");
    assert!(shown.contains("silence:Silence"), "{shown:?}");
    // The summary spans both connections: every result on the timeline is counted.
    let summary = summary.as_str().unwrap();
    assert!(summary.contains(NAME), "{summary}");
    assert!(
        summary.contains(&format!("Results\n{}", blocks.len())),
        "{summary} vs {} results on the timeline",
        blocks.len()
    );
}
