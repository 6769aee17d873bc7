//! `hub rules check` and `hub rules test`: they read the routing folder and print; neither
//! needs a running hub.

use std::path::Path;

use anyhow::bail;
use hub_router::config;
use hub_router::rules_test;
use hub_router::Router;

/// Validate the city, taxonomy, rules and rule tests; non-zero exit with every problem.
pub fn rules_check(dir: &Path) -> anyhow::Result<()> {
    match config::check(dir) {
        Ok(checked) => {
            for w in &checked.warnings {
                println!("{w}");
            }
            println!(
                "ok: {} — rules version {}, {} rule tests",
                dir.display(),
                checked.config.version(),
                checked.tests.len()
            );
            Ok(())
        }
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            let errors = problems.iter().filter(|p| p.is_error()).count();
            bail!("{} has {errors} error(s)", dir.display())
        }
    }
}

/// Run the rule tests written next to the rules.
pub fn rules_test(dir: &Path) -> anyhow::Result<()> {
    let checked = match config::check(dir) {
        Ok(c) => c,
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            bail!(
                "{} does not validate; run `hub rules check` for details",
                dir.display()
            );
        }
    };
    let router = Router::new(checked.config);
    let report = rules_test::run(&router, &checked.tests);
    println!("{report}");
    if !report.passed() {
        bail!("rule tests failed");
    }
    Ok(())
}
