//! Embedded backend of the profile store: one redb file, `<dir>/profiles.redb`.
//!
//! Table `profiles_v1`: key `"{tenant}/{id}"` (tenants cannot contain `/`, so
//! a tenant's profiles are exactly the keys in `"{tenant}/".."{tenant}0"`),
//! value a MessagePack record ([`Record`]) with the GE2E embedding as 1024 bytes of
//! little-endian f32 and, from record version 2 on, the CAM++ embedding as 768 bytes and its
//! speech seconds (absent in a version-1 record: a GE2E-only profile made before models were
//! versioned; it is rewritten as version 2 by its next sample, and reads the same until then). Every redb call runs inside `spawn_blocking`; each
//! mutation is one write transaction, which redb serialises, so concurrent
//! `add_sample` calls cannot lose updates. Commits are durable (fsync).
//!
//! A delete removes the record in the same transaction; redb is copy-on-write,
//! so the freed pages are reused by later writes rather than wiped at once.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{
    Profile, Sample, SpeakerModel, StoreError, embedding_from_bytes, embedding_to_bytes,
    merge_sample, now_ms,
};

const PROFILES: TableDefinition<&str, &[u8]> = TableDefinition::new("profiles_v1");
/// File name inside the store directory.
pub const DB_FILE_NAME: &str = "profiles.redb";
/// The version written; versions 1 (GE2E only) and 2 are read.
const RECORD_VERSION: u8 = 2;

/// The stored form of a profile (the id lives in the key).
#[derive(Serialize, Deserialize)]
struct Record {
    v: u8,
    name: String,
    #[serde(with = "serde_bytes")]
    embedding: Vec<u8>,
    speech_seconds: f32,
    samples: u32,
    created_at_ms: u64,
    updated_at_ms: u64,
    /// Version 2: the CAM++ embedding (768 bytes), if any. A version-1 record's positional
    /// MessagePack array ends before these two fields, which then take their defaults.
    #[serde(default, with = "serde_bytes")]
    campp: Option<Vec<u8>>,
    #[serde(default)]
    campp_speech_seconds: f32,
}

impl Record {
    fn from_profile(p: &Profile) -> Self {
        Record {
            v: RECORD_VERSION,
            name: p.name.clone(),
            embedding: embedding_to_bytes(&p.embedding),
            speech_seconds: p.speech_seconds,
            samples: p.samples,
            created_at_ms: p.created_at_ms,
            updated_at_ms: p.updated_at_ms,
            campp: p.campp.as_deref().map(embedding_to_bytes),
            campp_speech_seconds: p.campp_speech_seconds,
        }
    }

    fn encode(&self) -> Result<Vec<u8>, StoreError> {
        rmp_serde::to_vec(self)
            .map_err(|e| StoreError::Unavailable(format!("encoding profile record: {e}")))
    }

    fn decode(id: &str, bytes: &[u8]) -> Result<Profile, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            id: id.to_owned(),
            reason,
        };
        let r: Record = rmp_serde::from_slice(bytes)
            .map_err(|e| corrupt(format!("undecodable record: {e}")))?;
        if r.v != 1 && r.v != RECORD_VERSION {
            return Err(corrupt(format!("unknown record version {}", r.v)));
        }
        if !r.speech_seconds.is_finite() || r.speech_seconds <= 0.0 {
            return Err(corrupt(format!("speech_seconds is {}", r.speech_seconds)));
        }
        Ok(Profile {
            id: id.to_owned(),
            name: r.name,
            embedding: embedding_from_bytes(&r.embedding, SpeakerModel::Ge2e).map_err(corrupt)?,
            speech_seconds: r.speech_seconds,
            campp: r
                .campp
                .as_deref()
                .map(|b| embedding_from_bytes(b, SpeakerModel::Campp))
                .transpose()
                .map_err(corrupt)?,
            campp_speech_seconds: r.campp_speech_seconds,
            samples: r.samples,
            created_at_ms: r.created_at_ms,
            updated_at_ms: r.updated_at_ms,
        })
    }
}

/// Profiles in a local redb file. Clone is cheap (shared handle).
#[derive(Clone, Debug)]
pub struct EmbeddedStore {
    db: Arc<Database>,
}

fn io_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("embedded store: {e}"))
}

fn key(tenant: &str, id: &str) -> String {
    format!("{tenant}/{id}")
}

impl EmbeddedStore {
    pub(super) async fn open(dir: &Path) -> Result<Self, StoreError> {
        let dir = dir.to_owned();
        let db = tokio::task::spawn_blocking(move || -> Result<Database, StoreError> {
            std::fs::create_dir_all(&dir)
                .map_err(|e| io_err(format!("creating {}: {e}", dir.display())))?;
            let path = dir.join(DB_FILE_NAME);
            let db = Database::create(&path)
                .map_err(|e| io_err(format!("opening {}: {e}", path.display())))?;
            // Create the table up front so readers never meet "table does not exist".
            let txn = db.begin_write().map_err(io_err)?;
            txn.open_table(PROFILES).map_err(io_err)?;
            txn.commit().map_err(io_err)?;
            Ok(db)
        })
        .await
        .map_err(io_err)??;
        Ok(EmbeddedStore { db: Arc::new(db) })
    }

    /// Runs `f` on the blocking pool with the database.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(io_err)?
    }

    pub(super) async fn create(
        &self,
        tenant: &str,
        profile: Profile,
    ) -> Result<Profile, StoreError> {
        let k = key(tenant, &profile.id);
        let bytes = Record::from_profile(&profile).encode()?;
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(io_err)?;
            {
                let mut table = txn.open_table(PROFILES).map_err(io_err)?;
                table.insert(k.as_str(), bytes.as_slice()).map_err(io_err)?;
            }
            txn.commit().map_err(io_err)
        })
        .await?;
        Ok(profile)
    }

    pub(super) async fn get(&self, tenant: &str, id: &str) -> Result<Option<Profile>, StoreError> {
        let k = key(tenant, id);
        let id = id.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(io_err)?;
            let table = txn.open_table(PROFILES).map_err(io_err)?;
            match table.get(k.as_str()).map_err(io_err)? {
                Some(v) => Record::decode(&id, v.value()).map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    pub(super) async fn list(&self, tenant: &str) -> Result<Vec<Profile>, StoreError> {
        let start = format!("{tenant}/");
        let end = format!("{tenant}0"); // '0' is the byte after '/'
        let mut profiles = self
            .blocking(move |db| {
                let txn = db.begin_read().map_err(io_err)?;
                let table = txn.open_table(PROFILES).map_err(io_err)?;
                let mut out = Vec::new();
                for entry in table.range(start.as_str()..end.as_str()).map_err(io_err)? {
                    let (k, v) = entry.map_err(io_err)?;
                    let id = k.value().get(start.len()..).unwrap_or_default().to_owned();
                    out.push(Record::decode(&id, v.value())?);
                }
                Ok(out)
            })
            .await?;
        profiles.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        Ok(profiles)
    }

    pub(super) async fn add_sample(
        &self,
        tenant: &str,
        id: &str,
        sample: &Sample,
    ) -> Result<Option<Profile>, StoreError> {
        let k = key(tenant, id);
        let id = id.to_owned();
        let sample = sample.clone();
        self.blocking(move |db| {
            // One write transaction: redb runs them one at a time, so the
            // read-modify-write below cannot interleave with another.
            let txn = db.begin_write().map_err(io_err)?;
            let merged = {
                let mut table = txn.open_table(PROFILES).map_err(io_err)?;
                let current = match table.get(k.as_str()).map_err(io_err)? {
                    Some(v) => Record::decode(&id, v.value())?,
                    None => return Ok(None),
                };
                let merged = merge_sample(current, &sample, now_ms())?;
                let bytes = Record::from_profile(&merged).encode()?;
                table.insert(k.as_str(), bytes.as_slice()).map_err(io_err)?;
                merged
            };
            txn.commit().map_err(io_err)?;
            Ok(Some(merged))
        })
        .await
    }

    pub(super) async fn delete(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let k = key(tenant, id);
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(io_err)?;
            let existed = {
                let mut table = txn.open_table(PROFILES).map_err(io_err)?;
                table.remove(k.as_str()).map_err(io_err)?.is_some()
            };
            txn.commit().map_err(io_err)?;
            Ok(existed)
        })
        .await
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(io_err)?;
            txn.open_table(PROFILES).map_err(io_err)?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A record as version 1 wrote it (before models were versioned).
    #[derive(Serialize)]
    struct RecordV1 {
        v: u8,
        name: String,
        #[serde(with = "serde_bytes")]
        embedding: Vec<u8>,
        speech_seconds: f32,
        samples: u32,
        created_at_ms: u64,
        updated_at_ms: u64,
    }

    #[test]
    fn version_1_records_read_as_ge2e_only_profiles_and_are_rewritten_as_version_2() {
        let ge2e: Vec<f32> = (0..256).map(|i| (i as f32 * 0.37).sin()).collect();
        let v1 = rmp_serde::to_vec(&RecordV1 {
            v: 1,
            name: "Ada".into(),
            embedding: embedding_to_bytes(&ge2e),
            speech_seconds: 4.5,
            samples: 2,
            created_at_ms: 10,
            updated_at_ms: 20,
        })
        .unwrap();
        let p = Record::decode("id", &v1).unwrap();
        assert_eq!(p.embedding, ge2e);
        assert_eq!((p.campp.clone(), p.campp_speech_seconds), (None, 0.0));
        assert_eq!((p.speech_seconds, p.samples), (4.5, 2));
        // Written back (as any update does): version 2, and it reads the same.
        let v2 = Record::from_profile(&p);
        assert_eq!(v2.v, 2);
        assert_eq!(Record::decode("id", &v2.encode().unwrap()).unwrap(), p);
        // With a CAM++ embedding.
        let mut q = p.clone();
        q.campp = Some(ge2e[..192].to_vec());
        q.campp_speech_seconds = 1.0;
        let back = Record::decode("id", &Record::from_profile(&q).encode().unwrap()).unwrap();
        assert_eq!(back, q);
        // A version this build does not know is corrupt, not misread.
        let mut v3 = Record::from_profile(&q);
        v3.v = 3;
        assert!(Record::decode("id", &v3.encode().unwrap()).is_err());
    }
}
