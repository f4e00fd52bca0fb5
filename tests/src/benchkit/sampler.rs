//! The arithmetic of the CPU sampler (`benchkit sample`, run by
//! [`super::proc_sampler`]): which process a `/proc/PID/stat` line is, whose
//! it is (the benchmark's own or foreign), the CPU each label used between
//! two snapshots, and the one line the scripts read:
//!
//! ```text
//! FOREIGN cpu_s=S share=P top=name:Ss,... wall_s=W own=name:Ss,... idle=I
//! ```
//!
//! S is the CPU seconds foreign processes used, P that as a percentage of the
//! machine (wall time × CPUs), `top` the four foreign labels that used most,
//! W the wall seconds, `own` the six own labels that used most and I the
//! machine's idle time (idle + iowait) in % of all CPUs. No spaces in values.

/// The name and CPU time (utime + stime, in clock ticks) of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatLine {
    /// `comm`: the text between the first `(` and the last `)`.
    pub comm: String,
    /// utime + stime (fields 14 and 15).
    pub ticks: i64,
}

/// Parses `/proc/PID/stat`; `None` when it does not have the fields.
pub fn parse_stat(stat: &str) -> Option<StatLine> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close).unwrap_or_default().to_owned();
    let rest = stat.get(close + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is the state (stat field 3): utime and stime are 14 and 15.
    let utime: i64 = fields.get(11)?.parse().ok()?;
    let stime: i64 = fields.get(12)?.parse().ok()?;
    Some(StatLine { comm, ticks: utime + stime })
}

/// What a PostgreSQL process is, from its process title.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostgresProcess {
    /// The postmaster or a background process: it serves every database.
    Shared,
    /// A backend of the bench database.
    Bench,
    /// A backend of another database (named).
    Other(String),
}

/// Classifies a PostgreSQL process by its title (`cmdline`, NULs as spaces):
/// a backend's is `postgres: [CLUSTER: ]USER DATABASE HOST ...`, HOST being
/// `[local]` or `address(port)`.
pub fn classify_postgres(title: &str, bench_db: &str) -> PostgresProcess {
    let mut words: Vec<&str> = title.split_whitespace().collect();
    if words.first() != Some(&"postgres:") {
        return PostgresProcess::Shared;
    }
    words.remove(0);
    if words.first().is_some_and(|w| w.ends_with(':')) {
        words.remove(0);
    }
    let host = words.get(2).copied().unwrap_or("");
    if !(host.starts_with("[local]") || host.contains('(')) {
        return PostgresProcess::Shared;
    }
    let database = words.get(1).copied().unwrap_or("");
    if database == bench_db { PostgresProcess::Bench } else { PostgresProcess::Other(database.to_owned()) }
}

/// One process in a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// How it is listed (`api`, `api#2`, `postgres(xentri_bench)`, ...).
    pub label: String,
    /// Its CPU time so far, in clock ticks.
    pub ticks: i64,
    /// Whether it is the benchmark's own.
    pub ours: bool,
}

/// Every process seen, by pid, in the order first seen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// `(pid, sample)` pairs.
    pub processes: Vec<(u32, Sample)>,
}

impl Snapshot {
    /// The sample of `pid`, if seen.
    pub fn get(&self, pid: u32) -> Option<&Sample> {
        self.processes.iter().find(|(p, _)| *p == pid).map(|(_, s)| s)
    }

    /// Takes in `newer`: a pid seen before keeps its place with the newer
    /// sample, a new one goes at the end; a process that ended stays.
    pub fn update(&mut self, newer: Snapshot) {
        let mut index: std::collections::HashMap<u32, usize> =
            self.processes.iter().enumerate().map(|(i, (pid, _))| (*pid, i)).collect();
        for (pid, sample) in newer.processes {
            match index.get(&pid) {
                Some(&i) => self.processes[i].1 = sample,
                None => {
                    index.insert(pid, self.processes.len());
                    self.processes.push((pid, sample));
                }
            }
        }
    }
}

/// CPU seconds by label of the own (`ours`) or foreign processes between
/// `first` and `last`, in the order labels first appear in `last`.
pub fn by_label(first: &Snapshot, last: &Snapshot, ours: bool, ticks_per_second: i64) -> Vec<(String, f64)> {
    let first_ticks: std::collections::HashMap<u32, i64> =
        first.processes.iter().map(|(pid, s)| (*pid, s.ticks)).collect();
    let mut totals: Vec<(String, f64)> = Vec::new();
    for (pid, sample) in &last.processes {
        if sample.ours != ours {
            continue;
        }
        let used = sample.ticks - first_ticks.get(pid).copied().unwrap_or(0);
        // A reused pid can make it negative.
        if used > 0 {
            let seconds = used as f64 / ticks_per_second as f64;
            match totals.iter_mut().find(|(label, _)| *label == sample.label) {
                Some(total) => total.1 += seconds,
                None => totals.push((sample.label.clone(), seconds)),
            }
        }
    }
    totals
}

/// The `limit` labels that used most (ties in first-seen order) and at least
/// 0.1 s, as `name:1.2s,...`; `-` when none did.
pub fn listing(totals: &[(String, f64)], limit: usize) -> String {
    let mut top: Vec<&(String, f64)> = totals.iter().collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    let shown: Vec<String> = top
        .into_iter()
        .take(limit)
        .filter(|(_, secs)| *secs >= 0.1)
        .map(|(label, secs)| format!("{label}:{secs:.1}s"))
        .collect();
    if shown.is_empty() { "-".to_owned() } else { shown.join(",") }
}

/// Idle (idle + iowait) and total jiffies of all CPUs from the first line of
/// `/proc/stat` (`cpu user nice system idle iowait irq softirq steal ...`).
pub fn idle_and_total(proc_stat: &str) -> Option<(i64, i64)> {
    let values: Vec<i64> =
        proc_stat.lines().next()?.split_whitespace().skip(1).map(str::parse).collect::<Result<_, _>>().ok()?;
    if values.len() < 5 {
        return None;
    }
    // Guest time is inside user: the first eight are the whole.
    Some((values[3] + values[4], values.iter().take(8).sum()))
}

/// What one run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// CPU seconds by label, foreign processes.
    pub foreign: Vec<(String, f64)>,
    /// CPU seconds by label, the benchmark's own.
    pub own: Vec<(String, f64)>,
    /// Wall seconds sampled.
    pub wall: f64,
    /// CPUs of the machine.
    pub cpus: usize,
    /// Idle jiffies meanwhile.
    pub idle_jiffies: i64,
    /// All jiffies meanwhile.
    pub total_jiffies: i64,
}

/// The `FOREIGN ...` line, with its newline.
pub fn foreign_line(m: &Measured) -> String {
    // Summed from +0.0 (`Sum` for floats starts at -0.0, which prints as `-0.0`).
    let total = m.foreign.iter().fold(0.0, |sum, (_, s)| sum + s);
    let share = if m.wall > 0.0 { 100.0 * total / (m.wall * m.cpus as f64) } else { 0.0 };
    let idle = 100.0 * m.idle_jiffies as f64 / m.total_jiffies.max(1) as f64;
    format!(
        "FOREIGN cpu_s={total:.1} share={share:.0} top={} wall_s={:.1} own={} idle={idle:.0}\n",
        listing(&m.foreign, 4),
        m.wall,
        listing(&m.own, 6),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(label: &str, ticks: i64, ours: bool) -> Sample {
        Sample { label: label.to_owned(), ticks, ours }
    }

    #[test]
    fn stat_lines_with_spaces_and_parentheses_in_the_name() {
        let stat = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 1500 0 0 0 731 129 0 0 20 0 9 0 1234 0 0";
        assert_eq!(parse_stat(stat), Some(StatLine { comm: "tokio (rt) x".into(), ticks: 860 }));
        assert_eq!(parse_stat("12 (short) S 1 2"), None);
        assert_eq!(parse_stat("no parentheses"), None);
    }

    #[test]
    fn postgres_titles() {
        let db = "xentri_bench";
        assert_eq!(classify_postgres("/usr/lib/postgresql/15/bin/postgres -D x", db), PostgresProcess::Shared);
        assert_eq!(classify_postgres("postgres: 15/main: checkpointer ", db), PostgresProcess::Shared);
        assert_eq!(
            classify_postgres("postgres: 15/main: postgres xentri_bench 127.0.0.1(5532) idle", db),
            PostgresProcess::Bench
        );
        assert_eq!(
            classify_postgres("postgres: postgres other [local] SELECT", db),
            PostgresProcess::Other("other".into())
        );
        assert_eq!(classify_postgres("postgres: autovacuum launcher", db), PostgresProcess::Shared);
        assert_eq!(classify_postgres("", db), PostgresProcess::Shared);
    }

    #[test]
    fn update_keeps_places_and_ended_processes() {
        let mut last = Snapshot { processes: vec![(1, sample("a", 1, true)), (2, sample("b", 1, false))] };
        last.update(Snapshot { processes: vec![(3, sample("c", 5, false)), (1, sample("a", 9, true))] });
        let pids: Vec<u32> = last.processes.iter().map(|(p, _)| *p).collect();
        assert_eq!(pids, [1, 2, 3]);
        assert_eq!(last.get(1).map(|s| s.ticks), Some(9));
    }

    #[test]
    fn cpu_by_label_and_listing() {
        let first = Snapshot { processes: vec![(1, sample("cargo", 100, false)), (2, sample("rustc", 50, false))] };
        let mut last = first.clone();
        last.update(Snapshot {
            processes: vec![
                (1, sample("cargo", 130, false)),
                (2, sample("rustc", 40, false)),
                (3, sample("rustc", 250, false)),
                (4, sample("api", 480, true)),
                (5, sample("tiny", 4, false)),
            ],
        });
        let foreign = by_label(&first, &last, false, 100);
        assert_eq!(foreign, vec![("cargo".into(), 0.3), ("rustc".into(), 2.5), ("tiny".into(), 0.04)]);
        assert_eq!(listing(&foreign, 4), "rustc:2.5s,cargo:0.3s");
        assert_eq!(listing(&foreign[2..], 4), "-");
        let own = by_label(&first, &last, true, 100);
        let line =
            foreign_line(&Measured { foreign, own, wall: 10.04, cpus: 2, idle_jiffies: 150, total_jiffies: 2000 });
        assert_eq!(line, "FOREIGN cpu_s=2.8 share=14 top=rustc:2.5s,cargo:0.3s wall_s=10.0 own=api:4.8s idle=8\n");
    }

    #[test]
    fn no_wall_time_is_no_share() {
        let m = Measured { foreign: vec![], own: vec![], wall: 0.0, cpus: 2, idle_jiffies: 0, total_jiffies: 0 };
        assert_eq!(foreign_line(&m), "FOREIGN cpu_s=0.0 share=0 top=- wall_s=0.0 own=- idle=0\n");
    }

    #[test]
    fn proc_stat_first_line() {
        let text = "cpu  100 5 50 1000 20 1 2 3 7 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        assert_eq!(idle_and_total(text), Some((1020, 1181)));
        assert_eq!(idle_and_total("cpu x"), None);
    }
}
