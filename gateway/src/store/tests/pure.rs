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

/// A one-sample GE2E-only profile of 3 s, created and updated at 10 ms.
fn ge2e_profile(embedding: Vec<f32>) -> Profile {
    Profile {
        id: "x".into(),
        name: "n".into(),
        embedding,
        speech_seconds: 3.0,
        campp: None,
        campp_speech_seconds: 0.0,
        samples: 1,
        created_at_ms: 10,
        updated_at_ms: 10,
    }
}

#[test]
fn merge_sample_weights_by_speech() {
    let mut a = vec![0.0f32; EMBEDDING_DIM];
    a[0] = 1.0;
    let mut b = vec![0.0f32; EMBEDDING_DIM];
    b[1] = 1.0;
    let p = ge2e_profile(a);
    let sample = Sample {
        embedding: b,
        campp: None,
        speech_seconds: 1.0,
    };
    let m = merge_sample(p, &sample, 20).unwrap();
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
    let g = SpeakerModel::Ge2e;
    assert_eq!(bits(&embedding_from_bytes(&bytes, g).unwrap()), bits(&v));
    assert!(embedding_from_bytes(&bytes[..1020], g).is_err());
    let mut nan = bytes.clone();
    nan[..4].copy_from_slice(&f32::NAN.to_le_bytes());
    assert!(embedding_from_bytes(&nan, g).is_err());
    // A CAM++ embedding is 768 bytes; a GE2E one is not a CAM++ one.
    let c = &v[..EMBEDDING_DIM_CAMPP];
    let cb = embedding_to_bytes(c);
    assert_eq!(cb.len(), 768);
    assert_eq!(
        bits(&embedding_from_bytes(&cb, SpeakerModel::Campp).unwrap()),
        bits(c)
    );
    assert!(embedding_from_bytes(&bytes, SpeakerModel::Campp).is_err());
    assert!(embedding_from_bytes(&cb, g).is_err());
}

fn unit(dim: usize, at: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; dim];
    v[at] = 1.0;
    v
}

/// Each model's embedding is merged by its own speech; a profile without a CAM++ embedding
/// takes the sample's as its first; a sample without one leaves the profile's as it was.
#[test]
fn merge_sample_keeps_one_embedding_per_model() {
    let ge2e_only = ge2e_profile(unit(EMBEDDING_DIM, 0));
    assert_eq!(ge2e_only.models(), vec![SpeakerModel::Ge2e]);
    assert!(ge2e_only.embedding_for(SpeakerModel::Campp).is_none());
    let with = Sample {
        embedding: unit(EMBEDDING_DIM, 1),
        campp: Some(unit(EMBEDDING_DIM_CAMPP, 0)),
        speech_seconds: 1.0,
    };
    let m = merge_sample(ge2e_only, &with, 20).unwrap();
    assert_eq!(m.models(), vec![SpeakerModel::Ge2e, SpeakerModel::Campp]);
    assert_eq!(
        m.campp.as_deref(),
        Some(unit(EMBEDDING_DIM_CAMPP, 0).as_slice())
    );
    assert_eq!((m.speech_seconds, m.campp_speech_seconds), (4.0, 1.0));
    // The next CAM++ sample weighs 1 s against the profile's 1 s of CAM++ speech (not 4 s).
    let again = Sample {
        embedding: unit(EMBEDDING_DIM, 1),
        campp: Some(unit(EMBEDDING_DIM_CAMPP, 1)),
        speech_seconds: 1.0,
    };
    let m = merge_sample(m, &again, 30).unwrap();
    let c = m.campp.clone().unwrap();
    let h = 0.5f32.sqrt();
    assert!((c[0] - h).abs() < 1e-6 && (c[1] - h).abs() < 1e-6);
    assert_eq!((m.speech_seconds, m.campp_speech_seconds), (5.0, 2.0));
    // A sample from a worker without CAM++ changes only the GE2E embedding.
    let without = Sample {
        embedding: unit(EMBEDDING_DIM, 2),
        campp: None,
        speech_seconds: 2.0,
    };
    let m2 = merge_sample(m.clone(), &without, 40).unwrap();
    assert_eq!(m2.campp, m.campp);
    assert_eq!(m2.campp_speech_seconds, 2.0);
    assert_eq!(m2.speech_seconds, 7.0);
}

#[test]
fn embeddings_are_checked_against_their_model() {
    assert!(normalized_embedding(&vector(1), SpeakerModel::Ge2e).is_ok());
    assert!(normalized_embedding(&vector(1), SpeakerModel::Campp).is_err());
    assert!(normalized_embedding(&vector(1)[..192], SpeakerModel::Campp).is_ok());
}

/// Axum handlers need `Send` futures: checked at compile time, never run.
#[allow(dead_code, clippy::let_underscore_future)]
fn store_futures_are_send(store: &Store) {
    fn send<F: Future + Send>(_: F) {}
    send(store.create("t", "n", &[], 1.0));
    send(store.get("t", "i"));
    send(store.list("t"));
    send(store.add_sample("t", "i", &[], 1.0));
    send(store.add_sample_with("t", "i", &[], None, 1.0));
    send(store.create_with("t", "n", &[], None, 1.0));
    send(store.delete("t", "i"));
    send(store.ping());
    send(Store::connect_redis("u", "p"));
    send(Store::open_embedded(std::path::Path::new("d")));
}
