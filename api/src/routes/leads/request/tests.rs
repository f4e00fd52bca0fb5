//! The lead routes' parsers: every rule, every error reported at once.

use super::*;

fn fields<T>(result: Result<T, ApiError>) -> Vec<String> {
    match result {
        Err(ApiError::Problem(problem)) => problem.errors.into_iter().map(|e| e.field).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn creations() {
    let (_, lead) = parse_create(br#"{"name":"Ada","email":"ada@example.com","source":"form"}"#).expect("valid");
    assert_eq!(
        lead,
        NewLead { name: "Ada".into(), email: "ada@example.com".into(), company: None, source: LeadSource::Form }
    );
    let (_, lead) =
        parse_create(br#"{"name":"Ada","email":"ada@example.com","company":"AE","source":"manual"}"#).expect("valid");
    assert_eq!(lead.company.as_deref(), Some("AE"));
    assert_eq!(
        fields(parse_create(br#"{"name":" ","email":"nope","source":"fax","x":1}"#)),
        ["x", "name", "email", "source"]
    );
    assert_eq!(fields(parse_create(br#"{}"#)), ["name", "email", "source"]);
    assert_eq!(
        fields(parse_create(br#"{"name":1,"email":2,"company":"","source":"form"}"#)),
        ["name", "email", "company"]
    );
    let long = "a".repeat(MAX_TEXT_CHARS + 1);
    assert_eq!(
        fields(parse_create(format!(r#"{{"name":"{long}","email":"a@b.co","source":"form"}}"#).as_bytes())),
        ["name"]
    );
    assert!(parse_create(b"[").is_err());
    assert_eq!(fields(parse_create(b"[]")), ["body"]);
}

#[test]
fn emails() {
    for good in ["ada@example.com", "a.b+tag@sub.example.co", "x_y@a-b.io", &format!("{}@example.com", "a".repeat(64))]
    {
        assert!(valid_email(good), "{good}");
    }
    let long = format!("a@{}.com", "b".repeat(250));
    for bad in [
        "",
        "ada",
        "@example.com",
        "ada@",
        "ada@example",
        "ada@example.c",
        "ada@@example.com",
        "a da@example.com",
        "ada@-example.com",
        "ada@example-.com",
        "ada@exa_mple.com",
        ".ada@example.com",
        "ada.@example.com",
        "a..da@example.com",
        "ada@example.123",
        "ädа@example.com",
        &long,
        &format!("{}@example.com", "a".repeat(65)),
    ] {
        assert!(!valid_email(bad), "{bad}");
    }
}

#[test]
fn imports_name_every_bad_row() {
    let body = br#"{"leads":[
        {"name":"A","email":"a@example.com","source":"import"},
        {"name":"B","email":"bad","source":"import"},
        {"name":"C","email":"c@example.com","source":"import"},
        {"name":"","email":"d@example.com","source":"nope"},
        7
    ]}"#;
    assert_eq!(fields(parse_import(body)), ["/leads/1/email", "/leads/3/name", "/leads/3/source", "/leads/4"]);
    let row = r#"{"name":"A","email":"a@example.com","source":"import"}"#;
    let rows = |n: usize| format!(r#"{{"leads":[{}]}}"#, vec![row; n].join(","));
    assert_eq!(parse_import(rows(MAX_IMPORT).as_bytes()).map(|(_, leads)| leads.len()).ok(), Some(MAX_IMPORT));
    assert_eq!(fields(parse_import(rows(MAX_IMPORT + 1).as_bytes())), ["/leads"]);
    assert_eq!(fields(parse_import(br#"{"leads":[]}"#)), ["/leads"]);
    assert_eq!(fields(parse_import(br#"{"rows":[]}"#)), ["/rows", "/leads"]);
}

#[test]
fn patches() {
    let (_, changes) = parse_patch(br#"{"email":"new@example.com","company":null}"#).expect("valid");
    assert_eq!(changes, FieldChanges { name: None, email: Some("new@example.com".into()), company: Some(None) });
    assert_eq!(fields(parse_patch(br#"{}"#)), ["body"]);
    assert_eq!(fields(parse_patch(br#"{"status":"won","source":"form","x":1}"#)), ["source", "status", "x"]);
    assert_eq!(fields(parse_patch(br#"{"name":"","email":"bad"}"#)), ["name", "email"]);
}

#[test]
fn transitions() {
    let (_, to, reason) = parse_transition(br#"{"to":"won","reason":"signed"}"#).expect("valid");
    assert_eq!((to, reason.as_deref()), (LeadStatus::Won, Some("signed")));
    assert_eq!(fields(parse_transition(br#"{"to":"done","x":1}"#)), ["x", "to"]);
    assert_eq!(fields(parse_transition(br#"{}"#)), ["to"]);
    let long = "r".repeat(MAX_REASON_CHARS + 1);
    assert_eq!(fields(parse_transition(format!(r#"{{"to":"won","reason":"{long}"}}"#).as_bytes())), ["reason"]);
}

#[test]
fn list_queries() {
    assert_eq!(parse_list_query("").ok(), Some(ListQuery::default()));
    assert!(parse_list_query("").is_ok_and(|q| q.is_cached_page()));
    let query = parse_list_query("status=won&limit=10").expect("valid");
    assert_eq!((query.status, query.limit), (Some(LeadStatus::Won), 10));
    assert!(!query.is_cached_page());
    assert_eq!(
        fields(parse_list_query("limit=0&status=x&after=zz&color=red")),
        ["query.limit", "query.status", "query.after", "query.color"]
    );
    assert_eq!(fields(parse_list_query("limit=1&limit=2")), ["query.limit"]);
    for limit in [1, MAX_LIMIT] {
        assert!(parse_list_query(&format!("limit={limit}")).is_ok());
    }
    assert!(parse_list_query(&format!("limit={}", MAX_LIMIT + 1)).is_err());
}
