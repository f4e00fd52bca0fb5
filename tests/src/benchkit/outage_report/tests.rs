//! The outage report on a fixture: `fixtures/drills.md` is the report, in
//! the format BENCHMARKS.md keeps, of `fixtures/drills.jsonl`.

use super::*;

const DRILLS: &str = include_str!("../fixtures/drills.jsonl");
const REPORT: &str = include_str!("../fixtures/drills.md");

#[test]
fn the_fixture_report_is_unchanged() {
    let drills = parse_drills(DRILLS, "drills.jsonl").unwrap();
    assert_eq!(drills.len(), 6);
    assert_eq!(report(&drills).unwrap(), REPORT);
}

#[test]
fn failed_checks_count_falsy_held() {
    let drills = parse_drills(DRILLS, "drills.jsonl").unwrap();
    assert_eq!(failed_checks(&drills).unwrap(), 3);
}

#[test]
fn a_drill_without_checks_is_an_error() {
    let drills = parse_drills(r#"{"drill": "x", "figures": {}}"#, "t").unwrap();
    assert!(report(&drills).is_err());
    assert!(failed_checks(&drills).is_err());
}

#[test]
fn statuses_of_odd_figures() {
    assert_eq!(statuses(None).unwrap(), "–");
    assert_eq!(statuses(Some(&PyValue::Str("x".into()))).unwrap(), "–");
    assert_eq!(statuses(Some(&PyValue::Dict(vec![]))).unwrap(), "none");
    assert_eq!(short(&"é".repeat(241)), format!("{} …", "é".repeat(240)));
}
