//! The admission check (准入制), run after the rules: a department may push a category into
//! a community only when the community's admission list (in `city.toml`) admits it.
//! Non-admitted work goes back to the department with the reason and never reaches the
//! community.
//!
//! An admission list names taxonomy categories (`E0701`) or whole major classes (`E06`), or
//! `"*"` for everything; a department that is not listed is admitted nothing.

use hub_schemas::event::Department;

use crate::city::{Admitted, City, Community};
use crate::diagnostic::Diagnostic;
use crate::explanation::AdmissionCheck;
use crate::taxonomy::{Category, Taxonomy};

/// The admission lists of every community, resolved against the taxonomy into one flat
/// bit table: a test is one memory read.
#[derive(Debug, Clone)]
pub struct AdmissionTable {
    /// Bit per category, `words` words per (community, department), communities in city
    /// order, departments in `Department::ALL` order.
    bits: Vec<u64>,
    words: usize,
}

fn slot(department: Department) -> usize {
    Department::ALL
        .iter()
        .position(|&d| d == department)
        .unwrap_or_default()
}

impl AdmissionTable {
    /// Resolves every community's lists; a code that is neither a category nor a major class
    /// of the taxonomy is an error naming `city_file`, the community and the department.
    pub fn build(
        city: &City,
        taxonomy: &Taxonomy,
        city_file: &str,
    ) -> Result<AdmissionTable, Vec<Diagnostic>> {
        let words = taxonomy.categories().len().div_ceil(64).max(1);
        let departments = Department::ALL.len();
        let mut bits = vec![0u64; city.communities().len() * departments * words];
        let mut problems = Vec::new();
        for (c, community) in city.communities().iter().enumerate() {
            for d in Department::ALL {
                let row = &mut bits[(c * departments + slot(d)) * words..][..words];
                let codes = match community.admission.of(d) {
                    None => continue,
                    Some(Admitted::All) => {
                        for cat in taxonomy.categories() {
                            row[cat.index / 64] |= 1 << (cat.index % 64);
                        }
                        continue;
                    }
                    Some(Admitted::Categories(codes)) => codes,
                };
                for code in codes {
                    let matched: Vec<usize> = match taxonomy.category(code) {
                        Some(cat) => vec![cat.index],
                        None => taxonomy
                            .categories()
                            .iter()
                            .filter(|cat| code.len() == 3 && cat.major_code() == code)
                            .map(|cat| cat.index)
                            .collect(),
                    };
                    if matched.is_empty() && taxonomy.major(code).is_none() {
                        problems.push(Diagnostic::error(
                            city_file,
                            None,
                            format!(
                                "community {} ({}), admission.{d}: unknown category {code:?} (not a category or major class of {})",
                                community.code,
                                community.name,
                                taxonomy.file()
                            ),
                        ));
                    }
                    for i in matched {
                        row[i / 64] |= 1 << (i % 64);
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(AdmissionTable { bits, words })
        } else {
            Err(problems)
        }
    }

    /// Whether `community` admits `category` from `department`.
    pub fn admits(
        &self,
        community: &Community,
        department: Department,
        category: &Category,
    ) -> bool {
        self.admits_at(community.index, department, category)
    }

    /// `admits` by the community's position in the city.
    pub(crate) fn admits_at(
        &self,
        community: usize,
        department: Department,
        category: &Category,
    ) -> bool {
        let row = (community * Department::ALL.len() + slot(department)) * self.words;
        self.bits
            .get(row + category.index / 64)
            .is_some_and(|w| w & (1 << (category.index % 64)) != 0)
    }

    /// The check with its reason, for the explanation.
    pub fn check(
        &self,
        community: &Community,
        department: Department,
        category: &Category,
    ) -> AdmissionCheck {
        let admitted = self.admits(community, department, category);
        let what = format!("{} {}", category.code, category.name);
        let reason = match community.admission.of(department) {
            Some(Admitted::All) => {
                format!("{} admits every category from {department}", community.name)
            }
            None => format!(
                "{} admits nothing from {department} (no admission list for it); {what} stays with the department",
                community.name
            ),
            Some(Admitted::Categories(codes)) if admitted => {
                let by = if codes.contains(&category.code) {
                    category.code.clone()
                } else {
                    format!("major class {}", category.major_code())
                };
                format!("{} admits {what} from {department} (listed as {by})", community.name)
            }
            Some(Admitted::Categories(codes)) => format!(
                "{} has not admitted {what} from {department} (its list for {department}: {}); the department keeps the case",
                community.name,
                codes.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        };
        AdmissionCheck { admitted, reason }
    }
}
