//! The claims we read, as Clerk (v1 and v2 session tokens), our services and
//! dev tokens write them.

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use xentri_core::Actor;

use super::{AuthError, Principal};

/// Claims of any accepted token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// `user_…` for users, `service:<name>` for services. Required; defaulted
    /// here so its absence is reported as a missing claim, not a parse error.
    #[serde(default)]
    pub sub: String,
    /// Expiry, seconds since the epoch. Required (see `sub`).
    #[serde(default)]
    pub exp: Option<u64>,
    /// Issued at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Not before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// The active org (Clerk v1 claim, and ours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    /// The role in the active org.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_role: Option<String>,
    /// Permissions in the active org.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub org_permissions: Vec<String>,
    /// Clerk v2 session tokens carry the active org as `o`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub o: Option<ClerkOrg>,
    /// Further orgs the caller may switch to with `x-org-id`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orgs: Vec<String>,
    /// A trace id to continue (service tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// Clerk v2's `o` claim.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClerkOrg {
    /// Org id.
    pub id: String,
    /// Role.
    #[serde(default)]
    pub rol: Option<String>,
}

impl Claims {
    /// The principal, acting for `switch_to` when given and granted.
    pub fn into_principal(self, switch_to: Option<Uuid>) -> Result<Principal, AuthError> {
        let active = self.org_id.clone().or_else(|| self.o.as_ref().map(|o| o.id.clone()));
        let active: Uuid = active.as_deref().and_then(|id| id.parse().ok()).ok_or(AuthError::BadClaim("org_id"))?;
        let org_id = match switch_to {
            None => active,
            Some(wanted) if wanted == active => active,
            Some(wanted) if self.orgs.iter().any(|o| o.parse::<Uuid>().ok() == Some(wanted)) => wanted,
            Some(_) => return Err(AuthError::OrgNotGranted),
        };
        let actor = match self.sub.strip_prefix("service:") {
            Some(name) => Actor::service(name),
            None => Actor::user(&self.sub),
        }
        .map_err(|_| AuthError::BadClaim("sub"))?;
        let org_role = self.org_role.or_else(|| self.o.and_then(|o| o.rol));
        let trace_id = self.trace_id.filter(|t| xentri_core::event::is_trace_id(t));
        Ok(Principal { org_id, actor, subject: self.sub, org_role, permissions: self.org_permissions, trace_id })
    }
}
