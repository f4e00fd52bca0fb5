//! The line every bench section gives on the other work measured beside its
//! scenarios: each scenario's foreign CPU share (from [`super::cpu::Sampler`])
//! and, when one of them reached 10 %, a warning that the figures are
//! disturbed.

use super::cpu::CpuShare;

/// A foreign share at or above this (in % of all CPUs) disturbs the figures.
const DISTURBED_AT: u64 = 10;

/// `Other processes' share of the CPUs during each scenario: raw 0 %; relay
/// 1 % (kdamond.0:0.1s).`, one item per `(name, share)` in order; a scenario
/// without a sampler line reads `name ?`, one under 1 % (or without a top
/// list) `name 0 %`. No trailing newline.
pub fn foreign_summary(scenarios: &[(&str, &CpuShare)]) -> String {
    let mut worst = 0;
    let parts: Vec<String> = scenarios
        .iter()
        .map(|(name, cpu)| {
            let Some(share) = cpu.foreign else { return format!("{name} ?") };
            worst = worst.max(share);
            let top = cpu.foreign_top.as_str();
            if share >= 1 && !top.is_empty() && top != "-" {
                format!("{name} {share} % ({top})")
            } else {
                format!("{name} 0 %")
            }
        })
        .collect();
    let mut line = format!("Other processes' share of the CPUs during each scenario: {}.", parts.join("; "));
    if worst >= DISTURBED_AT {
        line.push_str(" **These figures are disturbed by that work: compare with care.**");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(line: &str) -> CpuShare {
        CpuShare::parse(line)
    }

    #[test]
    fn each_scenario_reads_as_the_section_has_it() {
        let relay = share("FOREIGN cpu_s=0.1 share=1 top=kdamond.0:0.1s wall_s=17.0 own=- idle=43");
        let latency = share(
            "FOREIGN cpu_s=0.5 share=2 top=kworker/1:1H-kblockd:0.2s,kdamond.0:0.2s,kworker/0:1H-kblockd:0.1s \
             wall_s=21.2 own=- idle=17",
        );
        let quiet = share("FOREIGN cpu_s=0.0 share=0 top=- wall_s=7.5 own=- idle=50");
        assert_eq!(
            foreign_summary(&[("raw", &quiet), ("runtime", &quiet), ("relay", &relay), ("latency", &latency)]),
            "Other processes' share of the CPUs during each scenario: raw 0 %; runtime 0 %; relay 1 % \
             (kdamond.0:0.1s); latency 2 % (kworker/1:1H-kblockd:0.2s, kdamond.0:0.2s, kworker/0:1H-kblockd:0.1s)."
        );
    }

    #[test]
    fn a_missing_line_and_a_busy_machine_are_said() {
        let busy = share("FOREIGN cpu_s=9 share=12 top=rustc:9.0s wall_s=30 own=- idle=0");
        let no_top = share("FOREIGN cpu_s=1 share=3 top=- wall_s=30 own=- idle=0");
        assert_eq!(
            foreign_summary(&[("a", &CpuShare::default()), ("b", &busy), ("c", &no_top)]),
            "Other processes' share of the CPUs during each scenario: a ?; b 12 % (rustc:9.0s); c 0 %. \
             **These figures are disturbed by that work: compare with care.**"
        );
        assert!(!foreign_summary(&[("c", &no_top)]).contains("disturbed"));
    }
}
