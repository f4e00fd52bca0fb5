//! The built-in consumer groups, and the registry that wires them from
//! `[worker.groups]`.

pub mod cache;
pub mod counts;
pub mod jobs;
pub mod site_build;

use std::sync::Arc;

use xentri_core::Settings;

use crate::handler::Handler;

/// The built-in handlers the settings enable. A listed group that is neither
/// built in nor in `others` (groups registered in code) is a start-up error:
/// a typo would otherwise run nothing.
pub fn builtin(settings: &Settings, others: &[&str]) -> Result<Vec<Arc<dyn Handler>>, String> {
    let mut handlers: Vec<Arc<dyn Handler>> = Vec::new();
    for (name, group) in &settings.worker.groups {
        let handler: Arc<dyn Handler> = match name.as_str() {
            cache::GROUP => Arc::new(cache::CacheInvalidation::new(settings)),
            counts::GROUP => Arc::new(counts::EventCounts::new(settings)),
            jobs::GROUP => Arc::new(jobs::Jobs::new(settings)),
            site_build::GROUP => Arc::new(site_build::SiteBuilds::new(settings)),
            other if others.contains(&other) => continue,
            other => {
                return Err(format!(
                    "configuration error: unknown key `worker.groups.{other}`: built-in groups are {}, {}, {} and {}",
                    cache::GROUP,
                    counts::GROUP,
                    jobs::GROUP,
                    site_build::GROUP
                ));
            }
        };
        if group.enabled {
            handlers.push(handler);
        }
    }
    Ok(handlers)
}
