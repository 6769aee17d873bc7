//! CSV fields as every export of the hub writes them (RFC 4180 quoting). The exports hold
//! text that departments and callers chose and are opened in spreadsheets, so a value a
//! spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab or carriage return first) is
//! written with a leading `'`.

/// `v` as one CSV field.
pub fn field(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}")
    } else {
        v.to_owned()
    };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

/// `values` as one CSV line (without its line end).
pub fn line<S: AsRef<str>>(values: &[S]) -> String {
    values
        .iter()
        .map(|v| field(v.as_ref()))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_and_formulas_defused() {
        assert_eq!(field("plain 文字"), "plain 文字");
        assert_eq!(field("a, \"b\""), "\"a, \"\"b\"\"\"");
        assert_eq!(field("=1+1"), "'=1+1");
        assert_eq!(field("-2,3"), "\"'-2,3\"");
        assert_eq!(line(&["a", "b\nc"]), "a,\"b\nc\"");
    }
}
