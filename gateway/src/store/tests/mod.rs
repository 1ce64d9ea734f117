//! Store tests. Every behavioural test body runs against both backends
//! (`redis_*` and `embedded_*`). Redis tests need a server at
//! `DIGLETT_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`) and fail,
//! rather than skip, when it is not there. Each Redis test uses its own random
//! key prefix and deletes every key under it when it ends, even on panic.

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::*;

mod pure;

// ---------- fixtures ----------

fn redis_url() -> String {
    std::env::var("DIGLETT_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Deletes every key under a test's private prefix when dropped (sync client,
/// so it also runs while a failed test unwinds).
struct RedisKeys {
    url: String,
    prefix: String,
}

impl RedisKeys {
    /// Every key under the prefix; `None` when Redis cannot be asked.
    fn try_keys(&self) -> Option<Vec<String>> {
        let client = ::redis::Client::open(self.url.as_str()).ok()?;
        let mut conn = client.get_connection().ok()?;
        let iter: ::redis::Iter<'_, String> = ::redis::cmd("SCAN")
            .cursor_arg(0)
            .arg("MATCH")
            .arg(format!("{}*", self.prefix))
            .arg("COUNT")
            .arg(1000)
            .clone()
            .iter(&mut conn)
            .ok()?;
        Some(iter.filter_map(Result::ok).collect())
    }

    fn keys(&self) -> Vec<String> {
        self.try_keys().expect("Redis answers SCAN")
    }
}

impl Drop for RedisKeys {
    fn drop(&mut self) {
        let Some(keys) = self.try_keys().filter(|k| !k.is_empty()) else {
            return;
        };
        if let Ok(mut conn) =
            ::redis::Client::open(self.url.as_str()).and_then(|c| c.get_connection())
        {
            let _: Result<i64, _> = ::redis::cmd("DEL").arg(&keys).query(&mut conn);
        }
    }
}

async fn redis_store() -> (Store, RedisKeys) {
    let url = redis_url();
    let prefix = format!("diglett:test:{}:", uuid::Uuid::new_v4().simple());
    let guard = RedisKeys {
        url: url.clone(),
        prefix: prefix.clone(),
    };
    let store = Store::connect_redis(&url, &prefix).await.unwrap_or_else(|e| {
        panic!(
            "these tests need a Redis server at {url} (set DIGLETT_TEST_REDIS_URL to change it); \
             connecting failed: {e}"
        )
    });
    assert_eq!(store.backend(), "redis");
    (store, guard)
}

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("diglett-store-test-{}", uuid::Uuid::new_v4()));
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn embedded_store() -> (Store, TempDir) {
    let dir = TempDir::new();
    let store = Store::open_embedded(&dir.0.join("nested")).await.unwrap();
    assert_eq!(store.backend(), "embedded");
    (store, dir)
}

/// Defines `redis_$name` and `embedded_$name`, running `$body(store)` on each.
macro_rules! both_backends {
    ($($name:ident => $body:ident;)*) => {
        mod redis_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (store, _keys) = super::redis_store().await;
                    super::$body(store).await;
                }
            )*
        }
        mod embedded_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (store, _dir) = super::embedded_store().await;
                    super::$body(store).await;
                }
            )*
        }
    };
}

both_backends! {
    create_get_list_delete => crud;
    embedding_round_trips_bit_exact => round_trip;
    add_sample_is_speech_weighted_mean => add_sample_math;
    concurrent_add_sample_loses_nothing => concurrent_add_sample;
    tenants_are_isolated => tenant_isolation;
    invalid_inputs_are_rejected => invalid_inputs;
    malformed_ids_are_not_found => malformed_ids;
    ping_succeeds => ping_ok;
    one_embedding_per_model => per_model;
}

// ---------- helpers ----------

/// A profile keeps one embedding per speaker model: created with both, it serves both; created
/// GE2E-only (as before models were versioned), it serves GE2E only until a sample with a
/// CAM++ embedding gives it one; a wrong-length CAM++ embedding is refused.
async fn per_model(store: Store) {
    let campp: Vec<f32> = vector(3)[..EMBEDDING_DIM_CAMPP].to_vec();
    let both = store
        .create_with("m", "Both", &vector(1), Some(&campp), 2.0)
        .await
        .unwrap();
    let got = store.get("m", &both.id).await.unwrap().unwrap();
    assert_eq!(got.models(), vec![SpeakerModel::Ge2e, SpeakerModel::Campp]);
    assert_close(got.campp.as_deref().unwrap(), &unit(&campp), 1e-6);
    assert_eq!(got.campp_speech_seconds, 2.0);

    let old = store.create("m", "Old", &vector(2), 3.0).await.unwrap();
    let got = store.get("m", &old.id).await.unwrap().unwrap();
    assert_eq!(got.models(), vec![SpeakerModel::Ge2e]);
    assert!(got.embedding_for(SpeakerModel::Campp).is_none());
    let campp2: Vec<f32> = vector(4)[..EMBEDDING_DIM_CAMPP].to_vec();
    let upd = store
        .add_sample_with("m", &old.id, &vector(5), Some(&campp2), 1.0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(upd.models(), vec![SpeakerModel::Ge2e, SpeakerModel::Campp]);
    assert_eq!((upd.speech_seconds, upd.campp_speech_seconds), (4.0, 1.0));
    let got = store.get("m", &old.id).await.unwrap().unwrap();
    assert_eq!(got, upd);
    assert_close(got.campp.as_deref().unwrap(), &unit(&campp2), 1e-6);

    assert_invalid(
        store
            .create_with("m", "Bad", &vector(1), Some(&vector(1)), 1.0)
            .await,
        "a 256-long CAM++ embedding",
    );
    assert_invalid(
        store
            .add_sample_with("m", &both.id, &vector(1), Some(&[0.0; 192]), 1.0)
            .await,
        "an all-zero CAM++ embedding",
    );
}

/// Deterministic pseudo-random vector (not normalised).
fn vector(seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    (0..EMBEDDING_DIM)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            #[allow(clippy::cast_precision_loss)]
            let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
            #[allow(clippy::cast_possible_truncation)]
            let v = (unit * 2.0 - 1.0) as f32;
            v
        })
        .collect()
}

fn norm(v: &[f32]) -> f64 {
    v.iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt()
}

fn unit(v: &[f32]) -> Vec<f64> {
    let n = norm(v);
    v.iter().map(|&x| f64::from(x) / n).collect()
}

/// Reference for incremental enrollment, in f64: start from the first sample
/// (normalised); each later sample is merged as the speech-weighted mean of the
/// current unit-length profile embedding (weight: speech so far) and the
/// normalised sample (weight: its speech), then re-normalised.
fn expected_enrollment(samples: &[(&[f32], f32)]) -> Vec<f64> {
    let (first, w0) = samples[0];
    let mut acc = unit(first);
    let mut total = f64::from(w0);
    for (v, w) in &samples[1..] {
        let w = f64::from(*w);
        let mixed: Vec<f64> = acc
            .iter()
            .zip(unit(v))
            .map(|(a, b)| (a * total + b * w) / (total + w))
            .collect();
        let n = mixed.iter().map(|x| x * x).sum::<f64>().sqrt();
        acc = mixed.iter().map(|x| x / n).collect();
        total += w;
    }
    acc
}

fn assert_close(actual: &[f32], expected: &[f64], tol: f64) {
    assert_eq!(actual.len(), expected.len());
    let worst = actual
        .iter()
        .zip(expected)
        .map(|(&a, &e)| (f64::from(a) - e).abs())
        .fold(0.0f64, f64::max);
    assert!(worst <= tol, "max abs deviation {worst} > {tol}");
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn assert_invalid<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) {
    match r {
        Err(StoreError::Invalid(_)) => {}
        other => panic!("{what}: expected Invalid, got {other:?}"),
    }
}

// ---------- shared test bodies ----------

async fn crud(store: Store) {
    let t = "acme";
    let before = now_ms();
    let alice = store.create(t, "Alice", &vector(1), 3.5).await.unwrap();
    assert!(is_profile_id(&alice.id), "id {} is not canonical", alice.id);
    assert_eq!(
        uuid::Uuid::parse_str(&alice.id).unwrap().get_version_num(),
        4
    );
    assert_eq!(alice.name, "Alice");
    assert_eq!(alice.samples, 1);
    assert_eq!(alice.speech_seconds.to_bits(), 3.5f32.to_bits());
    assert!(alice.created_at_ms >= before && alice.created_at_ms <= now_ms());
    assert_eq!(alice.created_at_ms, alice.updated_at_ms);
    assert!((norm(&alice.embedding) - 1.0).abs() < 1e-6);

    assert_eq!(store.get(t, &alice.id).await.unwrap(), Some(alice.clone()));

    let bob = store.create(t, "Bob", &vector(2), 1.0).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3)).await;
    let carol = store.create(t, "Carol", &vector(3), 2.0).await.unwrap();
    assert_ne!(alice.id, bob.id);

    let listed = store.list(t).await.unwrap();
    let mut expected = vec![alice.clone(), bob.clone(), carol.clone()];
    expected.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
    assert_eq!(
        listed, expected,
        "list must be ordered by created_at then id"
    );
    assert_eq!(listed.last().unwrap().id, carol.id);

    assert!(store.delete(t, &bob.id).await.unwrap());
    assert_eq!(store.get(t, &bob.id).await.unwrap(), None);
    assert!(
        !store.delete(t, &bob.id).await.unwrap(),
        "second delete finds nothing"
    );
    assert_eq!(
        store.add_sample(t, &bob.id, &vector(9), 1.0).await.unwrap(),
        None
    );
    let ids: Vec<String> = store
        .list(t)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert!(!ids.contains(&bob.id));
    assert_eq!(ids.len(), 2);

    assert!(store.delete(t, &alice.id).await.unwrap());
    assert!(store.delete(t, &carol.id).await.unwrap());
    assert!(store.list(t).await.unwrap().is_empty());
    assert!(store.list("never-used").await.unwrap().is_empty());
}

async fn round_trip(store: Store) {
    // Awkward values: tiny, huge-ish, negative zero, subnormal-adjacent.
    let mut raw = vector(7);
    raw[0] = -0.0;
    raw[1] = 1e-30;
    raw[2] = -123.456;
    raw[3] = f32::MIN_POSITIVE;
    let created = store
        .create("t1", "Round Trip ✓", &raw, 0.75)
        .await
        .unwrap();
    let fetched = store.get("t1", &created.id).await.unwrap().unwrap();
    assert_eq!(bits(&fetched.embedding), bits(&created.embedding));
    assert_eq!(fetched.name, "Round Trip ✓");
    let listed = store.list("t1").await.unwrap();
    assert_eq!(bits(&listed[0].embedding), bits(&created.embedding));
    // Stored is the normalised input.
    let n = norm(&raw);
    let expected: Vec<f64> = raw.iter().map(|&x| f64::from(x) / n).collect();
    assert_close(&created.embedding, &expected, 1e-7);
    // An embedding that is already unit-length comes back unchanged.
    let again = store
        .create("t1", "Again", &created.embedding, 1.0)
        .await
        .unwrap();
    assert_close(
        &again.embedding,
        &created
            .embedding
            .iter()
            .map(|&x| f64::from(x))
            .collect::<Vec<_>>(),
        1e-7,
    );
}

async fn add_sample_math(store: Store) {
    let t = "math";
    let e1 = vector(11);
    // Not unit length on purpose: the store normalises a sample before weighting it.
    let e2: Vec<f32> = vector(12).iter().map(|x| x * 3.0).collect();
    let p = store.create(t, "M", &e1, 2.0).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2)).await;
    let q = store.add_sample(t, &p.id, &e2, 1.0).await.unwrap().unwrap();
    assert_eq!(q.id, p.id);
    assert_eq!(q.name, "M");
    assert_eq!(q.samples, 2);
    assert_eq!(q.speech_seconds, 3.0);
    assert_eq!(q.created_at_ms, p.created_at_ms);
    assert!(q.updated_at_ms > p.updated_at_ms);
    assert!((norm(&q.embedding) - 1.0).abs() < 1e-6);
    // Two samples: exactly the speech-weighted mean of the two, normalised.
    let two = expected_enrollment(&[(&e1, 2.0), (&e2, 1.0)]);
    let direct: Vec<f64> = {
        let (u1, u2) = (unit(&e1), unit(&e2));
        let m: Vec<f64> = u1.iter().zip(&u2).map(|(a, b)| 2.0 * a + b).collect();
        let n = m.iter().map(|x| x * x).sum::<f64>().sqrt();
        m.iter().map(|x| x / n).collect()
    };
    assert!(two.iter().zip(&direct).all(|(a, b)| (a - b).abs() < 1e-12));
    assert_close(&q.embedding, &two, 1e-6);
    // The result moved from e1 toward e2, weighted 2:1.
    assert_eq!(store.get(t, &p.id).await.unwrap(), Some(q.clone()));

    let e3 = vector(13);
    let r = store.add_sample(t, &p.id, &e3, 0.5).await.unwrap().unwrap();
    assert_eq!(r.samples, 3);
    assert_eq!(r.speech_seconds, 3.5);
    assert_close(
        &r.embedding,
        &expected_enrollment(&[(&e1, 2.0), (&e2, 1.0), (&e3, 0.5)]),
        1e-6,
    );
}

async fn concurrent_add_sample(store: Store) {
    let t = "busy";
    let base = vector(100);
    let sample = vector(200);
    let p = store.create(t, "Busy", &base, 1.0).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = store.clone();
        let id = p.id.clone();
        let sample = sample.clone();
        tasks.push(tokio::spawn(async move {
            store.add_sample(t, &id, &sample, 0.25).await
        }));
    }
    for task in tasks {
        assert!(task.await.unwrap().unwrap().is_some());
    }
    let done = store.get(t, &p.id).await.unwrap().unwrap();
    assert_eq!(done.samples, 21);
    assert_eq!(done.speech_seconds, 6.0, "1.0 + 20 × 0.25, exact in f32");
    // Every task merged the same sample, so the result does not depend on the
    // order they landed in: a lost update would show as a too-small pull
    // toward the sample.
    let mut parts: Vec<(&[f32], f32)> = vec![(&base, 1.0)];
    parts.extend(std::iter::repeat_n((sample.as_slice(), 0.25), 20));
    assert_close(&done.embedding, &expected_enrollment(&parts), 1e-5);
    let mut lost_one = parts.clone();
    lost_one.pop();
    let missing = expected_enrollment(&lost_one);
    let gap = done
        .embedding
        .iter()
        .zip(&missing)
        .map(|(&a, b)| (f64::from(a) - b).abs())
        .fold(0.0f64, f64::max);
    assert!(
        gap > 1e-4,
        "test too weak to see one lost update (gap {gap})"
    );
}

async fn tenant_isolation(store: Store) {
    let a = store
        .create("tenant-a", "Secret", &vector(5), 2.0)
        .await
        .unwrap();
    let b = store
        .create("tenant_b", "Other", &vector(6), 2.0)
        .await
        .unwrap();

    assert_eq!(store.get("tenant_b", &a.id).await.unwrap(), None);
    assert_eq!(
        store
            .add_sample("tenant_b", &a.id, &vector(7), 1.0)
            .await
            .unwrap(),
        None
    );
    assert!(!store.delete("tenant_b", &a.id).await.unwrap());
    let b_list = store.list("tenant_b").await.unwrap();
    assert_eq!(b_list, vec![b.clone()]);
    // Tenant names that are prefixes of each other stay apart too.
    assert!(store.list("tenant").await.unwrap().is_empty());
    assert_eq!(store.get("tenant", &a.id).await.unwrap(), None);

    // A's profile is untouched by B's attempts.
    assert_eq!(store.get("tenant-a", &a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(store.list("tenant-a").await.unwrap(), vec![a.clone()]);
}

async fn invalid_inputs(store: Store) {
    let good = vector(1);
    let long = "x".repeat(65);
    for tenant in ["", "a:b", "a/b", "a*", "a b", "ünï", long.as_str()] {
        assert_invalid(store.create(tenant, "n", &good, 1.0).await, "create tenant");
        assert_invalid(store.list(tenant).await, "list tenant");
        assert_invalid(store.get(tenant, "x").await, "get tenant");
        assert_invalid(store.delete(tenant, "x").await, "delete tenant");
        assert_invalid(
            store.add_sample(tenant, "x", &good, 1.0).await,
            "add tenant",
        );
    }
    assert!(
        store.list(&"y".repeat(64)).await.is_ok(),
        "64 chars is allowed"
    );

    let mut nan = good.clone();
    nan[17] = f32::NAN;
    let mut inf = good.clone();
    inf[0] = f32::INFINITY;
    let zeros = vec![0.0f32; EMBEDDING_DIM];
    let short = vec![0.1f32; EMBEDDING_DIM - 1];
    let longer = vec![0.1f32; EMBEDDING_DIM + 1];
    let p = store.create("ok", "P", &good, 1.0).await.unwrap();
    for (bad, what) in [
        (&nan, "NaN"),
        (&inf, "inf"),
        (&zeros, "zeros"),
        (&short, "255 values"),
        (&longer, "257 values"),
    ] {
        assert_invalid(store.create("ok", "n", bad, 1.0).await, what);
        assert_invalid(store.add_sample("ok", &p.id, bad, 1.0).await, what);
    }
    assert_invalid(store.create("ok", "n", &[], 1.0).await, "empty");
    for s in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        assert_invalid(store.create("ok", "n", &good, s).await, "speech_seconds");
        assert_invalid(
            store.add_sample("ok", &p.id, &good, s).await,
            "speech_seconds",
        );
    }
    assert_invalid(store.create("ok", "", &good, 1.0).await, "empty name");
    assert_invalid(store.create("ok", "   ", &good, 1.0).await, "blank name");
    assert_invalid(
        store
            .create("ok", &"n".repeat(MAX_NAME_CHARS + 1), &good, 1.0)
            .await,
        "long name",
    );
    // Nothing was written by the rejected calls.
    assert_eq!(store.list("ok").await.unwrap(), vec![p.clone()]);
    assert_eq!(store.get("ok", &p.id).await.unwrap(), Some(p));
}

async fn malformed_ids(store: Store) {
    let p = store.create("ids", "P", &vector(3), 1.0).await.unwrap();
    let upper = p.id.to_uppercase();
    let braced = format!("{{{}}}", p.id);
    let simple = p.id.replace('-', "");
    for id in [
        "",
        "*",
        "x:y",
        "../x",
        "ids/x",
        upper.as_str(),
        braced.as_str(),
        simple.as_str(),
        "*:speaker:*",
    ] {
        assert_eq!(store.get("ids", id).await.unwrap(), None, "get {id:?}");
        assert!(!store.delete("ids", id).await.unwrap(), "delete {id:?}");
        assert_eq!(
            store.add_sample("ids", id, &vector(4), 1.0).await.unwrap(),
            None,
            "add_sample {id:?}"
        );
    }
    assert_eq!(store.get("ids", &p.id).await.unwrap(), Some(p));
}

async fn ping_ok(store: Store) {
    store.ping().await.unwrap();
}

// ---------- backend-specific tests ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_profiles_survive_reopen() {
    let dir = TempDir::new();
    let store = Store::open_embedded(&dir.0).await.unwrap();
    assert!(dir.0.join("profiles.redb").is_file());
    let kept = store.create("t", "Kept", &vector(1), 1.5).await.unwrap();
    let kept = store
        .add_sample("t", &kept.id, &vector(2), 0.5)
        .await
        .unwrap()
        .unwrap();
    let gone = store.create("t", "Gone", &vector(3), 1.0).await.unwrap();
    drop(store);

    let store = Store::open_embedded(&dir.0).await.unwrap();
    assert_eq!(store.get("t", &kept.id).await.unwrap(), Some(kept.clone()));
    assert_eq!(store.list("t").await.unwrap().len(), 2);
    assert!(store.delete("t", &gone.id).await.unwrap());
    drop(store);

    let store = Store::open_embedded(&dir.0).await.unwrap();
    assert_eq!(store.get("t", &gone.id).await.unwrap(), None);
    assert_eq!(store.list("t").await.unwrap(), vec![kept]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_open_fails_cleanly_on_a_file_path() {
    let dir = TempDir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let file = dir.0.join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    match Store::open_embedded(&file).await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_unreachable_is_unavailable_quickly() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let result = Store::connect_redis(&format!("redis://127.0.0.1:{port}"), "x:").await;
    let took = started.elapsed();
    match result {
        Err(StoreError::Unavailable(msg)) => assert!(msg.contains("redis"), "{msg}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_bad_url_is_unavailable() {
    match Store::connect_redis("not a url", "x:").await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_layout_matches_docs_and_delete_leaves_nothing() {
    let (store, keys) = redis_store().await;
    let p = store
        .create("lay", "Layout", &vector(8), 1.25)
        .await
        .unwrap();
    let hash_key = format!("{}lay:speaker:{}", keys.prefix, p.id);
    let index_key = format!("{}lay:speakers", keys.prefix);

    let client = ::redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let fields: std::collections::HashMap<String, Vec<u8>> = ::redis::cmd("HGETALL")
        .arg(&hash_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut names: Vec<&str> = fields.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "created_at_ms",
            "embedding",
            "name",
            "samples",
            "speech_seconds",
            "updated_at_ms"
        ]
    );
    assert_eq!(fields["name"], b"Layout");
    assert_eq!(fields["embedding"], embedding_to_bytes(&p.embedding));
    assert_eq!(fields["embedding"].len(), 1024);
    assert_eq!(fields["speech_seconds"], b"1.25");
    assert_eq!(fields["samples"], b"1");
    assert_eq!(
        fields["created_at_ms"],
        p.created_at_ms.to_string().as_bytes()
    );
    let score: f64 = ::redis::cmd("ZSCORE")
        .arg(&index_key)
        .arg(&p.id)
        .query_async(&mut conn)
        .await
        .unwrap();
    #[allow(clippy::cast_precision_loss)]
    let created = p.created_at_ms as f64;
    assert_eq!(score, created);
    assert_eq!(keys.keys().len(), 2, "one hash + one index");

    assert!(store.delete("lay", &p.id).await.unwrap());
    assert!(
        keys.keys().is_empty(),
        "delete must leave no key behind: {:?}",
        keys.keys()
    );
}

/// Layout 2 adds `embedding_campp` (768 bytes) and `campp_speech_seconds`, and a hash without
/// them (a profile made before models were versioned) is read as it is and gains them with its
/// next CAM++ sample: migration in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_campp_fields_and_old_hashes() {
    let (store, keys) = redis_store().await;
    let campp: Vec<f32> = vector(3)[..EMBEDDING_DIM_CAMPP].to_vec();
    let p = store
        .create_with("lay2", "L", &vector(8), Some(&campp), 1.5)
        .await
        .unwrap();
    let client = ::redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{}lay2:speaker:{}", keys.prefix, p.id);
    let fields: std::collections::HashMap<String, Vec<u8>> = ::redis::cmd("HGETALL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(fields["embedding_campp"].len(), 768);
    assert_eq!(
        fields["embedding_campp"],
        embedding_to_bytes(p.campp.as_deref().unwrap())
    );
    assert_eq!(fields["campp_speech_seconds"], b"1.5");
    // Strip them, as a hash written before versioning looks.
    let () = ::redis::cmd("HDEL")
        .arg(&key)
        .arg("embedding_campp")
        .arg("campp_speech_seconds")
        .query_async(&mut conn)
        .await
        .unwrap();
    let old = store.get("lay2", &p.id).await.unwrap().unwrap();
    assert_eq!(old.models(), vec![SpeakerModel::Ge2e]);
    assert_eq!(old.embedding, p.embedding);
    let upd = store
        .add_sample_with("lay2", &p.id, &vector(9), Some(&campp), 0.5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(upd.campp_speech_seconds, 0.5);
    let fields: std::collections::HashMap<String, Vec<u8>> = ::redis::cmd("HGETALL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(fields["campp_speech_seconds"], b"0.5");
    assert_eq!(store.get("lay2", &p.id).await.unwrap().unwrap(), upd);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_corrupt_profile_is_reported() {
    let (store, keys) = redis_store().await;
    let p = store.create("cor", "C", &vector(8), 1.0).await.unwrap();
    let client = ::redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let () = ::redis::cmd("HSET")
        .arg(format!("{}cor:speaker:{}", keys.prefix, p.id))
        .arg("embedding")
        .arg(&b"short"[..])
        .query_async::<i64>(&mut conn)
        .await
        .map(|_| ())
        .unwrap();
    match store.get("cor", &p.id).await {
        Err(StoreError::Corrupt { id, reason }) => {
            assert_eq!(id, p.id);
            assert!(reason.contains("embedding"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(matches!(
        store.add_sample("cor", &p.id, &vector(9), 1.0).await,
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        store.list("cor").await,
        Err(StoreError::Corrupt { .. })
    ));
    // A corrupt profile can still be deleted.
    assert!(store.delete("cor", &p.id).await.unwrap());
}
