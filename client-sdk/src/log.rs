//! Verifying the central access log: signed tree heads (C2SP checkpoints), inclusion and
//! consistency proofs (RFC 9162), and a full re-verification of the log against its head.

use ed25519_dalek::VerifyingKey;
use exchange_core::checkpoint::{Checkpoint, NoteVerifier, open_checkpoint};
use exchange_core::merkle::{Hash, MemoryTree, leaf_hash, verify_consistency, verify_inclusion};
use exchange_proto::v1::{AccessEvent, ConsistencyProof, InclusionProof, LogEntry};
use prost::Message as _;

use crate::client::ExchangeClient;
use crate::error::{Error, Result};

/// The note verifier of the central log under one checkpoint key: the catalog signs its
/// checkpoints with its checkpoint key under the log origin as the key name.
pub fn log_verifier(origin: &str, checkpoint_key: &VerifyingKey) -> Result<NoteVerifier> {
    NoteVerifier::new(origin, *checkpoint_key).map_err(|e| Error::Config(format!("log origin {origin:?}: {e}")))
}

/// Opens a signed tree head with whichever of `verifiers` signed it (the checkpoint keys in
/// force: during a rotation, the current one and the next or previous). A note signed by no
/// key of theirs, the catalog's configuration or token key included, is
/// [`Error::BadSignature`].
pub fn verify_tree_head_by_any(note: &str, verifiers: &[NoteVerifier]) -> Result<Checkpoint> {
    let mut last = Error::BadSignature("tree head: the configuration lists no checkpoint key".into());
    for verifier in verifiers {
        match verify_tree_head(note, verifier) {
            Ok(checkpoint) => return Ok(checkpoint),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Opens a signed tree head (a checkpoint in signed-note form) with `verifier`: the
/// signature must verify and the body parse. A bad note is [`Error::BadSignature`].
pub fn verify_tree_head(note: &str, verifier: &NoteVerifier) -> Result<Checkpoint> {
    open_checkpoint(note, verifier).map_err(|e| Error::BadSignature(format!("tree head: {e}")))
}

fn hashes(path: &[Vec<u8>]) -> Result<Vec<Hash>> {
    path.iter()
        .enumerate()
        .map(|(i, h)| Hash::from_slice(h).map_err(|e| Error::Proof(format!("proof hash {i}: {e}"))))
        .collect()
}

/// Checks that an entry's leaf bytes decode to the event it shows: what is displayed is
/// what is hashed.
fn check_entry(entry: &LogEntry) -> Result<()> {
    let decoded = AccessEvent::decode(entry.leaf.as_slice())
        .map_err(|e| Error::Proof(format!("entry {}: leaf does not decode: {e}", entry.index)))?;
    if entry.event.as_ref() != Some(&decoded) {
        return Err(Error::Proof(format!("entry {}: the event shown is not the event in the leaf", entry.index)));
    }
    Ok(())
}

/// Verifies an inclusion proof against a verified tree head: the proof must be for the
/// head's size, and the entry it carries must hash up to the head's root. The catalog puts
/// the entry in the proof only for its requester, its provider and auditors; anyone else
/// (a portal proving a subject's entry, say) holds the entry already and verifies with
/// [`verify_inclusion_of`].
pub fn verify_inclusion_proof(proof: &InclusionProof, head: &Checkpoint) -> Result<()> {
    let entry = proof.entry.as_ref().ok_or_else(|| {
        Error::Proof(format!(
            "the inclusion proof of entry {} carries no entry: only its requester, its provider and auditors \
             read it; verify with an entry you hold",
            proof.index
        ))
    })?;
    verify_inclusion_of(entry, proof, head)
}

/// Verifies that `entry`, which the caller already holds (from a subject view or an audit
/// query), is in the log of a verified tree head, with `proof` for its index: the proof
/// carries hashes, and an entry too only when the caller may read it, which must then be
/// the same one.
pub fn verify_inclusion_of(entry: &LogEntry, proof: &InclusionProof, head: &Checkpoint) -> Result<()> {
    if entry.index != proof.index {
        return Err(Error::Proof(format!("proof is for index {} but the entry is {}", proof.index, entry.index)));
    }
    if let Some(carried) = &proof.entry
        && carried != entry
    {
        return Err(Error::Proof(format!("entry {}: the proof carries another entry than the one held", entry.index)));
    }
    if proof.tree_size != head.size() {
        return Err(Error::Proof(format!(
            "proof is for tree size {}, the tree head is of size {}",
            proof.tree_size,
            head.size()
        )));
    }
    check_entry(entry)?;
    verify_inclusion(leaf_hash(&entry.leaf), proof.index, proof.tree_size, &hashes(&proof.path)?, head.root())
        .map_err(|e| Error::Proof(format!("entry {}: {e}", proof.index)))
}

/// Verifies a consistency proof: the tree of `old_size` with `old_root` is a prefix of the
/// tree of the verified head.
pub fn verify_consistency_proof(
    proof: &ConsistencyProof,
    old_size: u64,
    old_root: Hash,
    head: &Checkpoint,
) -> Result<()> {
    if proof.old_size != old_size || proof.new_size != head.size() {
        return Err(Error::Proof(format!(
            "proof is from size {} to {}, expected {old_size} to {}",
            proof.old_size,
            proof.new_size,
            head.size()
        )));
    }
    verify_consistency(old_size, head.size(), &hashes(&proof.path)?, old_root, head.root())
        .map_err(|e| Error::Proof(e.to_string()))
}

/// The outcome of [`audit_verify_all`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditReport {
    /// The size of the verified tree head.
    pub tree_size: u64,
    /// Its root.
    pub root: Hash,
    /// The root recomputed from the entries read.
    pub recomputed_root: Hash,
    /// Entries read and hashed.
    pub entries_checked: u64,
    /// The first entry that does not belong to the signed tree, if any.
    pub first_bad_index: Option<u64>,
    /// What is wrong with it.
    pub problem: Option<String>,
}

impl AuditReport {
    /// Whether the whole log matches its signed tree head.
    pub fn is_ok(&self) -> bool {
        self.first_bad_index.is_none()
    }
}

/// Entries asked per `GetLogEntries` call.
pub const ENTRIES_PER_CALL: u32 = 1000;

/// Re-checks the whole central log against a verified tree head: reads every entry, checks
/// that each shows the event it hashes, rebuilds the Merkle tree and compares its root with
/// the head's. When they differ, finds the first bad index by binary search over prefixes,
/// each checked with a consistency proof against the signed head. Needs the auditor role.
///
/// `progress(done, total)` is called after each page.
///
/// ```no_run
/// # async fn run(client: exchange_client_sdk::ExchangeClient) -> exchange_client_sdk::Result<()> {
/// let head = client.verified_tree_head(None).await?;
/// let report = exchange_client_sdk::log::audit_verify_all(&client, &head, |_, _| {}).await?;
/// match report.first_bad_index {
///     None => println!("all {} entries verified", report.entries_checked),
///     Some(i) => println!("entry {i} is not in the signed log"),
/// }
/// # Ok(()) }
/// ```
pub async fn audit_verify_all(
    client: &ExchangeClient,
    head: &Checkpoint,
    mut progress: impl FnMut(u64, u64),
) -> Result<AuditReport> {
    let size = head.size();
    let mut tree = MemoryTree::new();
    let mut first_bad: Option<(u64, String)> = None;
    let proof = |m: u64| client.consistency_proof(m, size);
    'read: while tree.size() < size {
        let start = tree.size();
        let count = u32::try_from((size - start).min(u64::from(ENTRIES_PER_CALL))).unwrap_or(ENTRIES_PER_CALL);
        let entries = client.log_entries(start, count).await?;
        // A missing entry (a gap in the indices, or the log ending early): nothing after it
        // can be rebuilt, so the report names the first bad entry up to there.
        let page: Vec<&LogEntry> = entries.iter().take((size - start) as usize).collect();
        let gap = if page.is_empty() {
            Some(start)
        } else {
            (0u64..).zip(&page).find(|(i, e)| e.index != start + i).map(|(i, _)| start + i)
        };
        for entry in page {
            let expected = tree.size();
            if Some(expected) == gap {
                break;
            }
            if first_bad.is_none()
                && let Err(e) = check_entry(entry)
            {
                first_bad = Some((expected, e.to_string()));
            }
            tree.append(&entry.leaf);
        }
        progress(tree.size(), size);
        if let Some(missing) = gap {
            if first_bad.is_none() {
                first_bad = Some(if missing > 0 && !prefix_verifies(&tree, head, missing, &proof).await? {
                    find_divergence(&tree, head, missing, &proof).await?
                } else {
                    (missing, format!("entry {missing} is missing from the log"))
                });
            }
            break 'read;
        }
    }
    let recomputed = tree.root();
    if first_bad.is_none() && recomputed != head.root() {
        first_bad = Some(find_divergence(&tree, head, size, &proof).await?);
    }
    let (first_bad_index, problem) = match first_bad {
        Some((i, p)) => (Some(i), Some(p)),
        None => (None, None),
    };
    Ok(AuditReport {
        tree_size: size,
        root: head.root(),
        recomputed_root: recomputed,
        entries_checked: tree.size(),
        first_bad_index,
        problem,
    })
}

/// Whether the prefix of size `m` of the rebuilt tree is a prefix of the signed tree.
async fn prefix_verifies<F, Fut>(tree: &MemoryTree, head: &Checkpoint, m: u64, proof: &F) -> Result<bool>
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = Result<ConsistencyProof>>,
{
    let root = tree.root_at(m).map_err(|e| Error::Proof(e.to_string()))?;
    let p = proof(m).await?;
    Ok(p.new_size == head.size()
        && hashes(&p.path).is_ok_and(|p| verify_consistency(m, head.size(), &p, root, head.root()).is_ok()))
}

/// The smallest prefix of the rebuilt tree that is not a prefix of the signed tree ends
/// with the first bad entry. "Prefix `m` is good" is monotone, so binary search applies
/// between 0 (good) and `bad`, a size known not to verify; `proof(m)` fetches the
/// consistency proof from size `m` to the head's size.
async fn find_divergence<F, Fut>(tree: &MemoryTree, head: &Checkpoint, bad: u64, proof: &F) -> Result<(u64, String)>
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = Result<ConsistencyProof>>,
{
    let (mut good, mut bad) = (0u64, bad);
    while bad - good > 1 {
        let m = good + (bad - good) / 2;
        if prefix_verifies(tree, head, m, proof).await? {
            good = m;
        } else {
            bad = m;
        }
    }
    Ok((bad - 1, format!("entry {} read from the log does not hash into the signed tree head", bad - 1)))
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use exchange_core::checkpoint::{NoteSigner, sign_checkpoint};

    use super::*;

    fn entry(index: u64) -> LogEntry {
        let event = AccessEvent { recorder: "gov.sz.psb".into(), sequence: index + 1, ..Default::default() };
        LogEntry { index, leaf: event.encode_to_vec(), event: Some(event) }
    }

    fn tree(n: u64) -> (MemoryTree, Vec<LogEntry>) {
        let mut t = MemoryTree::new();
        let entries: Vec<LogEntry> = (0..n).map(entry).collect();
        for e in &entries {
            t.append(&e.leaf);
        }
        (t, entries)
    }

    fn head(t: &MemoryTree) -> Checkpoint {
        Checkpoint::new("exchange.test/log", t.size(), t.root()).expect("checkpoint")
    }

    #[tokio::test]
    async fn the_first_altered_entry_is_found() {
        let (genuine, entries) = tree(13);
        let h = head(&genuine);
        for bad in [0u64, 1, 6, 12] {
            let mut read = MemoryTree::new();
            for e in &entries {
                let mut leaf = e.leaf.clone();
                if e.index == bad {
                    leaf.push(0);
                }
                read.append(&leaf);
            }
            let found = find_divergence(&read, &h, 13, &|m| {
                let path = genuine.consistency_proof(m, 13).map(|p| p.iter().map(|x| x.as_bytes().to_vec()).collect());
                async move { Ok(ConsistencyProof { old_size: m, new_size: 13, path: path.unwrap_or_default() }) }
            })
            .await
            .expect("search");
            assert_eq!(found.0, bad);
        }
    }

    #[test]
    fn tree_heads_verify_only_under_the_catalog_key() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let signer = NoteSigner::new("exchange.test/log", key.clone()).expect("signer");
        let (t, _) = tree(5);
        let note = sign_checkpoint(&head(&t), &signer);
        let verifier = log_verifier("exchange.test/log", &key.verifying_key()).expect("verifier");
        assert_eq!(verify_tree_head(&note, &verifier).ok(), Some(head(&t)));
        let stranger =
            log_verifier("exchange.test/log", &SigningKey::from_bytes(&[4; 32]).verifying_key()).expect("verifier");
        assert!(matches!(verify_tree_head(&note, &stranger), Err(Error::BadSignature(_))));
        let altered = note.replacen("\n5\n", "\n6\n", 1);
        assert!(matches!(verify_tree_head(&altered, &verifier), Err(Error::BadSignature(_))));
    }

    #[test]
    fn inclusion_proofs_verify_and_corruptions_fail() {
        let (t, entries) = tree(7);
        let h = head(&t);
        let proof = |i: u64| InclusionProof {
            index: i,
            tree_size: 7,
            path: t.inclusion_proof(i, 7).expect("proof").iter().map(|h| h.as_bytes().to_vec()).collect(),
            entry: Some(entries[i as usize].clone()),
        };
        for i in 0..7 {
            assert!(verify_inclusion_proof(&proof(i), &h).is_ok(), "index {i}");
        }
        let mut p = proof(3);
        p.index = 4;
        assert!(verify_inclusion_proof(&p, &h).is_err());
        let mut p = proof(3);
        p.path[0][0] ^= 1;
        assert!(verify_inclusion_proof(&p, &h).is_err());
        let mut p = proof(3);
        p.tree_size = 3;
        assert!(verify_inclusion_proof(&p, &h).is_err());
        let mut p = proof(3);
        if let Some(e) = p.entry.as_mut() {
            e.leaf.push(0);
        }
        assert!(verify_inclusion_proof(&p, &h).is_err());
        let mut p = proof(3);
        if let Some(ev) = p.entry.as_mut().and_then(|e| e.event.as_mut()) {
            ev.requester = "someone.else".into();
        }
        assert!(verify_inclusion_proof(&p, &h).is_err(), "shown event differs from the hashed leaf");
    }

    #[test]
    fn a_held_entry_verifies_with_a_proof_of_hashes_only() {
        let (t, entries) = tree(7);
        let h = head(&t);
        let hashes_only = |i: u64| InclusionProof {
            index: i,
            tree_size: 7,
            path: t.inclusion_proof(i, 7).expect("proof").iter().map(|h| h.as_bytes().to_vec()).collect(),
            entry: None,
        };
        for i in 0..7 {
            assert!(verify_inclusion_of(&entries[i as usize], &hashes_only(i), &h).is_ok(), "index {i}");
        }
        let err = verify_inclusion_proof(&hashes_only(2), &h).expect_err("nothing to hash");
        assert!(err.to_string().contains("carries no entry"), "{err}");
        assert!(verify_inclusion_of(&entries[3], &hashes_only(2), &h).is_err(), "another index");
        let mut held = entries[2].clone();
        held.leaf.push(0);
        assert!(verify_inclusion_of(&held, &hashes_only(2), &h).is_err(), "an altered entry");
        let mut carrying = hashes_only(2);
        carrying.entry = Some(entries[2].clone());
        assert!(verify_inclusion_of(&entries[2], &carrying, &h).is_ok());
        let mut other = entries[2].clone();
        if let Some(ev) = other.event.as_mut() {
            ev.requester = "someone.else".into();
        }
        assert!(verify_inclusion_of(&other, &carrying, &h).is_err(), "the proof carries another entry");
    }

    #[test]
    fn consistency_proofs_verify_and_corruptions_fail() {
        let (t, _) = tree(9);
        let h = head(&t);
        let old_root = t.root_at(4).expect("root");
        let proof = ConsistencyProof {
            old_size: 4,
            new_size: 9,
            path: t.consistency_proof(4, 9).expect("proof").iter().map(|h| h.as_bytes().to_vec()).collect(),
        };
        assert!(verify_consistency_proof(&proof, 4, old_root, &h).is_ok());
        assert!(verify_consistency_proof(&proof, 5, old_root, &h).is_err());
        assert!(verify_consistency_proof(&proof, 4, t.root_at(3).expect("root"), &h).is_err());
        let mut p = proof.clone();
        p.path[0][31] ^= 1;
        assert!(verify_consistency_proof(&p, 4, old_root, &h).is_err());
    }
}
