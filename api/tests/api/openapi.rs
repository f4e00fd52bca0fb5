use std::collections::BTreeSet;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use xentri_api::routes::ROUTES;

use crate::helpers::{json, spawn_app};

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn document_is_openapi_3_1_and_stable(_: PgPoolOptions, options: PgConnectOptions) {
    let app = spawn_app(options).await;
    let (status, headers, document) = json(app.get("/api/v1/openapi.json").await).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(document["openapi"], "3.1.0");
    insta::assert_json_snapshot!("openapi", document);
    app.stop().await;
}

#[sqlx::test(migrator = "xentri_core::MIGRATOR")]
async fn document_describes_exactly_what_is_served(_: PgPoolOptions, options: PgConnectOptions) {
    let app = spawn_app(options).await;
    let (_, _, document) = json(app.get("/api/v1/openapi.json").await).await;
    let mut documented = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let served: BTreeSet<(String, String)> =
        ROUTES.iter().map(|r| (r.method.to_owned(), r.template.to_owned())).collect();
    assert_eq!(documented, served);

    // And each is really answered (no path parameters among these yet).
    for route in ROUTES.iter().filter(|r| r.method == "GET" && !r.template.contains('{')) {
        let status = app.get(route.template).await.status().as_u16();
        assert!(status != 404 && status != 405, "{} {} answered {status}", route.method, route.template);
    }
    app.stop().await;
}
