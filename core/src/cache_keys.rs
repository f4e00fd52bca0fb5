//! The logical names of the cached reads (before `redis.key_prefix`), shared by
//! the api, which fills them, and the worker, which deletes them.
//!
//! | resource | key | invalidated by |
//! |---|---|---|
//! | Soul | `soul:{org_id}` | `xentri.soul.updated.v1` |
//! | Site | `site:{org_id}:{site_id}` | `xentri.website.published.v1`, `xentri.website.build_failed.v1` |
//! | Leads | `leads:list:{org_id}` | `xentri.lead.created.v1`, `xentri.lead.updated.v1` |

use uuid::Uuid;

/// The org's Soul.
pub fn soul(org_id: Uuid) -> String {
    format!("soul:{org_id}")
}

/// One site of the org.
pub fn site(org_id: Uuid, site_id: &str) -> String {
    format!("site:{org_id}:{site_id}")
}

/// The version floor of a versioned cached read (`key` a Soul's or a site's,
/// with or without the prefix): the version of the latest change the worker
/// invalidated the key for. The api caches no older version while it lives,
/// so a read that loaded the resource just before that change cannot put its
/// answer back after the key was deleted.
pub fn floor(key: &str) -> String {
    format!("{key}:floor")
}

/// The generation of an unversioned cached read (the leads list), with or
/// without the prefix: a counter the worker raises with every deletion of
/// `key`. The api stores what it read only while the generation is the one it
/// saw before reading, so a read that loaded the list before a change cannot
/// put its answer back after the key was deleted.
pub fn generation(key: &str) -> String {
    format!("{key}:gen")
}

/// The first page of the org's leads.
pub fn leads_list(org_id: Uuid) -> String {
    format!("leads:list:{org_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let org = Uuid::nil();
        assert_eq!(soul(org), "soul:00000000-0000-0000-0000-000000000000");
        assert_eq!(site(org, "s1"), "site:00000000-0000-0000-0000-000000000000:s1");
        assert_eq!(leads_list(org), "leads:list:00000000-0000-0000-0000-000000000000");
        assert_eq!(floor(&soul(org)), "soul:00000000-0000-0000-0000-000000000000:floor");
        assert_eq!(generation(&leads_list(org)), "leads:list:00000000-0000-0000-0000-000000000000:gen");
    }
}
