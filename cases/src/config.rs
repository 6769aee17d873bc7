//! Loading the SLA configuration directory: policies and working calendars, with errors that
//! point at the file, line and column.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::calendar::WorkingCalendar;
use crate::sla::{SlaPolicies, SlaPolicy};

/// The file holding SLA policies inside the SLA configuration directory.
pub const POLICIES_FILE: &str = "policies.toml";
/// The directory holding working calendars inside the SLA configuration directory.
pub const CALENDARS_DIR: &str = "calendars";

/// Why SLA configuration was refused. Every variant names the file; `Invalid` also gives the
/// line and column of the offending value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}")]
    Invalid {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: {message}")]
    File { file: String, message: String },
}

/// A TOML text being parsed, so that errors can point at a line.
#[derive(Clone, Copy)]
pub(crate) struct Source<'a> {
    pub file: &'a str,
    pub text: &'a str,
}

impl<'a> Source<'a> {
    pub fn new(file: &'a str, text: &'a str) -> Self {
        Source { file, text }
    }

    /// An error at a byte range of the text (from a `toml::Spanned` value).
    pub fn at(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        let (line, column) = line_column(self.text, span.start);
        ConfigError::Invalid {
            file: self.file.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }

    /// 1-based line and column of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        line_column(self.text, offset)
    }

    /// An error about the file as a whole.
    pub fn whole(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::File {
            file: self.file.to_owned(),
            message: message.into(),
        }
    }

    /// Converts a TOML syntax or type error, keeping its position.
    pub fn toml(&self, e: toml::de::Error) -> ConfigError {
        let message = e.message().trim().to_owned();
        match e.span() {
            Some(span) => self.at(span, message),
            None => self.whole(message),
        }
    }

    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        toml::from_str(self.text).map_err(|e| self.toml(e))
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The working calendars of a deployment, by id.
#[derive(Debug, Clone, Default)]
pub struct Calendars {
    by_id: BTreeMap<String, WorkingCalendar>,
}

impl Calendars {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a calendar; refuses a second calendar with the same id.
    pub fn insert(&mut self, calendar: WorkingCalendar) -> Result<(), ConfigError> {
        if self.by_id.contains_key(calendar.id()) {
            return Err(ConfigError::File {
                file: calendar.file().to_owned(),
                message: format!("calendar id {:?} is defined twice", calendar.id()),
            });
        }
        self.by_id.insert(calendar.id().to_owned(), calendar);
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<&WorkingCalendar> {
        self.by_id.get(id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.by_id.keys().map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = &WorkingCalendar> {
        self.by_id.values()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// Everything the SLA side of the workflow is configured with.
#[derive(Debug, Clone)]
pub struct SlaConfig {
    pub policies: SlaPolicies,
    pub calendars: Calendars,
}

impl SlaConfig {
    /// Checks that policies and calendars fit together (every calendar a policy names exists).
    pub fn new(policies: SlaPolicies, calendars: Calendars) -> Result<Self, ConfigError> {
        policies.check_calendars(&calendars)?;
        Ok(SlaConfig {
            policies,
            calendars,
        })
    }

    /// Loads `policies.toml` and every `calendars/*.toml` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        let policies_path = dir.join(POLICIES_FILE);
        let policies = SlaPolicies::load(&policies_path)?;
        let calendars_dir = dir.join(CALENDARS_DIR);
        let entries = std::fs::read_dir(&calendars_dir).map_err(|source| ConfigError::Read {
            path: calendars_dir.clone(),
            source,
        })?;
        let mut paths = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| ConfigError::Read {
                path: calendars_dir.clone(),
                source,
            })?;
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "toml") {
                paths.push(path);
            }
        }
        // Sorted so that "defined twice" errors always name the same file.
        paths.sort();
        let mut calendars = Calendars::new();
        for path in paths {
            calendars.insert(WorkingCalendar::load(&path)?)?;
        }
        SlaConfig::new(policies, calendars)
    }

    /// The calendar a policy counts working time in.
    pub fn calendar_of(&self, policy: &SlaPolicy) -> &WorkingCalendar {
        // `new` checked that every policy's calendar exists; the fallback is unreachable
        // through the public API but keeps this total.
        self.calendars
            .get(&policy.calendar)
            .or_else(|| self.calendars.iter().next())
            .unwrap_or_else(|| WorkingCalendar::always_open())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let text = "a = 1\nbb = \"x\"\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, 11), (2, 6));
    }
}
