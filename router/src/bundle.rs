//! The routing configuration as files: the city, the taxonomy, the rules with their tests,
//! the SLA policies and working calendars — what decides where a task goes, who leads it and
//! when it is late. A rules version stores one bundle; its digest is the version every task
//! routed with it records. The accounts (`access.toml`) and the Open311 service list are not
//! part of it: they say who may call, not how work is routed.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use sha2::{Digest, Sha256};

use crate::config::{CITY_DIR, RULES_DIR};
use crate::taxonomy::TAXONOMY_FILE;

/// The SLA policies and calendars, inside the routing folder (read by `hub-cases`).
pub const SLA_DIR: &str = "sla";
/// What a bundle holds of a routing folder: these files and folders (recursively).
pub const PARTS: [&str; 4] = [CITY_DIR, TAXONOMY_FILE, RULES_DIR, SLA_DIR];
/// A bundle's size limit: a city's boundaries are the largest part (about 150 KiB here).
pub const MAX_BYTES: usize = 32 * 1024 * 1024;

/// Files by their path inside the routing folder (`/`-separated), as text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bundle {
    files: BTreeMap<String, String>,
}

/// Why files are not a bundle.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("the routing configuration is {0} bytes; at most {MAX_BYTES}")]
    TooLarge(usize),
}

fn file_error(path: &str, message: impl Into<String>) -> BundleError {
    BundleError::File {
        path: path.to_owned(),
        message: message.into(),
    }
}

impl Bundle {
    /// The bundle's parts as they are in `dir` (parts that are missing are left out: the
    /// configuration's own check names what it needs).
    pub fn read(dir: &Path) -> Result<Bundle, BundleError> {
        let mut files = BTreeMap::new();
        let mut stack: Vec<String> = PARTS.iter().map(|p| (*p).to_owned()).collect();
        let mut size = 0;
        while let Some(rel) = stack.pop() {
            let path = dir.join(&rel);
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                let entries =
                    std::fs::read_dir(&path).map_err(|e| file_error(&rel, e.to_string()))?;
                for entry in entries {
                    let entry = entry.map_err(|e| file_error(&rel, e.to_string()))?;
                    let name = entry.file_name();
                    let name = name
                        .to_str()
                        .ok_or_else(|| file_error(&rel, "a file name is not UTF-8"))?;
                    if !name.starts_with('.') {
                        stack.push(format!("{rel}/{name}"));
                    }
                }
            } else {
                let bytes = std::fs::read(&path).map_err(|e| file_error(&rel, e.to_string()))?;
                size += bytes.len();
                if size > MAX_BYTES {
                    return Err(BundleError::TooLarge(size));
                }
                let text =
                    String::from_utf8(bytes).map_err(|_| file_error(&rel, "is not UTF-8 text"))?;
                files.insert(rel, text);
            }
        }
        Ok(Bundle { files })
    }

    /// A bundle from stored files, each path checked: relative, inside one of [`PARTS`], no
    /// `..`, so that writing it out cannot reach outside its folder.
    pub fn from_files(files: BTreeMap<String, String>) -> Result<Bundle, BundleError> {
        let size: usize = files.values().map(String::len).sum();
        if size > MAX_BYTES {
            return Err(BundleError::TooLarge(size));
        }
        for path in files.keys() {
            let p = Path::new(path);
            let normal = p.components().all(|c| matches!(c, Component::Normal(_)));
            let first = path.split('/').next().unwrap_or("");
            if !normal || path.contains('\\') || !PARTS.contains(&first) {
                return Err(file_error(
                    path,
                    format!("is not a path inside {}", PARTS.join(", ")),
                ));
            }
        }
        Ok(Bundle { files })
    }

    pub fn files(&self) -> &BTreeMap<String, String> {
        &self.files
    }

    /// This bundle without the files under `part` (one of [`PARTS`]).
    pub fn without(&self, part: &str) -> Bundle {
        let prefix = format!("{part}/");
        Bundle {
            files: self
                .files
                .iter()
                .filter(|(p, _)| !p.starts_with(&prefix) && p.as_str() != part)
                .map(|(p, t)| (p.clone(), t.clone()))
                .collect(),
        }
    }

    /// The version of this configuration: `r-` and 12 hex digits of a SHA-256 over every
    /// file's path and text. Any change to any file gives another version.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"hub.rules_bundle.v1");
        for (path, text) in &self.files {
            for part in [path.as_bytes(), text.as_bytes()] {
                h.update((part.len() as u64).to_be_bytes());
                h.update(part);
            }
        }
        let digest = h.finalize();
        format!(
            "r-{}",
            digest[..6]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        )
    }

    /// Writes the files under `dir` (created), which should be empty.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        for (path, text) in &self.files {
            let target = dir.join(path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(target, text)?;
        }
        Ok(())
    }

    /// What changed from `before` to this bundle, file by file, as unified-style lines
    /// (`--- a/path`, `+++ b/path`, `-`/`+` lines with a line of context each side); empty
    /// when nothing did.
    pub fn diff(&self, before: &Bundle) -> String {
        let mut out = String::new();
        let paths: std::collections::BTreeSet<&String> =
            self.files.keys().chain(before.files.keys()).collect();
        for path in paths {
            let (old, new) = (before.files.get(path), self.files.get(path));
            if old == new {
                continue;
            }
            let a = old.map_or("/dev/null".to_owned(), |_| format!("a/{path}"));
            let b = new.map_or("/dev/null".to_owned(), |_| format!("b/{path}"));
            out.push_str(&format!("--- {a}\n+++ {b}\n"));
            line_diff(
                old.map_or("", String::as_str),
                new.map_or("", String::as_str),
                &mut out,
            );
        }
        out
    }
}

/// Cells of LCS table a diff may take; a larger change is summarised instead.
const DIFF_CELLS_MAX: usize = 16_000_000;

/// The changed lines of `old` → `new` with one line of context, as `@@ line N` hunks.
fn line_diff(old: &str, new: &str, out: &mut String) {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // Edits are usually small: only the middle between a common head and tail is compared.
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (am, bm) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    if am.len().saturating_mul(bm.len()) > DIFF_CELLS_MAX {
        out.push_str(&format!(
            "@@ line {}: {} line(s) replaced by {} line(s)\n",
            head + 1,
            am.len(),
            bm.len()
        ));
        return;
    }
    // LCS lengths from the end, then a walk from the start.
    let (n, m) = (am.len(), bm.len());
    let mut lcs = vec![0u32; (n + 1) * (m + 1)];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i * (m + 1) + j] = if am[i] == bm[j] {
                lcs[(i + 1) * (m + 1) + j + 1] + 1
            } else {
                lcs[(i + 1) * (m + 1) + j].max(lcs[i * (m + 1) + j + 1])
            };
        }
    }
    out.push_str(&format!("@@ line {}\n", head + 1));
    if head > 0 {
        out.push_str(&format!(" {}\n", a[head - 1]));
    }
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && am[i] == bm[j] {
            out.push_str(&format!(" {}\n", am[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[(i + 1) * (m + 1) + j] >= lcs[i * (m + 1) + j + 1]) {
            out.push_str(&format!("-{}\n", am[i]));
            i += 1;
        } else {
            out.push_str(&format!("+{}\n", bm[j]));
            j += 1;
        }
    }
    if tail > 0 {
        out.push_str(&format!(" {}\n", a[a.len() - tail]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(files: &[(&str, &str)]) -> Bundle {
        Bundle::from_files(
            files
                .iter()
                .map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn the_digest_changes_with_any_file_and_only_with_files() {
        let a = bundle(&[("rules/10.toml", "x = 1\n"), ("sla/policies.toml", "")]);
        assert_eq!(a.digest(), a.clone().digest());
        assert_eq!(a.digest().len(), 14);
        let moved = bundle(&[("rules/11.toml", "x = 1\n"), ("sla/policies.toml", "")]);
        assert_ne!(a.digest(), moved.digest(), "a renamed file is a change");
        let calendar = bundle(&[("rules/10.toml", "x = 1\n"), ("sla/policies.toml", " ")]);
        assert_ne!(a.digest(), calendar.digest());
    }

    #[test]
    fn paths_outside_the_configuration_are_refused() {
        for bad in [
            "../etc/passwd",
            "/etc/passwd",
            "rules/../../x",
            "access.toml",
            "rules\\x",
        ] {
            let files = BTreeMap::from([(bad.to_owned(), String::new())]);
            assert!(Bundle::from_files(files).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_diff_shows_the_changed_lines_with_context() {
        let before = bundle(&[
            ("rules/10.toml", "a\nb\nc\nd\n"),
            ("rules/20.toml", "gone\n"),
        ]);
        let after = bundle(&[("rules/10.toml", "a\nb\nC\nd\n"), ("sla/new.toml", "n\n")]);
        assert_eq!(
            after.diff(&before),
            "--- a/rules/10.toml\n+++ b/rules/10.toml\n@@ line 3\n b\n-c\n+C\n d\n\
             --- a/rules/20.toml\n+++ /dev/null\n@@ line 1\n-gone\n\
             --- /dev/null\n+++ b/sla/new.toml\n@@ line 1\n+n\n"
        );
        assert_eq!(after.diff(&after), "");
    }

    #[test]
    fn a_bundle_written_out_reads_back_the_same() {
        let dir = std::env::temp_dir().join(format!("bundle-{}", uuid::Uuid::new_v4()));
        let b = bundle(&[("city/city.toml", "c"), ("rules/tests/t.toml", "t")]);
        b.write(&dir).unwrap();
        assert_eq!(Bundle::read(&dir).unwrap(), b);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
