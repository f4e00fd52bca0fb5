//! The lines of the soak's section beside its table: the CPU other
//! processes took, the CPU the soak's own processes took, and what the api
//! and the worker logged.

use super::super::cpu::CpuShare;
use super::super::figures::fixed;

/// Other processes' share of the CPUs during the run, one sentence.
pub fn foreign_summary(name: &str, cpu: &CpuShare) -> String {
    let part = match cpu.foreign {
        None => format!("{name} ?"),
        Some(share) if share >= 1 && !cpu.foreign_top.is_empty() && cpu.foreign_top != "-" => {
            format!("{name} {share} % ({})", cpu.foreign_top)
        }
        Some(_) => format!("{name} 0 %"),
    };
    let mut text = format!("Other processes' share of the CPUs during each scenario: {part}.");
    if cpu.foreign.unwrap_or(0) >= 10 {
        text.push_str(" **These figures are disturbed by that work: compare with care.**");
    }
    text
}

/// The own processes' CPU in CPUs on average: `label 0.89, ...`.
pub fn own_cpus(cpu: &CpuShare) -> String {
    if cpu.wall <= 0.0 {
        return String::new();
    }
    let mut parts = Vec::new();
    for item in cpu.own.split(',') {
        let Some((label, secs)) = item.rsplit_once(':') else { continue };
        let Some(secs) = secs.strip_suffix('s') else { continue };
        if secs.is_empty() || !secs.chars().all(|c| c.is_ascii_digit() || c == '.') {
            continue;
        }
        let secs: f64 = secs.parse().unwrap_or(0.0);
        parts.push(format!("{label} {}", fixed(secs / cpu.wall, 2)));
    }
    parts.join(", ")
}

/// One line on what a process logged: `- NAME: L lines (S MiB), N at WARN
/// or ERROR`, with the first of those (cut at 300 bytes, backquotes made
/// quotes) when there are any; `log` is read line by line.
pub fn log_line(name: &str, mut log: impl std::io::BufRead) -> std::io::Result<String> {
    let (mut lines, mut bytes, mut n) = (0_u64, 0_u64, 0_u64);
    let mut first: Option<Vec<u8>> = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = log.read_until(b'\n', &mut line)?;
        if read == 0 {
            break;
        }
        bytes += read as u64;
        if line.ends_with(b"\n") {
            lines += 1;
        }
        let warned = [&br#""level":"WARN""#[..], &br#""level":"ERROR""#[..]]
            .iter()
            .any(|needle| line.windows(needle.len()).any(|w| w == *needle));
        if warned {
            n += 1;
            if first.is_none() {
                let end = if line.ends_with(b"\n") { line.len() - 1 } else { line.len() };
                first = Some(line[..end.min(300)].to_vec());
            }
        }
    }
    let mut text =
        format!("- {name}: {lines} lines ({} MiB), {n} at WARN or ERROR", fixed(bytes as f64 / 1_048_576.0, 1));
    if let Some(first) = first {
        let cut = match std::str::from_utf8(&first) {
            Ok(text) => text.to_owned(),
            Err(e) => String::from_utf8_lossy(&first[..e.valid_up_to()]).into_owned(),
        };
        text.push_str(&format!(", first: `{}`", cut.replace('`', "'")));
    }
    Ok(text)
}
