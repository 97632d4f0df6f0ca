//! Rollback records (DESIGN §14, docs/studio.md): the edge refuses a bundle of the id it
//! serves with a lower version, unless KV holds, under `rollback:<hash>`, a record that
//! names that very bundle (id, version, hash), signed with the key that signs bundles.
//! So an old `.mmb` published by mistake is refused, and a rollback made on purpose
//! (`micromoment rollback`, the studio) is served.
//!
//! The record is JSON: `{"id", "version", "hash", "over", "at", "signature"}` (`over`: the
//! highest version published when it was made, so it never allows going back below a
//! version published later); the signature is Ed25519 over
//! `mm-rollback-v1\n["<id>",<version>,"<hash>",<over>,<at>]` (base64), or absent when
//! made without a key (accepted only by an edge without `BUNDLE_PUBKEY`, in development).

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::mmb::{verify_signature, SigningKey};

/// The KV key of the highest version ever published of a bundle id, which publishers
/// raise (`micromoment publish`, the studio) and the edge reads when `current` changes:
/// so an isolate that just started refuses an old bundle as a warm one does.
pub fn latest_key(id: &str) -> String {
    format!("latest:{id}")
}

/// The KV key of the rollback record of the bundle `bundle:<hash>`.
pub fn rollback_key(hash: &str) -> String {
    format!("rollback:{hash}")
}

/// The longest record the edge reads, in bytes.
pub const MAX_ROLLBACK_RECORD: usize = 4096;

/// A decision to serve an older version of a bundle again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRecord {
    /// The bundle id.
    pub id: String,
    /// The version served again.
    pub version: u64,
    /// Its content hash (`bundle:<hash>`).
    pub hash: String,
    /// The highest version of the id published when the rollback was made: the record
    /// allows going back below that one only, not below a version published after it.
    pub over: u64,
    /// When the rollback was made, Unix seconds.
    pub at: i64,
    /// Ed25519 over [`RollbackRecord::message`], base64; none without a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl RollbackRecord {
    /// A record for `id` `version` (`hash`) below `over`, made at `at`, signed when a
    /// key is given.
    pub fn new(
        id: &str,
        version: u64,
        hash: &str,
        over: u64,
        at: i64,
        key: Option<&SigningKey>,
    ) -> RollbackRecord {
        let mut record = RollbackRecord {
            id: id.to_owned(),
            version,
            hash: hash.to_owned(),
            over,
            at,
            signature: None,
        };
        record.signature = key
            .map(|k| base64::engine::general_purpose::STANDARD.encode(k.sign(&record.message())));
        record
    }

    /// The signed bytes: the domain, a newline, then the fields as a JSON array (whose
    /// quoting keeps any id from reading as another record's fields).
    fn message(&self) -> Vec<u8> {
        let fields = serde_json::json!([self.id, self.version, self.hash, self.over, self.at]);
        format!("mm-rollback-v1\n{fields}").into_bytes()
    }

    /// The record as KV holds it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Whether `text` is a record for exactly this bundle (`id`, `version`, `hash`), made
    /// when `above` was already published (`over` at least `above`), and, with a public
    /// key, signed by it; `Err` says why not.
    pub fn check(
        text: &[u8],
        (id, version, hash): (&str, u64, &str),
        above: u64,
        public_key: Option<&[u8; 32]>,
    ) -> Result<RollbackRecord, String> {
        if text.len() > MAX_ROLLBACK_RECORD {
            return Err(format!(
                "the rollback record is over {MAX_ROLLBACK_RECORD} bytes"
            ));
        }
        let record: RollbackRecord = serde_json::from_slice(text)
            .map_err(|e| format!("the rollback record is not one: {e}"))?;
        if record.id != id || record.version != version || record.hash != hash {
            return Err(format!(
                "the rollback record names {} {} ({}), not this bundle",
                record.id, record.version, record.hash
            ));
        }
        if record.over < above {
            return Err(format!(
                "the rollback record was made over version {}, before version {above} was published",
                record.over
            ));
        }
        if let Some(key) = public_key {
            let signature = record
                .signature
                .as_deref()
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                .ok_or("the rollback record is not signed, and BUNDLE_PUBKEY requires it")?;
            if !verify_signature(key, &record.message(), &signature) {
                return Err(
                    "the rollback record's signature does not verify with BUNDLE_PUBKEY".into(),
                );
            }
        }
        Ok(record)
    }
}
