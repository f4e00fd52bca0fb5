//! `benchkit dlq-seed PREFIX N`: the RESP stream `scripts/bench dlq` pipes
//! into `redis-cli --pipe`, N `XADD PREFIXjobs:dlq *` commands of dead
//! letters as the worker writes them (fresh event and org ids each).

use std::io::Write;

/// The payload every seeded dead letter carries (437 bytes).
pub fn payload() -> String {
    format!(r#"{{"name": "Ada Lovelace", "notes": "{}"}}"#, "x".repeat(400))
}

/// The fields of dead letter `i` (0-based).
pub fn fields(i: u64, id: &str, org_id: &str, payload: &str) -> Vec<String> {
    [
        ("id", id.to_owned()),
        ("seq", (i + 1).to_string()),
        ("org_id", org_id.to_owned()),
        ("type", "xentri.bench.sample.v1".to_owned()),
        ("payload", payload.to_owned()),
        ("actor", "user:bench".to_owned()),
        ("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736".to_owned()),
        ("correlation_id", format!("bench-{}", i % 1000)),
        ("occurred_at", "2026-11-26T10:00:00.000000Z".to_owned()),
        ("dlq_stream", "jobs:work".to_owned()),
        ("dlq_id", format!("{}-0", i + 1)),
        ("dlq_group", "jobs".to_owned()),
        ("dlq_consumer", "bench-1-0".to_owned()),
        ("dlq_attempts", "3".to_owned()),
        ("dlq_error", "downstream timed out".to_owned()),
        ("dlq_failed_at", "2026-11-26T10:00:01.000Z".to_owned()),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_owned(), v])
    .collect()
}

/// One command in RESP: `*N`, then `$len` and the bytes of each argument.
pub fn write_command(out: &mut impl Write, args: &[String]) -> std::io::Result<()> {
    write!(out, "*{}\r\n", args.len())?;
    for arg in args {
        write!(out, "${}\r\n", arg.len())?;
        out.write_all(arg.as_bytes())?;
        out.write_all(b"\r\n")?;
    }
    Ok(())
}

/// Writes the `n` commands to `out`.
pub fn write_seed(out: &mut impl Write, prefix: &str, n: u64) -> std::io::Result<()> {
    let payload = payload();
    let key = format!("{prefix}jobs:dlq");
    for i in 0..n {
        let mut args = vec!["XADD".to_owned(), key.clone(), "*".to_owned()];
        args.extend(fields(i, &uuid::Uuid::new_v4().to_string(), &uuid::Uuid::new_v4().to_string(), &payload));
        write_command(out, &args)?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_resp_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        write_command(&mut out, &["XADD".into(), "k".into(), "é".into()]).unwrap();
        assert_eq!(out, b"*3\r\n$4\r\nXADD\r\n$1\r\nk\r\n$2\r\n\xc3\xa9\r\n");
    }

    #[test]
    fn a_seed_holds_n_commands_of_35_arguments() {
        let mut out = Vec::new();
        write_seed(&mut out, "p:", 3).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("*35\r\n").count(), 3);
        assert!(text.contains("$10\r\np:jobs:dlq\r\n"));
        assert!(text.contains("$7\r\nbench-2\r\n$11\r\noccurred_at"));
        assert_eq!(payload().len(), 437);
    }
}
