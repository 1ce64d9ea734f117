//! API keys and tenant isolation, in both modes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use std::time::Duration;

use axum::http::StatusCode;
use common::{Gateway, Mode, next_json, read_all, send_json, speech, wav, ws_connect};
use serde_json::json;

const KEY_A: &str = "acme-key-0123456789";
const KEY_B: &str = "globex-key-9876543210";

async fn tenants_are_isolated(mode: Mode) {
    let keys = format!("{KEY_A}=acme,{KEY_B}=globex");
    let mut gw = Gateway::start(mode, &[("DIGLETT_API_KEYS", &keys)]).await;

    // No key, a wrong key, or a key in the query string of a REST call: 401 with JSON.
    for key in [None, Some("wrong-key-000000000000")] {
        let (status, body) = gw.get("/v1/speakers", key).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    let (status, _) = gw.get(&format!("/v1/speakers?token={KEY_A}"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let audio = wav(&speech(0, 0, 3.0), 16_000, 1);
    let (status, _) = gw.embed(audio.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Health stays open.
    assert_eq!(gw.get("/healthz", None).await.0, StatusCode::OK);

    let a = gw.enroll("acme-person", 0, Some(KEY_A)).await;
    let (_, list) = gw.get("/v1/speakers", Some(KEY_A)).await;
    assert_eq!(list["speakers"].as_array().unwrap().len(), 1);

    // Globex sees nothing of acme's, even with the id.
    let (_, list) = gw.get("/v1/speakers", Some(KEY_B)).await;
    assert!(list["speakers"].as_array().unwrap().is_empty());
    let (status, _) = gw
        .get(&format!("/v1/speakers/{a}?include=embedding"), Some(KEY_B))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = gw.add_sample(&a, audio.clone(), Some(KEY_B)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = gw.verify(audio.clone(), &a, Some(KEY_B)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = gw.delete(&format!("/v1/speakers/{a}"), Some(KEY_B)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // …and the profile is still there for acme.
    let (status, _) = gw.get(&format!("/v1/speakers/{a}"), Some(KEY_A)).await;
    assert_eq!(status, StatusCode::OK);

    // WebSocket: refused without a key; the token parameter works; another tenant's profile
    // is an unknown profile.
    let addr = gw.serve().await;
    let refused = tokio_tungstenite::connect_async(format!("ws://{addr}/v1/stream")).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("expected 401, got {other:?}"),
    }
    let start =
        json!({"type":"start","audio":{"sample_rate":16000,"encoding":"pcm_s16le"},"speakers":[a]});
    let mut ws = ws_connect(addr, &format!("/v1/stream?token={KEY_B}")).await;
    send_json(&mut ws, start.clone()).await;
    let t = read_all(&mut ws, Duration::from_secs(20)).await;
    assert_eq!(t.of_type("error")[0]["code"], "unknown_profile");
    assert_eq!(t.close.as_ref().map(|c| c.0), Some(1008));
    let mut ws = ws_connect(addr, &format!("/v1/stream?token={KEY_A}")).await;
    send_json(&mut ws, start).await;
    assert_eq!(next_json(&mut ws).await["type"], "ready");
    drop(ws);

    // The header works on the WebSocket too.
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{addr}/v1/stream"),
    )
    .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {KEY_A}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    send_json(
        &mut ws,
        json!({"type":"start","audio":{"sample_rate":16000,"encoding":"pcm_s16le"},"speakers":[a]}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await["type"], "ready");
    drop(ws);

    // Acme deletes: gone.
    let (status, _) = gw.delete(&format!("/v1/speakers/{a}"), Some(KEY_A)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = gw.get(&format!("/v1/speakers/{a}"), Some(KEY_A)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    gw.stop().await;
}

both_modes!(tenants_are_isolated);
