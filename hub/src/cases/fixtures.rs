//! Test fixtures shared by the cases' unit tests: the shipped rules folder, a candidate that
//! moves thefts to the workstation, and a theft.

use std::collections::BTreeMap;

use hub_router::bundle::Bundle;
use hub_schemas::event::{CivicEvent, Department, GeoPoint, Location};

pub fn shipped() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")
}

/// The shipped folder with thefts led by the workstation (and its tests saying so),
/// written under `dir`.
pub fn candidate(dir: &std::path::Path) -> std::path::PathBuf {
    let mut files: BTreeMap<String, String> = Bundle::read(&shipped()).unwrap().files().clone();
    let edit = |files: &mut BTreeMap<String, String>, file: &str, from: &str, to: &str| {
        let text = files.get_mut(file).unwrap();
        assert!(text.contains(from), "{file}: {from}");
        *text = text.replace(from, to);
    };
    edit(
        &mut files,
        "rules/20-police.toml",
        "id = \"police.theft\"\ndescription = \"Thefts and burglaries stay with the community police office\"\nlead = [\"police_station\"]",
        "id = \"police.theft\"\ndescription = \"Thefts go to the workstation\"\nlead = [\"workstation\"]",
    );
    edit(
        &mut files,
        "rules/tests/police.toml",
        "lead = \"510504001001.police_station\"\nco_handlers = []",
        "lead = \"510504001001.workstation\"\nco_handlers = []",
    );
    edit(
        &mut files,
        "rules/tests/police.toml",
        "category = \"E0604\"\nlead = \"police_station\"",
        "category = \"E0604\"\nlead = \"workstation\"",
    );
    let out = dir.join("candidate");
    Bundle::from_files(files).unwrap().write(&out).unwrap();
    out
}

pub fn theft() -> CivicEvent {
    CivicEvent {
        event_id: CivicEvent::derive_id("police.test", "J-1"),
        source_system: "police.test".into(),
        source_id: "J-1".into(),
        department: Department::Police,
        category_code: "0201".into(),
        category_name: None,
        occurred_at: "2026-06-01T01:50:00Z".parse().unwrap(),
        received_at: "2026-06-01T02:00:00Z".parse().unwrap(),
        location: Location {
            point: Some(GeoPoint {
                lon: 105.382181,
                lat: 29.060633,
            }),
            address: None,
            grid_code: None,
        },
        description: "电动车被盗".into(),
        attributes: Default::default(),
        reporter: None,
        raw_ref: None,
    }
}
