//! Secrets and configs in the store: named payloads that tasks get as files.
//!
//! Both kinds live in their own table with the same record (the API's [`Secret`] shape, `Data` included) and the
//! same rules, so one set of functions serves both, told apart by [`PayloadKind`]. Names are unique within a kind.
//! The references services make to them are checked at apply time in both directions: a service naming a payload
//! that does not exist (or under another name) is refused, and a payload that a service names cannot be removed, so
//! that a removal racing a service update cannot leave the service pointing at nothing.
//!
//! The payloads are stored as they came, in plaintext, in the Raft log and snapshots (which the managers keep on
//! their disks); encrypting them at rest is the job of the Raft log's encryption, not done yet.

use super::{ClusterState, ResolveError, StoreError, Table};
use serde::{Deserialize, Serialize};
use skep_api::docker::{Labels, ObjectVersion, Secret, ServiceSpec};

/// Secret or config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PayloadKind {
    /// `/secrets`: the data is never shown; files go under `/run/secrets/`.
    Secret,
    /// `/configs`: the data is shown; files go under `/`.
    Config,
}

impl PayloadKind {
    /// The word Docker's messages use: `secret` or `config`.
    pub fn noun(self) -> &'static str {
        match self {
            PayloadKind::Secret => "secret",
            PayloadKind::Config => "config",
        }
    }
}

impl ClusterState {
    /// The table of one kind.
    pub fn payloads(&self, kind: PayloadKind) -> &Table<String, Secret> {
        match kind {
            PayloadKind::Secret => &self.secrets,
            PayloadKind::Config => &self.configs,
        }
    }

    fn payloads_mut(&mut self, kind: PayloadKind) -> &mut Table<String, Secret> {
        match kind {
            PayloadKind::Secret => &mut self.secrets,
            PayloadKind::Config => &mut self.configs,
        }
    }

    /// Resolve a reference as Docker does: exact ID, exact name, unique ID prefix.
    pub fn resolve_payload(&self, kind: PayloadKind, reference: &str) -> Result<&Secret, ResolveError> {
        let table = self.payloads(kind);
        if let Some(p) = table.get(reference) {
            return Ok(p);
        }
        if let Some(p) = table.values().find(|p| p.spec.name == reference) {
            return Ok(p);
        }
        let noun = kind.noun();
        let by_prefix: Vec<&Secret> =
            if reference.is_empty() { vec![] } else { table.values().filter(|p| p.id.starts_with(reference)).collect() };
        match by_prefix.len() {
            1 => Ok(by_prefix[0]),
            0 => Err(ResolveError::NotFound(format!("{noun} {reference} not found"))),
            n => Err(ResolveError::Ambiguous(format!("{noun} {reference} is ambiguous ({n} matches found)"))),
        }
    }

    /// Names of the services whose spec references payload `id`, in table order.
    pub fn services_using(&self, kind: PayloadKind, id: &str) -> Vec<String> {
        self.services.values().filter(|s| references(&s.spec, kind).iter().any(|(i, _)| *i == id)).map(|s| s.spec.name.clone()).collect()
    }

    /// Every secret and config `spec` references must exist under the name the reference gives (swarmkit's
    /// `checkSecretExistence` / `checkConfigExistence`, with their texts).
    pub fn check_references(&self, spec: &ServiceSpec) -> Result<(), StoreError> {
        for kind in [PayloadKind::Secret, PayloadKind::Config] {
            let table = self.payloads(kind);
            let missing: Vec<&str> = references(spec, kind)
                .into_iter()
                .filter(|(id, name)| table.get(*id).is_none_or(|p| p.spec.name != *name))
                .map(|(_, name)| name)
                .collect();
            if !missing.is_empty() {
                let noun = if missing.len() == 1 { kind.noun().to_string() } else { format!("{}s", kind.noun()) };
                return Err(StoreError::Invalid(format!(
                    "rpc error: code = InvalidArgument desc = {noun} not found: {}",
                    missing.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// Refuse the removal of a payload a service uses (Docker's text).
    pub fn check_unused(&self, kind: PayloadKind, id: &str) -> Result<(), StoreError> {
        let users = self.services_using(kind, id);
        if users.is_empty() {
            return Ok(());
        }
        let name = self.payloads(kind).get(id).map(|p| p.spec.name.as_str()).unwrap_or(id);
        let which = if users.len() == 1 { "service" } else { "services" };
        Err(StoreError::Invalid(format!(
            "rpc error: code = InvalidArgument desc = {} '{name}' is in use by the following {which}: {}",
            kind.noun(),
            users.join(", ")
        )))
    }

    pub(super) fn create_payload(&mut self, kind: PayloadKind, mut p: Secret, v: ObjectVersion, at: &str) -> Result<(), StoreError> {
        let table = self.payloads(kind);
        if table.contains_key(&p.id) || table.values().any(|o| o.spec.name == p.spec.name) {
            return Err(StoreError::Conflict(format!(
                "rpc error: code = AlreadyExists desc = {} {} already exists",
                kind.noun(),
                p.spec.name
            )));
        }
        p.version = v;
        p.created_at = at.to_string();
        p.updated_at = at.to_string();
        self.payloads_mut(kind).insert(p.id.clone(), p);
        Ok(())
    }

    pub(super) fn update_payload_labels(
        &mut self,
        kind: PayloadKind,
        id: &str,
        version: u64,
        labels: &Labels,
        v: ObjectVersion,
        at: &str,
    ) -> Result<(), StoreError> {
        let noun = kind.noun();
        let p = self.payloads_mut(kind).get_mut(id).ok_or_else(|| StoreError::NotFound(format!("{noun} {id} not found")))?;
        if p.version.index != version {
            return Err(StoreError::OutOfSequence);
        }
        p.spec.labels = labels.clone();
        p.version = v;
        p.updated_at = at.to_string();
        Ok(())
    }

    pub(super) fn remove_payload(&mut self, kind: PayloadKind, id: &str) -> Result<(), StoreError> {
        if !self.payloads(kind).contains_key(id) {
            return Err(StoreError::NotFound(format!("{} {id} not found", kind.noun())));
        }
        self.check_unused(kind, id)?;
        self.payloads_mut(kind).remove(id);
        Ok(())
    }
}

/// `(ID, name)` of the payloads of one kind a service spec references.
pub fn references(spec: &ServiceSpec, kind: PayloadKind) -> Vec<(&str, &str)> {
    let Some(c) = spec.task_template.container_spec.as_ref() else { return vec![] };
    match kind {
        PayloadKind::Secret => c.secrets.iter().map(|r| (r.secret_id.as_str(), r.secret_name.as_str())).collect(),
        PayloadKind::Config => c.configs.iter().map(|r| (r.config_id.as_str(), r.config_name.as_str())).collect(),
    }
}
