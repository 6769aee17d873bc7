//! Problems found in the routing configuration (taxonomy, rules, rule tests), each located by
//! file and, where it sits at one place in a text file, by line — what `hub rules check`
//! prints.

use std::fmt;
use std::ops::Range;

/// An error refuses the configuration; a warning is printed and the configuration is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: String,
    /// 1-based line of the offending value, when there is one.
    pub line: Option<usize>,
    pub message: String,
}

impl Diagnostic {
    pub fn error(file: impl Into<String>, line: Option<usize>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            file: file.into(),
            line,
            message: message.into(),
        }
    }

    pub fn warning(
        file: impl Into<String>,
        line: Option<usize>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(file, line, message)
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// `file:line: message`, with `warning: ` in front of warnings.
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// A configuration text being checked, so that problems can name the line of a
/// `toml::Spanned` value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SourceText<'a> {
    pub file: &'a str,
    pub text: &'a str,
}

impl<'a> SourceText<'a> {
    pub fn new(file: &'a str, text: &'a str) -> Self {
        SourceText { file, text }
    }

    /// 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    pub fn error(&self, span: &Range<usize>, message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(self.file, Some(self.line_of(span.start)), message)
    }

    /// A problem with the file as a whole.
    pub fn whole(&self, message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(self.file, None, message)
    }

    /// A TOML syntax or shape error, at its position when toml knows it.
    pub fn toml(&self, e: &toml::de::Error) -> Diagnostic {
        let message = e.message().trim().to_owned();
        match e.span() {
            Some(span) => self.error(&span, message),
            None => self.whole(message),
        }
    }

    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, Diagnostic> {
        toml::from_str(self.text).map_err(|e| self.toml(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_count_from_one() {
        let src = SourceText::new("f.toml", "a = 1\nb = 2\n\nc = 3");
        assert_eq!(src.line_of(0), 1);
        assert_eq!(src.line_of(6), 2);
        assert_eq!(src.line_of(13), 4);
        assert_eq!(src.line_of(1000), 4);
        assert_eq!(
            src.error(&(6..7), "bad").to_string(),
            "f.toml:2: bad".to_owned()
        );
        assert_eq!(
            Diagnostic::warning("f.toml", None, "odd").to_string(),
            "warning: f.toml: odd"
        );
    }

    #[test]
    fn toml_errors_keep_their_line() {
        let src = SourceText::new("f.toml", "a = 1\nb = = 2\n");
        let e = src.parse::<toml::Table>().unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
    }
}
