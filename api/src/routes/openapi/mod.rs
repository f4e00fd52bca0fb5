//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of what is served.
//!
//! The document is generated from the routes' `utoipa` attributes and the
//! types requests are parsed into; [`rules`] states what attributes cannot,
//! and its tests hold every pattern in the document to the parser that
//! enforces it.

pub mod headers;
pub mod responses;
pub mod rules;

use std::sync::OnceLock;

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::{Reply, Response};

use self::rules::Rules;
use crate::i18n::Lang;
use crate::leads::list::LeadPage;
use crate::leads::machine::LeadStatus;
use crate::leads::store::{Lead, LeadSource};
use crate::preferences::{OrgSettings, UserPreferences};
use crate::problem::{FieldError, ProblemDocument};
use crate::routes::events::EventPage;
use crate::routes::events::request::NewEventBody;
use crate::routes::health::HealthStatus;
use crate::routes::leads::LeadImportAnswer;
use crate::routes::leads::request::{LeadImportBody, LeadPatchBody, LeadTransitionBody, NewLeadBody};
use crate::routes::preferences::{OrgSettingsBody, PreferencesBody};
use crate::routes::schemas::{SchemaEntry, SchemaList};
use crate::routes::sites::request::{NewSiteBody, SitePatchBody, SiteTransitionBody};
use crate::routes::soul::request::{ContentBody, CreateBody, TransitionBody};
use crate::soul::machine::SoulState;
use crate::soul::store::Soul;
use xentri_core::StoredEvent;
use xentri_core::site::Site;
use xentri_core::site::machine::SiteState;
use xentri_core::site::page::{Block, Page};

/// The document's source: every path and schema.
#[derive(OpenApi)]
#[openapi(
    info(title = "Xentri API", description = "The Xentri API: the event log and its contracts, the org's Soul, its sales leads and its websites. Every error answer is an \
        RFC 9457 problem document (`application/problem+json`) whose `title` follows the caller's language: their own \
        choice, then `Accept-Language`, then the org's default, then English."),
    paths(
        super::health::health,
        super::health::ready,
        super::metrics::metrics,
        openapi,
        super::events::append,
        super::events::list,
        super::events::get,
        super::soul::get,
        super::soul::create,
        super::soul::replace_content,
        super::soul::transition,
        super::leads::create,
        super::leads::list,
        super::leads::get,
        super::leads::update,
        super::leads::transition,
        super::leads::import,
        super::sites::create,
        super::sites::get,
        super::sites::update,
        super::sites::transition,
        super::sites::html,
        super::schemas::list,
        super::schemas::get,
        super::preferences::get_preferences,
        super::preferences::put_preferences,
        super::preferences::get_org_settings,
        super::preferences::put_org_settings,
    ),
    components(schemas(ProblemDocument, FieldError, HealthStatus, StoredEvent, EventPage, NewEventBody, Soul,
        SoulState, TransitionBody, ContentBody, CreateBody, Lead, LeadSource, LeadStatus, LeadPage, NewLeadBody,
        LeadImportBody, LeadImportAnswer, LeadPatchBody, LeadTransitionBody, Site, SiteState, Page, Block,
        NewSiteBody, SitePatchBody, SiteTransitionBody, SchemaList, SchemaEntry, Lang, UserPreferences, OrgSettings,
        PreferencesBody, OrgSettingsBody)),
    modifiers(&SecuritySchemes, &Rules),
    tags(
        (name = "events", description = "The immutable event log of the caller's org"),
        (name = "health", description = "Liveness and readiness"),
        (name = "soul", description = "The org's Soul: one per org, a state machine (the Soul Generation Flow) whose \
            changes append their events in the same transaction"),
        (name = "leads", description = "The org's sales leads: each a state machine (the Lead Lifecycle Flow) whose \
            changes append their events in the same transaction"),
        (name = "sites", description = "The org's websites: each a state machine (the Website Publish Flow) whose \
            changes append their events in the same transaction; publishing runs a build job in the worker"),
        (name = "schemas", description = "The event contracts: JSON Schemas (draft 2020-12) of the envelope and of \
            each event type's payload; a payload of a listed type must be valid against its schema"),
        (name = "preferences", description = "Language choices: the caller's own and the org's default. A problem's \
            `title` follows the caller's choice, then `Accept-Language`, then the org's default, then English"),
        (name = "operations", description = "Metrics and this document"),
    )
)]
pub struct ApiDoc;

/// Bearer JWTs (Clerk user tokens, service tokens, dev tokens), or Clerk's
/// `__session` cookie.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("__session"))),
        );
    }
}

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| ApiDoc::openapi().to_pretty_json().unwrap_or_else(|_| "{}".to_owned()))
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
pub fn openapi() -> BoxedFilter<(Response,)> {
    warp::path!("api" / "v1" / "openapi.json")
        .and(warp::get())
        .map(|| warp::reply::with_header(document(), "content-type", "application/json").into_response())
        .boxed()
}
