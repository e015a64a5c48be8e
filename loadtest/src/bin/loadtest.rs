//! `loadtest`: see `loadtest --help` and docs/ARCHITECTURE.md ("Load test").

use std::process::ExitCode;

use clap::Parser;
use loadtest::Summary;
use loadtest::cli::Args;

fn print(s: &Summary) {
    let m = &s.measured;
    let l = &m.latency_micros;
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "{} on {} ({}), {} connections, rate {}/s",
        serde_json::to_value(s.config.scenario)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        s.target,
        s.durability,
        s.config.connections,
        s.config.rate_per_second
    );
    println!(
        "arrivals {} planned, {} sent, {} done in {:.2} s; units ok {} ({:.0}/s), failed {}",
        s.arrivals_planned,
        m.arrivals_sent,
        m.arrivals_done,
        m.elapsed_seconds,
        m.units_ok,
        m.units_ok_per_second,
        m.units_failed
    );
    println!(
        "latency from intended send (ms): p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
        ms(l.p50),
        ms(l.p90),
        ms(l.p99),
        ms(l.p999),
        ms(l.max)
    );
    let g = &m.send_lag_micros;
    println!(
        "  of which the generator's own send lag (ms): p50 {:.3}  p99 {:.3}  max {:.3}",
        ms(g.p50),
        ms(g.p99),
        ms(g.max)
    );
    for (code, n) in &m.errors_by_code {
        println!("  {code}: {n}");
    }
    if s.abandoned_arrivals > 0 {
        println!(
            "abandoned (unanswered after the drain): {}",
            s.abandoned_arrivals
        );
    }
    if let Some(rss) = s.server_peak_rss_bytes {
        println!("server peak RSS: {:.1} MiB", rss as f64 / (1 << 20) as f64);
    }
    if let Some(c) = &s.check {
        println!(
            "check: {} — {} SKUs, {} mismatched, {} missing, {} oversold units, {} units sold, {} held, {} restocked, {} uncertain",
            if c.passed { "PASSED" } else { "FAILED" },
            c.skus_checked,
            c.mismatched_skus,
            c.missing_skus,
            c.oversold_units,
            c.units_deducted,
            c.units_held,
            c.units_restocked,
            c.uncertain_units
        );
        for m in &c.mismatches {
            println!("  {m:?}");
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let json = args.json.clone();
    let config = match args.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loadtest: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadtest: tokio runtime: {e}");
            return ExitCode::from(3);
        }
    };
    let summary = match runtime.block_on(loadtest::run(&config)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("loadtest: {e}");
            return ExitCode::from(3);
        }
    };
    print(&summary);
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&summary).unwrap_or_default();
        if let Err(e) = std::fs::write(&path, text + "\n") {
            eprintln!("loadtest: --json {}: {e}", path.display());
            return ExitCode::from(3);
        }
    }
    if summary.check.as_ref().is_some_and(|c| c.passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
