//! Members: who a caller is (its certificate against its member record), registration,
//! updates and suspension.

use exchange_pki::PeerIdentity;
use exchange_proto::v1::{Member, MemberStatus, ReasonCode, Role, UpdateMemberRequest};

use super::validators::{dept, endpoint, fingerprints, roles, signing_key_field, text};
use super::{Caller, Catalog, now_ms};
use crate::db::{MEMBERS, put_msg};
use crate::error::{CatalogError, Result};
use crate::screen::no_identifier;

impl Catalog {
    /// Resolves a certificate identity to a member in good standing.
    pub fn authenticate(&self, peer: &PeerIdentity) -> Result<Caller> {
        let member: Member = self
            .db
            .get(MEMBERS, peer.dept_id.as_bytes())?
            .ok_or_else(|| CatalogError::UnknownMember(peer.dept_id.clone()))?;
        if member.status == MemberStatus::Suspended as i32 {
            return Err(CatalogError::Suspended(peer.dept_id.clone()));
        }
        // Every member lists its certificates (required at registration): one not listed,
        // an old one replaced included, is refused at once.
        if !member.cert_fingerprints.iter().any(|f| f[..] == peer.fingerprint[..]) {
            return Err(CatalogError::CertificateNotRegistered(peer.dept_id.clone()));
        }
        Ok(Caller { dept: peer.dept_id.clone(), member })
    }

    /// Adds members given in the configuration file that do not exist yet (the first
    /// operator, typically). Existing members are left as they are, except that one listing
    /// no certificate fingerprint (registered before they were required) takes the
    /// configured ones.
    pub fn bootstrap_member(&self, member: Member) -> Result<bool> {
        let _w = self.lock();
        if let Some(mut existing) = self.db.get::<Member>(MEMBERS, member.dept_id.as_bytes())? {
            if !existing.cert_fingerprints.is_empty() || member.cert_fingerprints.is_empty() {
                return Ok(false);
            }
            // Registered before fingerprints were required: the configured ones are its
            // first, so that it is not shut out.
            fingerprints("member.cert_fingerprints", &member.cert_fingerprints)?;
            existing.cert_fingerprints = member.cert_fingerprints;
            existing.updated_at_unix_ms = now_ms();
            let event = self.admin_event(&self.settings.catalog_id.clone(), "member.update", &existing.dept_id, "", "");
            self.mutate(vec![event], true, |batch| {
                put_msg(batch, MEMBERS, existing.dept_id.as_bytes().to_vec(), &existing);
                Ok(())
            })?;
            return Ok(true);
        }
        let member = self.checked_new_member(member)?;
        let event = self.admin_event(&self.settings.catalog_id.clone(), "member.bootstrap", &member.dept_id, "", "");
        self.mutate(vec![event], true, |batch| {
            put_msg(batch, MEMBERS, member.dept_id.as_bytes().to_vec(), &member);
            Ok(())
        })?;
        Ok(true)
    }

    fn checked_new_member(&self, m: Member) -> Result<Member> {
        let id = dept("member.dept_id", &m.dept_id)?;
        let now = now_ms();
        signing_key_field("member.node_signing_key", &m.node_signing_key)?;
        fingerprints("member.cert_fingerprints", &m.cert_fingerprints)?;
        Ok(Member {
            dept_id: id.to_string(),
            name: text("member.name", &m.name, true)?,
            endpoint: endpoint("member.endpoint", &m.endpoint)?,
            node_signing_key: m.node_signing_key,
            // Published keys come through UpdateMember only (a rotation of a registered node).
            node_published_keys: Vec::new(),
            cert_fingerprints: m.cert_fingerprints,
            roles: roles("member.roles", &m.roles)?,
            status: MemberStatus::Active as i32,
            created_at_unix_ms: now,
            updated_at_unix_ms: now,
        })
    }

    /// Registers a member (operator).
    pub fn register_member(&self, caller: &Caller, m: Option<Member>) -> Result<Member> {
        caller.require(Role::Operator)?;
        let m = self.checked_new_member(m.ok_or_else(|| CatalogError::bad_request("member", "is required"))?)?;
        let _w = self.lock();
        if self.db.get::<Member>(MEMBERS, m.dept_id.as_bytes())?.is_some() {
            return Err(CatalogError::AlreadyExists(format!("member {} already exists: use UpdateMember", m.dept_id)));
        }
        let event = self.admin_event(&caller.dept, "member.register", &m.dept_id, "", "");
        self.mutate(vec![event], true, |b| {
            put_msg(b, MEMBERS, m.dept_id.as_bytes().to_vec(), &m);
            Ok(())
        })?;
        Ok(m)
    }

    pub(super) fn existing_member(&self, field: &str, id: &str) -> Result<Member> {
        let id = dept(field, id)?;
        self.db
            .get(MEMBERS, id.as_str().as_bytes())?
            .ok_or_else(|| CatalogError::NotFound(format!("member {id} does not exist")))
    }

    /// Updates a member (operator).
    pub fn update_member(&self, caller: &Caller, r: UpdateMemberRequest) -> Result<Member> {
        caller.require(Role::Operator)?;
        let _w = self.lock();
        let mut m = self.existing_member("dept_id", &r.dept_id)?;
        if !r.name.trim().is_empty() {
            m.name = text("name", &r.name, true)?;
        }
        if !r.endpoint.trim().is_empty() {
            m.endpoint = endpoint("endpoint", &r.endpoint)?;
        }
        rotate_node_keys(&mut m, &r)?;
        if r.replace_cert_fingerprints {
            fingerprints("cert_fingerprints", &r.cert_fingerprints)?;
            m.cert_fingerprints = r.cert_fingerprints;
        }
        if !r.roles.is_empty() {
            m.roles = roles("roles", &r.roles)?;
        }
        if m.cert_fingerprints.is_empty() {
            // A member registered before fingerprints were required is given one first.
            return Err(CatalogError::bad_request(
                "cert_fingerprints",
                format!(
                    "member {} lists no certificate fingerprint: give at least one with replace_cert_fingerprints",
                    m.dept_id
                ),
            ));
        }
        m.updated_at_unix_ms = now_ms();
        let event = self.admin_event(&caller.dept, "member.update", &m.dept_id, "", "");
        self.mutate(vec![event], true, |b| {
            put_msg(b, MEMBERS, m.dept_id.as_bytes().to_vec(), &m);
            Ok(())
        })?;
        if r.replace_cert_fingerprints {
            // A stream opened with a certificate no longer listed must not go on.
            self.reset_streams(&m.dept_id);
        }
        Ok(m)
    }

    /// Suspends a member (operator).
    pub fn suspend_member(&self, caller: &Caller, dept_id: &str, reason: &str) -> Result<Member> {
        caller.require(Role::Operator)?;
        let reason = text("reason", reason, false)?;
        // The reason is the note of the entry that records the suspension.
        no_identifier("reason", &reason)?;
        let _w = self.lock();
        let mut m = self.existing_member("dept_id", dept_id)?;
        m.status = MemberStatus::Suspended as i32;
        m.updated_at_unix_ms = now_ms();
        let event = self.admin_event(&caller.dept, "member.suspend", &m.dept_id, "", &reason);
        self.mutate(vec![event], true, |b| {
            put_msg(b, MEMBERS, m.dept_id.as_bytes().to_vec(), &m);
            Ok(())
        })?;
        // A suspended member's open watch streams end now; reconnecting is refused.
        self.reset_streams(&m.dept_id);
        Ok(m)
    }

    /// Gets a member.
    pub fn get_member(&self, _caller: &Caller, dept_id: &str) -> Result<Member> {
        self.existing_member("dept_id", dept_id)
    }

    /// Lists members.
    pub fn list_members(&self, _caller: &Caller) -> Result<Vec<Member>> {
        self.db.all(MEMBERS)
    }
}

/// The node-key steps of an update, in rotation order: publish a next key (answers verify
/// under it before the node signs with it), switch the signing key (the one it replaces stays
/// published, so answers signed with it keep verifying), retire a published key (answers
/// signed with it are refused from then on). The current key cannot be retired.
fn rotate_node_keys(m: &mut Member, r: &UpdateMemberRequest) -> Result<()> {
    if !r.publish_node_key.is_empty() {
        signing_key_field("publish_node_key", &r.publish_node_key)?;
        if r.publish_node_key != m.node_signing_key && !m.node_published_keys.contains(&r.publish_node_key) {
            m.node_published_keys.push(r.publish_node_key.clone());
        }
    }
    if !r.node_signing_key.is_empty() {
        signing_key_field("node_signing_key", &r.node_signing_key)?;
        if r.node_signing_key != m.node_signing_key {
            let previous = std::mem::replace(&mut m.node_signing_key, r.node_signing_key.clone());
            m.node_published_keys.retain(|k| *k != r.node_signing_key);
            if !previous.is_empty() {
                m.node_published_keys.push(previous);
            }
        }
    }
    if !r.retire_node_key.is_empty() {
        signing_key_field("retire_node_key", &r.retire_node_key)?;
        if r.retire_node_key == m.node_signing_key {
            return Err(CatalogError::precondition(
                ReasonCode::InvalidState,
                format!(
                    "retire_node_key is the key {}'s node signs with now: switch it to the next key (node_signing_key) first",
                    m.dept_id
                ),
            ));
        }
        let before = m.node_published_keys.len();
        m.node_published_keys.retain(|k| *k != r.retire_node_key);
        if m.node_published_keys.len() == before {
            return Err(CatalogError::NotFound(format!(
                "retire_node_key is not a published node key of {}",
                m.dept_id
            )));
        }
    }
    Ok(())
}
