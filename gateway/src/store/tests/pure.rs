//! The store's pure functions: validation, id rules, the merge, the byte form.

use super::*;

#[test]
fn tenant_rules() {
    for ok in ["a", "A-b_9", &"z".repeat(64)] {
        assert!(validate_tenant(ok).is_ok(), "{ok}");
    }
    for bad in ["", "a:b", "a.b", "a/b", &"z".repeat(65)] {
        assert!(validate_tenant(bad).is_err(), "{bad}");
    }
}

#[test]
fn profile_ids_must_be_canonical_uuids() {
    let id = uuid::Uuid::new_v4().hyphenated().to_string();
    assert!(is_profile_id(&id));
    assert!(!is_profile_id(&id.to_uppercase()));
    assert!(!is_profile_id(&id.replace('-', "")));
    assert!(!is_profile_id(&format!("urn:uuid:{id}")));
    assert!(!is_profile_id("*"));
}

#[test]
fn merge_sample_weights_by_speech() {
    let mut a = vec![0.0f32; EMBEDDING_DIM];
    a[0] = 1.0;
    let mut b = vec![0.0f32; EMBEDDING_DIM];
    b[1] = 1.0;
    let p = Profile {
        id: "x".into(),
        name: "n".into(),
        embedding: a,
        speech_seconds: 3.0,
        samples: 1,
        created_at_ms: 10,
        updated_at_ms: 10,
    };
    let m = merge_sample(p, &b, 1.0, 20).unwrap();
    // mean = (3·e0 + 1·e1)/4 → normalised (3, 1)/√10
    let s = 10f32.sqrt();
    assert!((m.embedding[0] - 3.0 / s).abs() < 1e-7);
    assert!((m.embedding[1] - 1.0 / s).abs() < 1e-7);
    assert!(m.embedding[2..].iter().all(|&x| x == 0.0));
    assert_eq!(m.speech_seconds, 4.0);
    assert_eq!(m.samples, 2);
    assert_eq!(m.updated_at_ms, 20);
    assert_eq!(m.created_at_ms, 10);
}

#[test]
fn embedding_bytes_round_trip() {
    let v = vector(42);
    let bytes = embedding_to_bytes(&v);
    assert_eq!(bytes.len(), 1024);
    assert_eq!(&bytes[..4], &v[0].to_le_bytes());
    assert_eq!(bits(&embedding_from_bytes(&bytes).unwrap()), bits(&v));
    assert!(embedding_from_bytes(&bytes[..1020]).is_err());
    let mut nan = bytes.clone();
    nan[..4].copy_from_slice(&f32::NAN.to_le_bytes());
    assert!(embedding_from_bytes(&nan).is_err());
}

/// Axum handlers need `Send` futures: checked at compile time, never run.
#[allow(dead_code, clippy::let_underscore_future)]
fn store_futures_are_send(store: &Store) {
    fn send<F: Future + Send>(_: F) {}
    send(store.create("t", "n", &[], 1.0));
    send(store.get("t", "i"));
    send(store.list("t"));
    send(store.add_sample("t", "i", &[], 1.0));
    send(store.delete("t", "i"));
    send(store.ping());
    send(Store::connect_redis("u", "p"));
    send(Store::open_embedded(std::path::Path::new("d")));
}
