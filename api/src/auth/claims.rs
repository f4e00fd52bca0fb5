//! The claims we read, as Clerk (v1 and v2 session tokens), our services and
//! dev tokens write them, and how an org named in a token becomes the internal
//! org id row-level security keys on.
//!
//! Clerk names organisations `org_2abc…`; our own tokens (service and dev
//! tokens) name them by UUID. Every org reference goes through [`org_ref`]: a
//! UUID is the internal id as it is, and a Clerk id maps to the name-based
//! UUID (version 5) of that id in [`CLERK_ORG_NAMESPACE`]. The mapping is a pure
//! function: no table, no lookup, the same on every instance and forever, and
//! anyone can compute it (`api org-id org_2abc…`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use xentri_core::Actor;

use super::{AuthError, Principal};

/// The namespace of internal org ids derived from Clerk organisation ids:
/// the version-5 UUID of the URL `https://xentri.io/ns/clerk-organization`.
pub const CLERK_ORG_NAMESPACE: Uuid = Uuid::from_u128(0xf7bb_57ab_c0cb_5a82_9244_1d47_2471_fca8);

/// Longest Clerk organisation id accepted (`org_` and the id).
pub const CLERK_ORG_MAX_LEN: usize = 64;

/// The internal org id for an org as a token or `x-org-id` names it: a UUID
/// as it is, a Clerk organisation id (`org_` followed by letters and digits)
/// by its name-based UUID. Anything else names no org.
pub fn org_ref(text: &str) -> Option<Uuid> {
    let text = text.trim();
    if let Ok(uuid) = text.parse::<Uuid>() {
        return Some(uuid);
    }
    let id = text.strip_prefix("org_")?;
    let valid = !id.is_empty() && text.len() <= CLERK_ORG_MAX_LEN && id.bytes().all(|b| b.is_ascii_alphanumeric());
    valid.then(|| Uuid::new_v5(&CLERK_ORG_NAMESPACE, text.as_bytes()))
}

/// Audience: one string or a list, as RFC 7519 allows.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// `"aud": "x"`.
    One(String),
    /// `"aud": ["x", "y"]`.
    Many(Vec<String>),
}

/// Claims of any accepted token.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
    /// Audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    /// Clerk's authorized party: the origin the session token was made for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    /// Clerk's session-token version (`2` for v2; absent in v1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<u32>,
    /// The active org (Clerk v1 claim, and ours): a Clerk id or a UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    /// The role in the active org (Clerk v1), e.g. `org:admin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_role: Option<String>,
    /// Permissions in the active org (Clerk v1), e.g. `org:invoices:read`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub org_permissions: Vec<String>,
    /// Clerk v2 session tokens carry the active org as `o`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub o: Option<ClerkOrg>,
    /// Clerk v2: the features of the instance, `o:<feature>` for org features,
    /// comma-separated; with `o.per` and `o.fpm` they spell the permissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fea: Option<String>,
    /// Further orgs the caller may switch to with `x-org-id` (Clerk ids or UUIDs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orgs: Vec<String>,
    /// A trace id to continue (service tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// Clerk v2's `o` claim.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClerkOrg {
    /// Org id, `org_…`.
    pub id: String,
    /// Role, without the `org:` prefix (`admin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rol: Option<String>,
    /// Permission names, comma-separated (`read,manage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per: Option<String>,
    /// Per org feature (in `fea` order), a bit mask over `per` (first name =
    /// highest bit), comma-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fpm: Option<String>,
    /// Org slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slg: Option<String>,
}

impl ClerkOrg {
    /// The permissions `o.per`, `o.fpm` and the org features of `fea` spell:
    /// `org:<feature>:<permission>` for every bit set.
    fn permissions(&self, fea: Option<&str>) -> Vec<String> {
        let split = |text: Option<&str>| -> Vec<String> {
            text.unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
        };
        let names = split(self.per.as_deref());
        let features: Vec<String> = split(fea)
            .into_iter()
            .filter_map(|f| f.split_once(':').filter(|(scope, _)| scope.contains('o')).map(|(_, name)| name.to_owned()))
            .collect();
        let masks = split(self.fpm.as_deref());
        let mut permissions = Vec::new();
        for (feature, mask) in features.iter().zip(masks) {
            let Ok(mask) = mask.parse::<u64>() else { continue };
            for (index, name) in names.iter().enumerate() {
                let bit = names.len() - 1 - index;
                if bit < 64 && mask & (1 << bit) != 0 {
                    permissions.push(format!("org:{feature}:{name}"));
                }
            }
        }
        permissions
    }
}

impl Claims {
    /// The org the token is active in, its role there and its permissions
    /// there, from Clerk v2's `o` or else the v1 claims.
    fn active_org(&self) -> Result<(Uuid, Option<String>, Vec<String>), AuthError> {
        let (id, role, permissions) = match &self.o {
            Some(o) => {
                let role = o.rol.as_ref().map(|r| if r.starts_with("org:") { r.clone() } else { format!("org:{r}") });
                (Some(o.id.as_str()), role, o.permissions(self.fea.as_deref()))
            }
            None => (self.org_id.as_deref(), self.org_role.clone(), self.org_permissions.clone()),
        };
        let org = id.and_then(org_ref).ok_or(AuthError::BadClaim("org_id"))?;
        Ok((org, role, permissions))
    }

    /// The principal, acting for `switch_to` when given and granted. A role
    /// and permissions belong to the token's active org: acting for another
    /// org, the principal has neither.
    pub fn into_principal(self, switch_to: Option<Uuid>) -> Result<Principal, AuthError> {
        let (active, role, permissions) = self.active_org()?;
        let (org_id, org_role, permissions) = match switch_to {
            None => (active, role, permissions),
            Some(wanted) if wanted == active => (active, role, permissions),
            Some(wanted) if self.orgs.iter().any(|o| org_ref(o) == Some(wanted)) => (wanted, None, Vec::new()),
            Some(_) => return Err(AuthError::OrgNotGranted),
        };
        let actor = match self.sub.strip_prefix("service:") {
            Some(name) => Actor::service(name),
            None => Actor::user(&self.sub),
        }
        .map_err(|_| AuthError::BadClaim("sub"))?;
        let trace_id = self.trace_id.filter(|t| xentri_core::event::is_trace_id(t));
        Ok(Principal { org_id, actor, subject: self.sub, org_role, permissions, trace_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clerk_namespace_is_the_documented_name_based_uuid() {
        assert_eq!(CLERK_ORG_NAMESPACE, Uuid::new_v5(&Uuid::NAMESPACE_URL, b"https://xentri.io/ns/clerk-organization"));
    }

    #[test]
    fn org_references_map_to_one_stable_internal_id() {
        let uuid = Uuid::new_v4();
        assert_eq!(org_ref(&uuid.to_string()), Some(uuid));
        let clerk = org_ref("org_2abcDEF123").expect("a Clerk id");
        assert_eq!(org_ref(" org_2abcDEF123 "), Some(clerk));
        assert_eq!(clerk.get_version_num(), 5);
        assert_ne!(org_ref("org_2abcDEF124"), Some(clerk));
        for bad in ["", "org_", "acme", "org_a-b", "org_ä", &format!("org_{}", "a".repeat(61))] {
            assert_eq!(org_ref(bad), None, "{bad}");
        }
    }

    fn clerk_v1(org: &str) -> Claims {
        Claims {
            sub: "user_2vYVuser1".to_owned(),
            org_id: Some(org.to_owned()),
            org_role: Some("org:admin".to_owned()),
            org_permissions: vec!["org:invoices:read".to_owned()],
            orgs: vec!["org_2vYVother".to_owned()],
            ..Claims::default()
        }
    }

    #[test]
    fn clerk_v1_and_v2_claims_give_one_org_role_and_permissions() {
        let v1 = clerk_v1("org_2vYVacme").into_principal(None).expect("v1");
        let v2 = Claims {
            sub: "user_2vYVuser1".to_owned(),
            v: Some(2),
            fea: Some("o:invoices".to_owned()),
            o: Some(ClerkOrg {
                id: "org_2vYVacme".to_owned(),
                rol: Some("admin".to_owned()),
                per: Some("read".to_owned()),
                fpm: Some("1".to_owned()),
                slg: Some("acme".to_owned()),
            }),
            ..Claims::default()
        }
        .into_principal(None)
        .expect("v2");
        assert_eq!(v1, v2);
        assert_eq!(v1.org_id, org_ref("org_2vYVacme").expect("id"));
        assert_eq!(v1.org_role.as_deref(), Some("org:admin"));
        assert_eq!(v1.permissions, ["org:invoices:read"]);
    }

    #[test]
    fn acting_for_another_org_carries_no_role_or_permissions_over() {
        let other = org_ref("org_2vYVother").expect("id");
        let switched = clerk_v1("org_2vYVacme").into_principal(Some(other)).expect("granted");
        assert_eq!(switched.org_id, other);
        assert_eq!(switched.org_role, None);
        assert!(switched.permissions.is_empty());
        // Naming the token's own org keeps them.
        let home = org_ref("org_2vYVacme").expect("id");
        let same = clerk_v1("org_2vYVacme").into_principal(Some(home)).expect("own org");
        assert_eq!(same.org_role.as_deref(), Some("org:admin"));
        let foreign = org_ref("org_2vYVforeign").expect("id");
        assert_eq!(clerk_v1("org_2vYVacme").into_principal(Some(foreign)), Err(AuthError::OrgNotGranted));
    }

    #[test]
    fn clerk_v2_permissions_are_spelled_from_features_and_bit_masks() {
        let o = ClerkOrg {
            id: "org_2abc".to_owned(),
            rol: Some("admin".to_owned()),
            per: Some("read,manage".to_owned()),
            fpm: Some("3,2".to_owned()),
            slg: None,
        };
        assert_eq!(
            o.permissions(Some("o:invoices,u:profile,o:dashboard")),
            ["org:invoices:read", "org:invoices:manage", "org:dashboard:read"]
        );
        assert!(o.permissions(None).is_empty());
    }
}
