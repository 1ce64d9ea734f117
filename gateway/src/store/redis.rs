//! Redis backend of the profile store.
//!
//! # Layout
//!
//! `{prefix}` defaults to `diglett:v1:`; `{tenant}` is 1–64 characters of
//! `[A-Za-z0-9_-]`; `{id}` is a lowercase hyphenated UUID v4.
//!
//! * Hash `{prefix}{tenant}:speaker:{id}` — one profile:
//!   * `name` — UTF-8 display name
//!   * `embedding` — the GE2E embedding: 256 little-endian f32 (1024 bytes), L2-normalised
//!   * `speech_seconds` — decimal f32, total speech over all samples
//!   * `embedding_campp` — the CAM++ embedding: 192 little-endian f32 (768 bytes),
//!     L2-normalised; and `campp_speech_seconds`, decimal f32, the speech behind it. Both
//!     absent from a profile made before models were versioned (GE2E only): such a hash
//!     stays valid as it is, and its next sample adds them (migration in place, no rewrite)
//!   * `samples` — decimal u32, number of enrollment samples merged
//!   * `created_at_ms`, `updated_at_ms` — decimal unix milliseconds
//! * Sorted set `{prefix}{tenant}:speakers` — the tenant's index: member `{id}`,
//!   score `created_at_ms`, so `ZRANGE 0 -1` lists by creation time then id.
//!
//! No raw audio is ever stored. Create and delete write the hash and the index
//! in one `MULTI`/`EXEC`; listing reads the index (never `KEYS`/`SCAN`) and
//! skips index entries whose hash is gone. `add_sample` is an optimistic
//! compare-and-set: read the hash, compute the merged embedding in Rust, then a
//! Lua script writes it only if `samples` is still the value that was read
//! (every `add_sample` bumps it), retrying on conflict. Keys carry no TTL; a
//! delete removes both keys outright.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{
    Profile, Sample, SpeakerModel, StoreError, embedding_from_bytes, embedding_to_bytes,
    merge_sample, now_ms,
};

/// Bound on establishing the first connection (and each reconnect attempt).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on any single command round trip.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Compare-and-set attempts before `add_sample` gives up under contention.
const MAX_CAS_ATTEMPTS: u32 = 200;

/// KEYS[1] = profile hash; ARGV[1] = `samples` as read; ARGV[2..5] = new
/// embedding, speech_seconds, samples, updated_at_ms; ARGV[6..7] = new CAM++ embedding and its
/// speech seconds (empty strings: the profile has none, nothing written). Returns 1 when
/// written, 0 when another writer got there first, -1 when the profile is gone.
static CAS_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local cur = redis.call('HGET', KEYS[1], 'samples')
if not cur then return -1 end
if cur ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'embedding', ARGV[2], 'speech_seconds', ARGV[3],
           'samples', ARGV[4], 'updated_at_ms', ARGV[5])
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[1], 'embedding_campp', ARGV[6], 'campp_speech_seconds', ARGV[7])
end
return 1
",
    )
});

/// Profiles in Redis. Clone is cheap: clones share one multiplexed,
/// self-reconnecting connection.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: Arc<str>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: &redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

impl RedisStore {
    pub(super) async fn connect(
        url: &str,
        prefix: &str,
        ca: Option<&[u8]>,
    ) -> Result<Self, StoreError> {
        // rustls (for rediss://) needs a process-wide crypto provider; ring is the one linked.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // The URL may carry a password: keep it out of error messages.
        let client = match ca {
            None => redis::Client::open(url),
            Some(pem) => redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.to_vec()),
                },
            ),
        }
        .map_err(|e| StoreError::Unavailable(format!("bad redis url: {:?}", e.kind())))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = tokio::time::timeout(
            CONNECT_TIMEOUT,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| {
            StoreError::Unavailable(format!(
                "redis: no connection within {}s",
                CONNECT_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| unavailable(&e))?;
        let store = RedisStore {
            conn,
            prefix: prefix.into(),
        };
        store.ping().await?;
        Ok(store)
    }

    fn profile_key(&self, tenant: &str, id: &str) -> String {
        format!("{}{tenant}:speaker:{id}", self.prefix)
    }

    fn index_key(&self, tenant: &str) -> String {
        format!("{}{tenant}:speakers", self.prefix)
    }

    pub(super) async fn create(
        &self,
        tenant: &str,
        profile: Profile,
    ) -> Result<Profile, StoreError> {
        let mut conn = self.conn.clone();
        #[allow(clippy::cast_precision_loss)] // unix ms < 2^53: exact in f64
        let score = profile.created_at_ms as f64;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HSET")
            .arg(self.profile_key(tenant, &profile.id))
            .arg("name")
            .arg(&profile.name)
            .arg("embedding")
            .arg(embedding_to_bytes(&profile.embedding))
            .arg("speech_seconds")
            .arg(profile.speech_seconds.to_string())
            .arg("samples")
            .arg(profile.samples)
            .arg("created_at_ms")
            .arg(profile.created_at_ms)
            .arg("updated_at_ms")
            .arg(profile.updated_at_ms);
        if let Some(campp) = &profile.campp {
            pipe.arg("embedding_campp")
                .arg(embedding_to_bytes(campp))
                .arg("campp_speech_seconds")
                .arg(profile.campp_speech_seconds.to_string());
        }
        pipe.ignore()
            .cmd("ZADD")
            .arg(self.index_key(tenant))
            .arg(score)
            .arg(&profile.id)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(profile)
    }

    /// The raw hash (empty if absent).
    async fn fetch(&self, tenant: &str, id: &str) -> Result<HashMap<String, Vec<u8>>, StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("HGETALL")
            .arg(self.profile_key(tenant, id))
            .query_async(&mut conn)
            .await
            .map_err(|e| unavailable(&e))
    }

    pub(super) async fn get(&self, tenant: &str, id: &str) -> Result<Option<Profile>, StoreError> {
        let fields = self.fetch(tenant, id).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        decode(id, &fields).map(Some)
    }

    pub(super) async fn list(&self, tenant: &str) -> Result<Vec<Profile>, StoreError> {
        let mut conn = self.conn.clone();
        // Equal scores are ordered by member bytes: created_at_ms, then id.
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.index_key(tenant))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .map_err(|e| unavailable(&e))?;
        let mut profiles = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(256) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.cmd("HGETALL").arg(self.profile_key(tenant, id));
            }
            let hashes: Vec<HashMap<String, Vec<u8>>> = pipe
                .query_async(&mut conn)
                .await
                .map_err(|e| unavailable(&e))?;
            for (id, fields) in chunk.iter().zip(&hashes) {
                // Deleted between ZRANGE and HGETALL: just gone.
                if !fields.is_empty() {
                    profiles.push(decode(id, fields)?);
                }
            }
        }
        Ok(profiles)
    }

    pub(super) async fn add_sample(
        &self,
        tenant: &str,
        id: &str,
        sample: &Sample,
    ) -> Result<Option<Profile>, StoreError> {
        let key = self.profile_key(tenant, id);
        let mut conn = self.conn.clone();
        for attempt in 0..MAX_CAS_ATTEMPTS {
            let fields = self.fetch(tenant, id).await?;
            if fields.is_empty() {
                return Ok(None);
            }
            let seen_samples = fields.get("samples").cloned().unwrap_or_default();
            let merged = merge_sample(decode(id, &fields)?, sample, now_ms())?;
            let outcome: i64 = CAS_SCRIPT
                .key(&key)
                .arg(seen_samples)
                .arg(embedding_to_bytes(&merged.embedding))
                .arg(merged.speech_seconds.to_string())
                .arg(merged.samples)
                .arg(merged.updated_at_ms)
                .arg(
                    merged
                        .campp
                        .as_deref()
                        .map(embedding_to_bytes)
                        .unwrap_or_default(),
                )
                .arg(
                    merged
                        .campp
                        .as_ref()
                        .map(|_| merged.campp_speech_seconds.to_string())
                        .unwrap_or_default(),
                )
                .invoke_async(&mut conn)
                .await
                .map_err(|e| unavailable(&e))?;
            match outcome {
                1 => return Ok(Some(merged)),
                -1 => return Ok(None),
                _ => {
                    // Lost the race: back off a little (growing, capped) and retry.
                    if attempt > 2 {
                        let micros = 100 * u64::from(attempt.min(50));
                        tokio::time::sleep(Duration::from_micros(micros)).await;
                    } else {
                        tokio::task::yield_now().await;
                    }
                }
            }
        }
        Err(StoreError::Unavailable(format!(
            "redis: add_sample on {id} kept conflicting with concurrent updates ({MAX_CAS_ATTEMPTS} attempts)"
        )))
    }

    pub(super) async fn delete(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let (deleted, _unindexed): (i64, i64) = redis::pipe()
            .atomic()
            .cmd("DEL")
            .arg(self.profile_key(tenant, id))
            .cmd("ZREM")
            .arg(self.index_key(tenant))
            .arg(id)
            .query_async(&mut conn)
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(deleted > 0)
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let pong: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(|e| unavailable(&e))?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::Unavailable(format!(
                "redis: unexpected PING reply {pong:?}"
            )))
        }
    }
}

/// Builds a [`Profile`] from its hash, or says why it cannot.
fn decode(id: &str, fields: &HashMap<String, Vec<u8>>) -> Result<Profile, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        id: id.to_owned(),
        reason,
    };
    let field = |name: &str| {
        fields
            .get(name)
            .ok_or_else(|| corrupt(format!("field {name} is missing")))
    };
    let text = |name: &str| -> Result<&str, StoreError> {
        std::str::from_utf8(field(name)?).map_err(|_| corrupt(format!("field {name} is not UTF-8")))
    };
    fn parse<T: std::str::FromStr>(
        name: &str,
        raw: &str,
        corrupt: impl Fn(String) -> StoreError,
    ) -> Result<T, StoreError> {
        raw.parse()
            .map_err(|_| corrupt(format!("field {name} is not a number: {raw:?}")))
    }
    let speech_seconds: f32 = parse("speech_seconds", text("speech_seconds")?, corrupt)?;
    if !speech_seconds.is_finite() || speech_seconds <= 0.0 {
        return Err(corrupt(format!("speech_seconds is {speech_seconds}")));
    }
    Ok(Profile {
        id: id.to_owned(),
        name: text("name")?.to_owned(),
        embedding: embedding_from_bytes(field("embedding")?, SpeakerModel::Ge2e)
            .map_err(corrupt)?,
        speech_seconds,
        campp: fields
            .get("embedding_campp")
            .map(|b| embedding_from_bytes(b, SpeakerModel::Campp))
            .transpose()
            .map_err(corrupt)?,
        campp_speech_seconds: match fields.get("campp_speech_seconds") {
            None => 0.0,
            Some(_) => parse(
                "campp_speech_seconds",
                text("campp_speech_seconds")?,
                corrupt,
            )?,
        },
        samples: parse("samples", text("samples")?, corrupt)?,
        created_at_ms: parse("created_at_ms", text("created_at_ms")?, corrupt)?,
        updated_at_ms: parse("updated_at_ms", text("updated_at_ms")?, corrupt)?,
    })
}
