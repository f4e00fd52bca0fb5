//! The event contracts over HTTP: the schemas routes, payloads of known types
//! checked on append, and the contract test — the Soul, Leads and Sites flows
//! and the language choices driven through the api, every event they stored valid against its
//! schema, and no type emitted without one.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;
use xentri_core::contracts::Contracts;

use crate::helpers::{BILLING_SECRET, SAMPLE_TYPE, TestApp, json, spawn_app, user_token};

fn contracts() -> Contracts {
    Contracts::load().expect("the embedded contracts compile")
}

/// A mutation that must succeed: method, path, token, If-Match version, body;
/// the answer's body.
async fn mutate(app: &TestApp, method: Method, path: &str, token: &str, version: Option<i64>, body: Value) -> Value {
    let mut request = app
        .client
        .request(method.clone(), app.url(path))
        .bearer_auth(token)
        .header("idempotency-key", Uuid::new_v4().to_string())
        .header("x-correlation-id", "contract-test")
        .json(&body);
    if let Some(version) = version {
        request = request.header("if-match", format!("\"{version}\""));
    }
    let (status, _, answer) = json(request.send().await.expect("request sent")).await;
    assert!((200..300).contains(&status), "{method} {path} {body} answered {status}: {answer}");
    answer
}

fn version(answer: &Value) -> i64 {
    answer["version"].as_i64().expect("a version")
}

/// Every step of the Soul Generation Flow, content replaced in both states
/// that allow it, approved twice (`created`, then `updated`).
async fn drive_the_soul(app: &TestApp, org: Uuid) {
    let token = user_token(org);
    let service =
        xentri_api::auth::token::service_token(BILLING_SECRET, "billing", org, std::time::Duration::from_secs(300))
            .expect("a service token");
    let soul = mutate(app, Method::POST, "/api/v1/soul", &token, None, json!({})).await;
    let to = |state: &str| json!({"to": state});
    let transitions = "/api/v1/soul/transitions";
    let soul = mutate(app, Method::POST, transitions, &token, Some(version(&soul)), to("conversing")).await;
    let answer = json!({"to": "conversing", "reason": "first answer", "sections": {"mission": "We help teams ship."}});
    let soul = mutate(app, Method::POST, transitions, &token, Some(version(&soul)), answer).await;
    let content = json!({"content": {"mission": "We help small teams ship.", "audience": ["founders"]}});
    let soul = mutate(app, Method::PUT, "/api/v1/soul", &token, Some(version(&soul)), content).await;
    let soul = mutate(app, Method::POST, transitions, &token, Some(version(&soul)), to("drafting")).await;
    let draft = json!({"to": "review_pending", "sections": {"mission": "Drafted.", "voice": {"tone": "warm"}}});
    let soul = mutate(app, Method::POST, transitions, &service, Some(version(&soul)), draft).await;
    let soul = mutate(app, Method::POST, transitions, &token, Some(version(&soul)), to("editing")).await;
    let edit = json!({"content": {"mission": "Edited.", "voice": "direct"}});
    let soul = mutate(app, Method::PUT, "/api/v1/soul", &token, Some(version(&soul)), edit).await;
    let soul = mutate(app, Method::POST, transitions, &token, Some(version(&soul)), to("review_pending")).await;
    let soul = mutate(app, Method::POST, transitions, &token, Some(version(&soul)), to("approved")).await;
    let soul = mutate(app, Method::POST, transitions, &token, Some(version(&soul)), to("editing")).await;
    let soul = mutate(app, Method::POST, transitions, &token, Some(version(&soul)), to("review_pending")).await;
    let approval = json!({"to": "approved", "reason": "looks right"});
    mutate(app, Method::POST, transitions, &token, Some(version(&soul)), approval).await;
}

/// Leads created one by one (with and without a company) and by import, their
/// fields changed, and every terminal transition taken.
async fn drive_the_leads(app: &TestApp, org: Uuid) {
    let token = user_token(org);
    let leads = "/api/v1/sales/leads";
    let new = |i: usize, company: Value| json!({"name": format!("Lead {i}"), "email": format!("lead{i}@example.com"), "company": company, "source": "form"});
    let mut created = vec![
        mutate(app, Method::POST, leads, &token, None, new(1, json!("Acme"))).await,
        mutate(app, Method::POST, leads, &token, None, new(2, Value::Null)).await,
    ];
    let import = json!({"leads": [
        {"name": "Imported", "email": "imported@example.com", "source": "import"},
        {"name": "Manual", "email": "manual@example.org", "company": "Globex", "source": "manual"},
    ]});
    let imported = mutate(app, Method::POST, "/api/v1/sales/leads:import", &token, None, import).await;
    created.extend(imported["data"].as_array().expect("the imported leads").iter().cloned());

    let path = |lead: &Value| format!("{leads}/{}", lead["id"].as_str().expect("an id"));
    let patch = json!({"name": "Lead One", "email": "one@example.com", "company": null});
    created[0] = mutate(app, Method::PATCH, &path(&created[0]), &token, Some(version(&created[0])), patch).await;
    let walks: [&[&str]; 3] = [
        &["contacted", "disqualified"],
        &["contacted", "qualified", "proposal", "won"],
        &["contacted", "qualified", "proposal", "lost"],
    ];
    for (lead, walk) in created.iter().zip(walks) {
        let mut lead = lead.clone();
        for (n, to) in walk.iter().enumerate() {
            // Every other step without a reason: `reason` is null in its events.
            let body = if n % 2 == 0 { json!({"to": to, "reason": "next step"}) } else { json!({"to": to}) };
            let transitions = format!("{}/transitions", path(&lead));
            lead = mutate(app, Method::POST, &transitions, &token, Some(version(&lead)), body).await;
        }
    }
}

/// The caller's language chosen and cleared, and the org's default chosen.
async fn drive_the_choices(app: &TestApp, org: Uuid) {
    let token = user_token(org);
    let me = "/api/v1/me/preferences";
    let chosen = mutate(app, Method::PUT, me, &token, Some(0), json!({"language": "de"})).await;
    mutate(app, Method::PUT, me, &token, Some(version(&chosen)), json!({"language": null})).await;
    mutate(app, Method::PUT, "/api/v1/org/settings", &token, Some(0), json!({"default_language": "es"})).await;
}

/// A site created, edited, previewed, taken back to draft, and sent to be
/// built (the build's own events, `published` and `build_failed`, need the
/// worker: `tests/tests/e2e/sites.rs` checks them against their contracts).
async fn drive_the_sites(app: &TestApp, org: Uuid) {
    let token = user_token(org);
    let sites = "/api/v1/marketing/sites";
    let page = |text: &str| json!([{"slug": "home", "title": "Home", "blocks": [{"type": "text", "text": text}]}]);
    let site = mutate(app, Method::POST, sites, &token, None, json!({"name": "Acme", "pages": page("Hello")})).await;
    let path = format!("{sites}/{}", site["id"].as_str().expect("id"));
    let transitions = format!("{path}/transitions");
    let edit = json!({"name": "Acme Bakery", "pages": page("Fresh bread")});
    let site = mutate(app, Method::PATCH, &path, &token, Some(version(&site)), edit).await;
    let site = mutate(app, Method::POST, &transitions, &token, Some(version(&site)), json!({"to": "preview"})).await;
    let back = json!({"to": "draft", "reason": "one more change"});
    let site = mutate(app, Method::POST, &transitions, &token, Some(version(&site)), back).await;
    let site = mutate(app, Method::POST, &transitions, &token, Some(version(&site)), json!({"to": "preview"})).await;
    mutate(app, Method::POST, &transitions, &token, Some(version(&site)), json!({"to": "publishing"})).await;
}

/// Every event of `org`, through `GET /api/v1/events`, page by page.
async fn every_event(app: &TestApp, org: Uuid) -> Vec<Value> {
    let token = user_token(org);
    let mut events = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let query = after.as_ref().map_or(String::new(), |cursor| format!("&after={cursor}"));
        let request = app.client.get(app.url(&format!("/api/v1/events?limit=1000{query}"))).bearer_auth(&token);
        let (status, _, page) = json(request.send().await.expect("request sent")).await;
        assert_eq!(status, 200, "{page}");
        events.extend(page["data"].as_array().expect("data").iter().cloned());
        if page["has_more"] != true {
            return events;
        }
        after = page["next"].as_str().map(str::to_owned);
    }
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn every_event_the_flows_emit_is_valid_against_its_contract(_: PgPoolOptions, options: PgConnectOptions) {
    let owner = options.clone();
    let app = spawn_app(options).await;
    let org = Uuid::new_v4();
    drive_the_soul(&app, org).await;
    drive_the_leads(&app, org).await;
    drive_the_choices(&app, org).await;
    drive_the_sites(&app, org).await;
    let contracts = contracts();
    // A listing shows what committed below the server's commit horizon: a
    // transaction of a test running beside this one can hold the newest
    // events back for a moment. Every stored event is awaited.
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect_with(&owner).await.expect("connect");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM system_events WHERE org_id = $1")
        .bind(org)
        .fetch_one(&mut conn)
        .await
        .expect("count");
    let events = crate::helpers::eventually(crate::helpers::DEADLINE, "every stored event to be listed", || async {
        let events = every_event(&app, org).await;
        if events.len() as i64 == stored { Ok(events) } else { Err(format!("{} of {stored} listed", events.len())) }
    })
    .await;
    let mut emitted = BTreeSet::new();
    for event in &events {
        let event_type = event["type"].as_str().expect("a type");
        emitted.insert(event_type.to_owned());
        assert_eq!(contracts.envelope().validate(event), Ok(()), "the envelope of {event}");
        let schema =
            contracts.event(event_type).unwrap_or_else(|| panic!("{event_type} is emitted without a contract"));
        assert_eq!(schema.validate(&event["payload"]), Ok(()), "the payload of {event}");
    }
    let expected: BTreeSet<String> = [
        "xentri.soul.initiated.v1",
        "xentri.soul.transitioned.v1",
        "xentri.soul.content_replaced.v1",
        "xentri.soul.created.v1",
        "xentri.soul.updated.v1",
        "xentri.lead.created.v1",
        "xentri.lead.updated.v1",
        "xentri.lead.disqualified.v1",
        "xentri.deal.won.v1",
        "xentri.deal.lost.v1",
        "xentri.user.preferences.updated.v1",
        "xentri.org.settings.updated.v1",
        "xentri.website.created.v1",
        "xentri.website.updated.v1",
        "xentri.website.build_requested.v1",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(emitted, expected, "the flows emitted every type they have");
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn the_schemas_are_listed_and_served(_: PgPoolOptions, options: PgConnectOptions) {
    let app = spawn_app(options).await;
    let token = user_token(Uuid::new_v4());
    let contracts = contracts();
    let get = |path: &str| app.client.get(app.url(path)).bearer_auth(&token).send();
    let (status, _, list) = json(get("/api/v1/schemas").await.expect("sent")).await;
    assert_eq!(status, 200, "{list}");
    let listed: Vec<&str> = list["data"].as_array().expect("data").iter().filter_map(|e| e["type"].as_str()).collect();
    let known: Vec<&str> = contracts.events().map(|s| s.name()).collect();
    assert_eq!(listed, known, "every contract, sorted by type");
    assert_eq!(
        list["data"][0],
        json!({"type": known[0], "version": 1, "url": format!("/api/v1/schemas/{}", known[0])})
    );
    assert_eq!(
        (&list["envelope"], &list["new_event"]),
        (&json!("/api/v1/schemas/envelope"), &json!("/api/v1/schemas/new-event"))
    );

    for (path, text) in [
        ("/api/v1/schemas/xentri.lead.created.v1", contracts.event("xentri.lead.created.v1").map(|s| s.text())),
        ("/api/v1/schemas/envelope", Some(contracts.envelope().text())),
        ("/api/v1/schemas/new-event", Some(contracts.new_event().text())),
    ] {
        let response = get(path).await.expect("sent");
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["content-type"], "application/schema+json", "{path}");
        assert_eq!(Some(response.text().await.expect("body").as_str()), text, "{path} is served as written");
    }
    let (status, _, problem) = json(get(&format!("/api/v1/schemas/{SAMPLE_TYPE}")).await.expect("sent")).await;
    assert_eq!(status, 404, "a type without a contract: {problem}");
    let anonymous = app.get("/api/v1/schemas").await;
    assert_eq!(anonymous.status(), 401, "the schemas are served to authenticated callers, like every route");
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn payloads_of_known_types_are_checked_and_unknown_types_pass(_: PgPoolOptions, options: PgConnectOptions) {
    let app = spawn_app(options).await;
    let token = user_token(Uuid::new_v4());
    let bad = json!({"type": "xentri.lead.created.v1", "payload": {
        "lead_id": Uuid::new_v4(), "name": "Ada", "email": "ada", "company": null, "source": "fax", "status": "new",
        "version": 1,
    }});
    let (status, _, problem) = json(app.post_event(&token, "bad-lead", bad).await).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["type"], "https://xentri.io/errors/validation-failed");
    let fields: BTreeSet<&str> =
        problem["errors"].as_array().expect("errors").iter().filter_map(|e| e["field"].as_str()).collect();
    assert_eq!(fields, BTreeSet::from(["/payload/email", "/payload/source"]), "{problem}");

    let valid = crate::helpers::event_body("xentri.lead.created.v1");
    assert_eq!(app.post_event(&token, "good-lead", valid).await.status(), 201);
    let unknown = json!({"type": SAMPLE_TYPE, "payload": {"anything": ["goes", 1]}});
    assert_eq!(app.post_event(&token, "unknown", unknown).await.status(), 201, "a type without a contract");
    app.stop().await;
}
