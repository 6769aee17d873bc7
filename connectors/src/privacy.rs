//! Masking personal data (names, phone and ID numbers, e-mail) in copies that do not need it:
//! task notifications to units that only need the place and the problem, dead-letter
//! listings shown to operators, exports. The hub keeps the full value only where a person
//! must act on it (the civil-affairs task of a welfare check).
//!
//! Masks follow the usual Chinese conventions: `张**`, `138****1234`, `510504********1234`.

use hub_schemas::event::{CivicEvent, PersonalData, Reporter};
use serde_json::Value;

/// What a personal value is, which decides how it is masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonalKind {
    Name,
    Phone,
    IdNumber,
    Email,
    /// Anything else personal: first and last character kept.
    Other,
}

/// JSON keys holding personal data in the departmental formats the hub knows (police pinyin
/// initials, civil-affairs rows, Open311 fields), with their kind. Compared ignoring case.
pub const PERSONAL_KEYS: &[(&str, PersonalKind)] = &[
    ("name", PersonalKind::Name),
    ("person_name", PersonalKind::Name),
    ("first_name", PersonalKind::Name),
    ("last_name", PersonalKind::Name),
    ("guardian_name", PersonalKind::Name),
    ("contact_name", PersonalKind::Name),
    ("bjrxm", PersonalKind::Name),
    ("phone", PersonalKind::Phone),
    ("mobile", PersonalKind::Phone),
    ("tel", PersonalKind::Phone),
    ("contact_phone", PersonalKind::Phone),
    ("guardian_phone", PersonalKind::Phone),
    ("bjrdh", PersonalKind::Phone),
    ("id_number", PersonalKind::IdNumber),
    ("idcard", PersonalKind::IdNumber),
    ("sfzh", PersonalKind::IdNumber),
    ("bjrsfzh", PersonalKind::IdNumber),
    ("email", PersonalKind::Email),
];

/// Mask one value of the given kind.
pub fn mask(kind: PersonalKind, value: &str) -> String {
    let chars: Vec<char> = value.trim().chars().collect();
    let n = chars.len();
    let keep = |head: usize, tail: usize| -> String {
        if n <= head + tail {
            return "*".repeat(n);
        }
        let mut s: String = chars[..head].iter().collect();
        s.push_str(&"*".repeat(n - head - tail));
        s.extend(&chars[n - tail..]);
        s
    };
    match kind {
        PersonalKind::Name if n <= 1 => "*".repeat(n),
        PersonalKind::Name => keep(1, 0),
        PersonalKind::Phone if n >= 11 => keep(3, 4),
        PersonalKind::Phone => keep(0, 2.min(n.saturating_sub(1))),
        PersonalKind::IdNumber if n >= 15 => keep(6, 4),
        PersonalKind::IdNumber => keep(0, 2.min(n.saturating_sub(1))),
        PersonalKind::Email => match value.trim().split_once('@') {
            Some((user, domain)) => format!("{}@{domain}", mask(PersonalKind::Other, user)),
            None => mask(PersonalKind::Other, value),
        },
        PersonalKind::Other => PersonalData::new(value.trim()).masked(),
    }
}

/// The kind of a JSON key, when it is one of [`PERSONAL_KEYS`].
pub fn personal_kind(key: &str) -> Option<PersonalKind> {
    PERSONAL_KEYS
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, kind)| *kind)
}

/// A copy of `value` with every string (or number) under a personal key masked, at any
/// depth. Other values are unchanged.
pub fn mask_json(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let masked = match (personal_kind(k), v) {
                        (Some(kind), Value::String(s)) => Value::String(mask(kind, s)),
                        (Some(kind), Value::Number(n)) => Value::String(mask(kind, &n.to_string())),
                        _ => mask_json(v),
                    };
                    (k.clone(), masked)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(mask_json).collect()),
        other => other.clone(),
    }
}

/// A JSON record's bytes with personal values masked; bytes that are not JSON are replaced
/// by a note (they cannot be masked field by field, so they are not shown at all).
pub fn mask_json_bytes(bytes: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => serde_json::to_vec(&mask_json(&v)).unwrap_or_default(),
        Err(_) => format!("(withheld: {} bytes that are not JSON)", bytes.len()).into_bytes(),
    }
}

/// A copy of an event fit for units that do not need to reach the person: the reporter's
/// name, phone and ID number masked, everything else unchanged.
pub fn masked_event(event: &CivicEvent) -> CivicEvent {
    let mut copy = event.clone();
    copy.reporter = event.reporter.as_ref().map(|r| Reporter {
        name: r
            .name
            .as_ref()
            .map(|v| PersonalData::new(mask(PersonalKind::Name, v.expose()))),
        phone: r
            .phone
            .as_ref()
            .map(|v| PersonalData::new(mask(PersonalKind::Phone, v.expose()))),
        id_number: r
            .id_number
            .as_ref()
            .map(|v| PersonalData::new(mask(PersonalKind::IdNumber, v.expose()))),
    });
    copy
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_masked_the_usual_way() {
        assert_eq!(mask(PersonalKind::Name, "张建国"), "张**");
        assert_eq!(mask(PersonalKind::Phone, "13800001234"), "138****1234");
        assert_eq!(
            mask(PersonalKind::IdNumber, "510504194001011234"),
            "510504********1234"
        );
        assert_eq!(
            mask(PersonalKind::Email, "zhang@example.cn"),
            "z***g@example.cn"
        );
        assert_eq!(mask(PersonalKind::Phone, "110"), "*10");
        assert_eq!(mask(PersonalKind::Name, "王"), "*");
    }

    #[test]
    fn json_copies_mask_personal_keys_at_any_depth_and_keep_the_rest() {
        let row = json!({
            "case_no": "MZ-1", "grid_code": "510504001001002",
            "person": {"name": "李秀英", "id_number": "510504194001011234", "Phone": 13800001234u64},
            "contacts": [{"contact_name": "李军", "contact_phone": "13900004321"}]
        });
        let masked = mask_json(&row);
        assert_eq!(masked["case_no"], "MZ-1");
        assert_eq!(masked["grid_code"], "510504001001002");
        assert_eq!(masked["person"]["name"], "李**");
        assert_eq!(masked["person"]["Phone"], "138****1234");
        assert_eq!(masked["contacts"][0]["contact_phone"], "139****4321");
        let text = String::from_utf8(mask_json_bytes(row.to_string().as_bytes())).unwrap();
        assert!(
            !text.contains("194001011234") && !text.contains("秀英"),
            "{text}"
        );
        assert_eq!(
            mask_json_bytes(b"<xml>13800001234</xml>"),
            b"(withheld: 22 bytes that are not JSON)".to_vec()
        );
    }
}
