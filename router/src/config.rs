//! Everything routing is configured with — city, taxonomy, rules, admission lists — loaded
//! and checked together, plus the rule tests written next to the rules. What
//! `hub rules check` runs, and what a reload validates before it swaps anything.
//!
//! Layout of the configuration directory (`config/` as shipped):
//! ```text
//! city/            city.toml, boundaries.geojson, addresses.csv (see `city`)
//! taxonomy.toml    categories and department code mappings (see `taxonomy`)
//! rules/*.toml     responsibility rules, read in file-name order (see `rules`)
//! rules/tests/*.toml  rule tests (see `rules_test`)
//! ```

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::admission::AdmissionTable;
use crate::city::{City, CityError, CONFIG_FILE};
use crate::diagnostic::Diagnostic;
use crate::responsibility::UnitTable;
use crate::rules::RuleSet;
use crate::rules_test::{self, TestCase};
use crate::taxonomy::{Taxonomy, TAXONOMY_FILE};

pub const CITY_DIR: &str = "city";
pub const RULES_DIR: &str = "rules";
/// Inside `RULES_DIR`.
pub const TESTS_DIR: &str = "tests";

/// A configuration file: its name for diagnostics and its text.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub name: String,
    pub text: String,
}

/// Reads `dir/*.toml` in name order (sub-directories such as `rules/tests/` are skipped).
pub fn read_toml_dir(dir: &Path) -> Result<Vec<ConfigFile>, Diagnostic> {
    let unreadable = |e: std::io::Error| {
        Diagnostic::error(dir.display().to_string(), None, format!("cannot read: {e}"))
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "toml") {
            paths.push(path);
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let name = path.display().to_string();
            std::fs::read_to_string(&path)
                .map(|text| ConfigFile {
                    name: name.clone(),
                    text,
                })
                .map_err(|e| Diagnostic::error(name, None, format!("cannot read: {e}")))
        })
        .collect()
}

/// The validated routing configuration. Immutable: a reload builds a new one.
#[derive(Debug, Clone)]
pub struct RoutingConfig {
    city: Arc<City>,
    taxonomy: Taxonomy,
    rules: RuleSet,
    admission: AdmissionTable,
    units: UnitTable,
    version: String,
}

impl RoutingConfig {
    /// Checks taxonomy and rules against the city and each other. The version is a hash of
    /// the taxonomy and rules texts. Returns the configuration with its warnings, or every
    /// problem found (warnings included).
    pub fn new(
        city: Arc<City>,
        taxonomy: &ConfigFile,
        rules: &[ConfigFile],
    ) -> Result<(RoutingConfig, Vec<Diagnostic>), Vec<Diagnostic>> {
        Self::build(city, CONFIG_FILE, taxonomy, rules, &[])
    }

    fn build(
        city: Arc<City>,
        city_file: &str,
        taxonomy_file: &ConfigFile,
        rules_files: &[ConfigFile],
        more_inputs: &[&[u8]],
    ) -> Result<(RoutingConfig, Vec<Diagnostic>), Vec<Diagnostic>> {
        let (taxonomy, mut warnings) = Taxonomy::parse(&taxonomy_file.text, &taxonomy_file.name)?;
        let admission = AdmissionTable::build(&city, &taxonomy, city_file);
        let rules = RuleSet::parse(rules_files, &city, &taxonomy);
        let (admission, rules) = match (admission, rules) {
            (Ok(a), Ok((r, w))) => {
                warnings.extend(w);
                (a, r)
            }
            (a, r) => {
                let mut problems = a.err().unwrap_or_default();
                problems.extend(r.err().unwrap_or_default());
                problems.extend(warnings);
                return Err(problems);
            }
        };
        let mut hash = Sha256::new();
        for input in more_inputs {
            hash.update((input.len() as u64).to_le_bytes());
            hash.update(input);
        }
        for f in std::iter::once(taxonomy_file).chain(rules_files) {
            // Names count too: moving a rule to another file reorders the rules.
            let name = Path::new(&f.name)
                .file_name()
                .map_or(f.name.as_str(), |n| n.to_str().unwrap_or(""));
            for part in [name.as_bytes(), f.text.as_bytes()] {
                hash.update((part.len() as u64).to_le_bytes());
                hash.update(part);
            }
        }
        let digest = hash.finalize();
        let version = format!(
            "r-{}",
            digest[..6]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        Ok((
            RoutingConfig {
                units: UnitTable::new(&city),
                city,
                taxonomy,
                rules,
                admission,
                version,
            },
            warnings,
        ))
    }

    pub fn city(&self) -> &Arc<City> {
        &self.city
    }

    pub fn taxonomy(&self) -> &Taxonomy {
        &self.taxonomy
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    pub fn admission(&self) -> &AdmissionTable {
        &self.admission
    }

    pub(crate) fn units(&self) -> &UnitTable {
        &self.units
    }

    /// The rules version every task routed with this configuration records: `r-` and 12 hex
    /// digits of a SHA-256 over the files it was built from (for a folder, every file of its
    /// [`crate::bundle::Bundle`]). Any change gives a new version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The SLA policy names used by rules and categories that `known` does not know: one
    /// error per use, at the rule or category that names it.
    pub fn check_sla_policies(&self, known: impl Fn(&str) -> bool) -> Vec<Diagnostic> {
        let mut problems: Vec<Diagnostic> = self
            .rules
            .rules()
            .iter()
            .filter_map(|r| {
                let name = r.sla.as_deref()?;
                (!known(name)).then(|| {
                    Diagnostic::error(
                        &r.file,
                        Some(r.line),
                        format!("rule {}: unknown SLA policy {name:?}", r.id),
                    )
                })
            })
            .collect();
        problems.extend(self.taxonomy.categories().iter().filter_map(|c| {
            let name = c.sla.as_deref()?;
            (!known(name)).then(|| {
                Diagnostic::error(
                    self.taxonomy.file(),
                    None,
                    format!("category {}: unknown SLA policy {name:?}", c.code),
                )
            })
        }));
        problems
    }
}

/// A checked configuration directory.
#[derive(Debug, Clone)]
pub struct Checked {
    pub config: RoutingConfig,
    /// The rule tests, parsed and checked against the configuration (not yet run: see
    /// `rules_test::run`).
    pub tests: Vec<TestCase>,
    pub warnings: Vec<Diagnostic>,
}

/// Loads and checks the city, taxonomy, rules and rule tests of a configuration directory.
/// Reads files; everything else is pure. Every problem found is returned, warnings
/// included, so that `hub rules check` can print them all at once.
pub fn check(dir: &Path) -> Result<Checked, Vec<Diagnostic>> {
    let city_dir = dir.join(CITY_DIR);
    let city = City::load(&city_dir).map_err(|e| vec![city_diagnostic(&e)])?;
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|e| {
            vec![Diagnostic::error(
                path.display().to_string(),
                None,
                format!("cannot read: {e}"),
            )]
        })
    };
    let taxonomy_path = dir.join(TAXONOMY_FILE);
    let taxonomy = ConfigFile {
        name: taxonomy_path.display().to_string(),
        text: read(&taxonomy_path)?,
    };
    let rules_dir = dir.join(RULES_DIR);
    let rules = read_toml_dir(&rules_dir).map_err(|d| vec![d])?;
    // The city's files count towards the version: its admission lists decide routing too.
    let mut city_bytes = Vec::new();
    for name in [
        CONFIG_FILE,
        crate::city::BOUNDARIES_FILE,
        crate::city::GAZETTEER_FILE,
    ] {
        if let Ok(bytes) = std::fs::read(city_dir.join(name)) {
            city_bytes.push(bytes);
        }
    }
    let inputs: Vec<&[u8]> = city_bytes.iter().map(Vec::as_slice).collect();
    let city_file = city_dir.join(CONFIG_FILE).display().to_string();
    let (mut config, mut warnings) =
        RoutingConfig::build(Arc::new(city), &city_file, &taxonomy, &rules, &inputs)?;
    // A folder's version names all of it, SLA policies and calendars included: it is what a
    // rules version stores (`bundle`), and what every task routed with it records.
    config.version = crate::bundle::Bundle::read(dir)
        .map_err(|e| {
            vec![Diagnostic::error(
                dir.display().to_string(),
                None,
                e.to_string(),
            )]
        })?
        .digest();

    let tests_dir = rules_dir.join(TESTS_DIR);
    let tests = if tests_dir.is_dir() {
        let files = read_toml_dir(&tests_dir).map_err(|d| vec![d])?;
        match rules_test::parse(&files, &config) {
            Ok(tests) => tests,
            Err(mut problems) => {
                problems.extend(warnings);
                return Err(problems);
            }
        }
    } else {
        Vec::new()
    };
    if tests.is_empty() {
        warnings.push(Diagnostic::warning(
            tests_dir.display().to_string(),
            None,
            "no rule tests: `hub rules test` will have nothing to run",
        ));
    }
    Ok(Checked {
        config,
        tests,
        warnings,
    })
}

/// A city error as a diagnostic: the city names its own file and place.
fn city_diagnostic(e: &CityError) -> Diagnostic {
    match e {
        CityError::Read { path, source } => Diagnostic::error(
            path.display().to_string(),
            None,
            format!("cannot read: {source}"),
        ),
        CityError::Syntax { file, message } => Diagnostic::error(file, None, message.trim()),
        CityError::Invalid { file, at, problem } => {
            Diagnostic::error(file, None, format!("{at}: {problem}"))
        }
    }
}
