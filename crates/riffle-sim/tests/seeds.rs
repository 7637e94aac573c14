//! Runs the metadata group under turmoil for a range of seeds (`RIFFLE_SIM_SEEDS`, default
//! 20, starting at `RIFFLE_SIM_FIRST_SEED`, default 0) or exactly one (`RIFFLE_SIM_SEED`).
//! A failure prints the seed and how to replay it.

use std::time::Instant;

use riffle_sim::sim::{run, Plan};

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a number")),
    )
}

#[test]
fn metadata_group_survives_faults_for_every_seed() {
    let seeds: Vec<u64> = match env_u64("RIFFLE_SIM_SEED") {
        Some(seed) => vec![seed],
        None => {
            let first = env_u64("RIFFLE_SIM_FIRST_SEED").unwrap_or(0);
            let count = env_u64("RIFFLE_SIM_SEEDS").unwrap_or(20);
            (first..first + count).collect()
        }
    };
    let mut failures = Vec::new();
    for seed in seeds {
        let started = Instant::now();
        match run(&Plan::for_seed(seed)) {
            Ok(outcome) => eprintln!(
                "seed {seed}: ok in {:?} real, {:?} simulated: {outcome:?}",
                started.elapsed(),
                outcome.simulated
            ),
            Err(error) => {
                eprintln!("{error}");
                failures.push(error);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
