//! The service catalogue: what residents can report (GET services) and the extra questions
//! each service asks (GET services/{code}, the "service definition").
//!
//! Loaded from configuration, for example TOML:
//!
//! ```toml
//! [[services]]
//! service_code = "SAN-OVERFLOW"
//! service_name = "垃圾满溢"
//! description = "垃圾桶或垃圾房满溢、垃圾散落"
//! type = "realtime"
//! keywords = ["垃圾", "满溢", "环卫"]
//! group = "环境卫生"
//!
//! [[services.attributes]]
//! code = "BIN_KIND"
//! datatype = "singlevaluelist"
//! required = true
//! order = 1
//! description = "哪类垃圾桶？"
//! values = [{ key = "kitchen", name = "厨余垃圾" }, { key = "other", name = "其他垃圾" }]
//! ```
//! `metadata` is not written: it is true exactly when a service has attributes.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceType {
    /// The request id is returned at once (the only type the hub uses).
    #[default]
    Realtime,
    Batch,
    Blackbox,
}

impl ServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::Realtime => "realtime",
            ServiceType::Batch => "batch",
            ServiceType::Blackbox => "blackbox",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Datatype {
    String,
    Number,
    Datetime,
    Text,
    Singlevaluelist,
    Multivaluelist,
}

impl Datatype {
    pub fn as_str(self) -> &'static str {
        match self {
            Datatype::String => "string",
            Datatype::Number => "number",
            Datatype::Datetime => "datetime",
            Datatype::Text => "text",
            Datatype::Singlevaluelist => "singlevaluelist",
            Datatype::Multivaluelist => "multivaluelist",
        }
    }

    pub fn is_list(self) -> bool {
        matches!(self, Datatype::Singlevaluelist | Datatype::Multivaluelist)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeValue {
    pub key: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attribute {
    /// False: the attribute only shows information (its description) and takes no input.
    #[serde(default = "yes")]
    pub variable: bool,
    pub code: String,
    pub datatype: Datatype,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub datatype_description: Option<String>,
    pub order: u32,
    pub description: String,
    #[serde(default)]
    pub values: Vec<AttributeValue>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub service_code: String,
    pub service_name: String,
    #[serde(default)]
    pub description: String,
    #[serde(rename = "type", default)]
    pub service_type: ServiceType,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub attributes: Vec<Attribute>,
}

impl Service {
    /// The specification's `metadata`: whether a service definition must be fetched.
    pub fn metadata(&self) -> bool {
        !self.attributes.is_empty()
    }

    pub fn attribute(&self, code: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.code == code)
    }

    /// Attributes in their display order.
    pub fn ordered_attributes(&self) -> Vec<&Attribute> {
        let mut attrs: Vec<&Attribute> = self.attributes.iter().collect();
        attrs.sort_by_key(|a| a.order);
        attrs
    }
}

/// A checked set of services.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    pub services: Vec<Service>,
}

impl Catalog {
    /// Check codes, orders and value lists; every problem is listed, each naming the
    /// service and attribute it is about.
    pub fn new(services: Vec<Service>) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut codes = BTreeSet::new();
        for s in &services {
            let at = format!("service `{}`", s.service_code);
            if !plain_code(&s.service_code) {
                problems.push(format!("{at}: service_code must be 1-64 letters, digits, `-` or `_` (it appears in URLs)"));
            }
            if !codes.insert(s.service_code.as_str()) {
                problems.push(format!("{at}: service_code is used twice"));
            }
            if s.service_name.trim().is_empty() {
                problems.push(format!("{at}: service_name is empty"));
            }
            let mut attr_codes = BTreeSet::new();
            let mut orders = BTreeSet::new();
            for a in &s.attributes {
                let at = format!("{at}, attribute `{}`", a.code);
                if !plain_code(&a.code) {
                    problems.push(format!("{at}: code must be 1-64 letters, digits, `-` or `_` (it appears as attribute[code])"));
                }
                if !attr_codes.insert(a.code.as_str()) {
                    problems.push(format!("{at}: code is used twice"));
                }
                if a.order == 0 || !orders.insert(a.order) {
                    problems.push(format!(
                        "{at}: order must be a positive number not used by another attribute"
                    ));
                }
                if a.datatype.is_list() && a.values.is_empty() {
                    problems.push(format!("{at}: a {} needs values", a.datatype.as_str()));
                }
                if !a.datatype.is_list() && !a.values.is_empty() {
                    problems.push(format!(
                        "{at}: values are only for singlevaluelist and multivaluelist"
                    ));
                }
                let mut keys = BTreeSet::new();
                for v in &a.values {
                    if !keys.insert(v.key.as_str()) {
                        problems.push(format!("{at}: value key `{}` is used twice", v.key));
                    }
                }
                if !a.variable && a.required {
                    problems.push(format!("{at}: an attribute that takes no input (variable = false) cannot be required"));
                }
            }
        }
        if problems.is_empty() {
            Ok(Catalog { services })
        } else {
            Err(problems)
        }
    }

    pub fn service(&self, code: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.service_code == code)
    }
}

fn plain_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 64
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
