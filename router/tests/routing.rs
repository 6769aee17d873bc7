//! Routing against the shipped configuration (city, taxonomy, rules, rule tests) and
//! against broken copies of it: decisions, explanations, admission, duplicates, the spatial
//! index, and what `hub rules check` reports.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use hub_bench::route::{bench_city, BenchParams};
use hub_router::city::City;
use hub_router::config::{check, read_toml_dir, Checked, ConfigFile, RoutingConfig};
use hub_router::dedup::{find_merge_target, OpenReport};
use hub_router::diagnostic::Diagnostic;
use hub_router::geo::Point;
use hub_router::place::{PlaceLevel, PointLookup};
use hub_router::priority::Priority;
use hub_router::routing::RoutingDecision;
use hub_router::rules_test;
use hub_router::Router;
use hub_schemas::event::{CivicEvent, Department, GeoPoint, Location};
use proptest::prelude::*;

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")
}

fn shipped() -> &'static Checked {
    static CHECKED: OnceLock<Checked> = OnceLock::new();
    CHECKED.get_or_init(|| {
        check(&config_dir()).unwrap_or_else(|problems| {
            let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
            panic!("shipped configuration:\n{}", text.join("\n"))
        })
    })
}

fn router() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| Router::new(shipped().config.clone()))
}

fn city() -> &'static Arc<City> {
    shipped().config.city()
}

/// Monday 2024-06-03 at `hh:mm` China Standard Time.
fn monday(hh: u32, mm: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 6, 3, hh, mm, 0).unwrap() - TimeDelta::hours(8)
}

fn event(department: Department, code: &str, lon: f64, lat: f64) -> CivicEvent {
    let source_system = format!("{department}.test");
    let source_id = format!("{code}@{lon},{lat}");
    CivicEvent {
        event_id: CivicEvent::derive_id(&source_system, &source_id),
        source_system,
        source_id,
        department,
        category_code: code.to_owned(),
        category_name: None,
        occurred_at: monday(10, 0),
        received_at: monday(10, 1),
        location: Location {
            point: Some(GeoPoint { lon, lat }),
            ..Location::default()
        },
        description: "测试".to_owned(),
        attributes: Default::default(),
        reporter: None,
        raw_ref: None,
    }
}

/// The shipped taxonomy and rules as in-memory files, for editing.
fn shipped_texts() -> (ConfigFile, Vec<ConfigFile>) {
    let dir = config_dir();
    let read = |p: PathBuf| ConfigFile {
        name: p.display().to_string(),
        text: std::fs::read_to_string(&p).unwrap(),
    };
    let taxonomy = read(dir.join("taxonomy.toml"));
    let rules = read_toml_dir(&dir.join("rules")).unwrap();
    (taxonomy, rules)
}

fn short(file: &str) -> &str {
    Path::new(file).file_name().unwrap().to_str().unwrap()
}

/// `file:line: message` with the file's directory left out.
fn errors_of(result: Result<(RoutingConfig, Vec<Diagnostic>), Vec<Diagnostic>>) -> Vec<String> {
    match result {
        Ok(_) => Vec::new(),
        Err(problems) => problems
            .iter()
            .filter(|d| d.is_error())
            .map(|d| {
                let mut d = d.clone();
                d.file = short(&d.file).to_owned();
                d.to_string()
            })
            .collect(),
    }
}

/// The shipped configuration with one rules file's text edited.
fn with_rules_edit(file: &str, edit: impl Fn(&str) -> String) -> Vec<String> {
    let (taxonomy, mut rules) = shipped_texts();
    let f = rules.iter_mut().find(|f| short(&f.name) == file).unwrap();
    let edited = edit(&f.text);
    assert_ne!(edited, f.text, "the edit changed nothing");
    f.text = edited;
    errors_of(RoutingConfig::new(city().clone(), &taxonomy, &rules))
}

fn line_of(file: &str, needle: &str) -> usize {
    let (_, rules) = shipped_texts();
    let f = rules.iter().find(|f| short(&f.name) == file).unwrap();
    f.text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

// ------------------------------------------------------------------ the shipped configuration

#[test]
fn shipped_configuration_checks_and_its_rule_tests_pass() {
    let checked = shipped();
    for w in &checked.warnings {
        println!("{w}");
    }
    let report = rules_test::run(router(), &checked.tests);
    println!("{report}");
    assert!(report.passed(), "rule tests failed:\n{report}");
    for d in Department::ALL {
        assert!(
            checked
                .tests
                .iter()
                .filter(|t| t.event.department == d)
                .count()
                >= 4,
            "rule tests for {d}"
        );
    }
    assert!(checked.config.version().starts_with("r-"));
}

#[test]
fn every_department_code_the_simulator_sends_is_mapped() {
    // The tables of simulator/src/generator.rs.
    let codes: [(Department, &[&str]); 4] = [
        (
            Department::UrbanManagement,
            &[
                "010101", "010102", "030201", "020101", "040102", "060101", "060203",
            ],
        ),
        (
            Department::Police,
            &["0201", "0202", "0301", "0501", "0502", "0601"],
        ),
        (
            Department::Sanitation,
            &[
                "GARBAGE_OVERFLOW",
                "EXPOSED_GARBAGE",
                "ROAD_CLEANING",
                "CONSTRUCTION_WASTE",
            ],
        ),
        (
            Department::CivilAffairs,
            &[
                "ELDERLY_NO_CONTACT",
                "LEFT_BEHIND_CHILD",
                "HARDSHIP",
                "DISABILITY_SUPPORT",
            ],
        ),
    ];
    let taxonomy = shipped().config.taxonomy();
    for (d, list) in codes {
        for code in list {
            assert!(taxonomy.classify(d, code).is_ok(), "{d} {code}");
        }
    }
    assert!(
        taxonomy.mappings(Department::Residents).len() >= 10,
        "Open311 service codes"
    );
}

#[test]
fn a_failing_rule_test_says_what_was_expected_and_what_came() {
    let mut cases = shipped().tests.clone();
    let case = cases
        .iter_mut()
        .find(|t| t.expect.rule.as_deref() == Some("police.theft"))
        .unwrap();
    case.expect.rule = Some("police.dispute".into());
    case.expect.lead = Some(rules_test::ExpectedUnit::Role(
        hub_router::city::UnitRole::Workstation,
    ));
    let report = rules_test::run(router(), std::slice::from_ref(case));
    assert!(!report.passed());
    let text = report.to_string();
    assert!(
        text.contains("FAILED") && text.contains("police.toml:"),
        "{text}"
    );
    assert!(
        text.contains("expected rule police.dispute, got police.theft"),
        "{text}"
    );
    assert!(
        text.contains(
            "expected lead role workstation, got 510504001001.police_station (police_station"
        ),
        "{text}"
    );
    assert!(text.ends_with("0 passed, 1 failed"), "{text}");
}

// ------------------------------------------------------------------ decisions and explanations

#[test]
fn a_dispatch_explains_place_category_rule_units_and_admission() {
    // 梧桐社区, 桂花路3号; a property company and an owners' committee live there.
    let mut e = event(
        Department::Sanitation,
        "GARBAGE_OVERFLOW",
        105.379444,
        29.057277,
    );
    e.attributes.insert("fillLevel".into(), "85".into());
    e.category_name = Some("垃圾满溢".into());
    let now = monday(10, 2);
    let decision = router().route(&e, now).unwrap();
    assert_eq!(decision.outcome(), "dispatch");
    let task = decision.task().unwrap();
    assert_eq!(
        task.lead_unit.as_ref().unwrap().unit_id,
        "510504001001.sanitation_team"
    );
    let co: Vec<&str> = task
        .co_handlers
        .iter()
        .map(|u| u.unit_id.as_str())
        .collect();
    assert_eq!(co, ["510504001001.property_company"]);
    assert_eq!(
        (task.category.code.as_str(), task.category.group.as_str()),
        ("E0103", "garbage")
    );
    assert_eq!(task.priority, Priority::Normal);
    // No rule or category names an SLA policy: the SLA policies' own matchers choose.
    assert_eq!(task.sla_policy, None);
    assert_eq!(task.place.grid_code.as_deref(), Some("510504001001001"));
    assert_eq!(
        task.place.point,
        Some(GeoPoint {
            lon: 105.379444,
            lat: 29.057277
        })
    );
    assert_eq!(task.created_at, now);
    assert_eq!(task.rules_version, router().config().version());

    let x = &task.explanation;
    assert_eq!(x.rule_id, "sanitation.garbage");
    assert_eq!(x.rules_version, router().config().version());
    assert!(
        x.rule_detail.contains("40-sanitation.toml:"),
        "{}",
        x.rule_detail
    );
    assert_eq!(
        x.category_detail,
        "sanitation code GARBAGE_OVERFLOW (垃圾满溢) → E0103 垃圾满溢 (major class E01 市容环境, group garbage)"
    );
    assert_eq!(
        x.place_detail,
        "point (105.379444, 29.057277) inside 梧桐社区 第1网格 (510504001001001)"
    );
    assert!(
        x.assignment_detail.starts_with("lead sanitation_team → 青杠街道环卫所 (510504001001.sanitation_team); co-handler property_company → "),
        "{}",
        x.assignment_detail
    );
    let admission = x.admission.as_ref().unwrap();
    assert!(admission.admitted);
    assert_eq!(
        admission.reason,
        "梧桐社区 admits every category from sanitation"
    );
    assert_eq!(x.merged_into, None);
    // Pure: the same event routes the same way again.
    assert_eq!(router().route(&e, now).unwrap(), decision);
}

#[test]
fn a_lead_role_the_community_lacks_falls_back_and_says_so() {
    // 锦绣社区 is an old neighbourhood: no property company, no owners' committee.
    let e = event(
        Department::Residents,
        "property-service",
        105.362934,
        29.022146,
    );
    let task = router()
        .route(&e, monday(10, 0))
        .unwrap()
        .into_task()
        .unwrap();
    assert_eq!(task.lead_unit.unwrap().unit_id, "510504001004.workstation");
    assert!(task.co_handlers.is_empty());
    assert_eq!(
        task.explanation.assignment_detail,
        "lead property_company: none in 锦绣社区; lead workstation → 锦绣社区工作站 (510504001004.workstation); co-handler owners_committee: none in 锦绣社区"
    );
}

#[test]
fn a_non_admitted_task_type_goes_back_to_its_department_with_the_reason() {
    // 清泉社区 has not admitted rental-housing checks (E0701) from the police.
    let e = event(Department::Police, "0501", 105.395892, 29.059205);
    let decision = router().route(&e, monday(10, 0)).unwrap();
    assert!(decision.task().is_none(), "the community never sees it");
    let RoutingDecision::ReturnToDepartment(returned) = &decision else {
        panic!("expected a return, got {decision:?}");
    };
    assert_eq!(returned.department, Department::Police);
    assert_eq!(returned.community_code, "510504001002");
    assert_eq!(returned.category.code, "E0701");
    assert_eq!(
        returned.reason,
        "清泉社区 has not admitted E0701 出租房屋核查 from police (its list for police: E06, E0702); the department keeps the case"
    );
    let admission = returned.explanation.admission.as_ref().unwrap();
    assert!(!admission.admitted);
    assert_eq!(returned.explanation.rule_id, "police.rental-check");
    // The same type from a community that admits it is dispatched.
    let e = event(Department::Police, "0501", 105.382181, 29.060633);
    assert_eq!(
        router().route(&e, monday(10, 0)).unwrap().outcome(),
        "dispatch"
    );
    // Serialized for the dry-run API, the outcome is a tag.
    let json = serde_json::to_value(&decision).unwrap();
    assert_eq!(json["outcome"], "return_to_department");
    assert_eq!(json["community_code"], "510504001002");
}

#[test]
fn an_unmapped_code_cannot_be_routed_and_says_why() {
    let e = event(Department::Sanitation, "BIN_ON_FIRE", 105.379444, 29.057277);
    let err = router().route(&e, monday(10, 0)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "sanitation category code \"BIN_ON_FIRE\" is not mapped in the taxonomy (add it under [departments.sanitation] in taxonomy.toml)"
    );
}

#[test]
fn events_no_community_contains_go_to_the_level_above() {
    // Inside the district, outside every community: the district's triage desk.
    let e = event(
        Department::Sanitation,
        "EXPOSED_GARBAGE",
        105.497034,
        29.04381,
    );
    let d = router().route(&e, monday(10, 0)).unwrap();
    assert_eq!(d.outcome(), "triage");
    let task = d.task().unwrap();
    assert_eq!(task.place.level, PlaceLevel::District);
    assert_eq!(
        task.lead_unit.as_ref().unwrap().unit_id,
        "510504.triage_desk"
    );
    assert!(
        task.explanation.assignment_detail.ends_with("the level above owns it (属地兜底): 龙马潭区（示例）社会治理综合指挥中心 (510504.triage_desk)"),
        "{}",
        task.explanation.assignment_detail
    );
    // Nothing usable at all: city triage, no desk, still a task.
    let mut e = event(Department::Residents, "noise", 0.0, 0.0);
    e.location = Location::default();
    let d = router().route(&e, monday(10, 0)).unwrap();
    let task = d.task().unwrap();
    assert_eq!(
        (d.outcome(), task.place.level),
        ("triage", PlaceLevel::Triage)
    );
    assert_eq!(task.lead_unit, None);
}

// ------------------------------------------------------------------ duplicates

#[test]
fn one_overflowing_garbage_incident_from_three_sources_merges_into_the_first_task() {
    // The same pile near 桂花路3号 reported by sanitation, a resident and urban management.
    let reports = [
        (
            Department::Sanitation,
            "GARBAGE_OVERFLOW",
            105.379444,
            29.057277,
            0,
        ),
        (Department::Residents, "garbage", 105.379700, 29.057400, 25),
        (
            Department::UrbanManagement,
            "010102",
            105.379200,
            29.057100,
            70,
        ),
    ];
    let mut open: Vec<OpenReport> = Vec::new();
    let mut merged = Vec::new();
    for (department, code, lon, lat, minutes) in reports {
        let mut e = event(department, code, lon, lat);
        e.occurred_at = monday(9, 0) + TimeDelta::minutes(minutes);
        let task = router()
            .route(&e, e.occurred_at)
            .unwrap()
            .into_task()
            .unwrap();
        let candidate = router().merge_candidate(&task).expect("garbage is merged");
        assert_eq!(candidate.group, "garbage");
        match find_merge_target(&candidate, &open) {
            Some(target) => merged.push((task.task_id.clone(), target.to_owned())),
            None => open.push(OpenReport {
                task_id: task.task_id.clone(),
                group: candidate.group.clone(),
                point: candidate.point,
                occurred_at: candidate.occurred_at,
            }),
        }
    }
    assert_eq!(open.len(), 1, "one task");
    assert_eq!(merged.len(), 2, "two reports linked to it");
    assert!(merged.iter().all(|(_, target)| *target == open[0].task_id));

    // 300 m away it is another pile.
    let mut far = event(Department::Residents, "garbage", 105.382500, 29.057277);
    far.occurred_at = monday(9, 30);
    let task = router()
        .route(&far, far.occurred_at)
        .unwrap()
        .into_task()
        .unwrap();
    assert_eq!(
        find_merge_target(&router().merge_candidate(&task).unwrap(), &open),
        None
    );
    // Thefts are never merged.
    let theft = event(Department::Police, "0201", 105.379444, 29.057277);
    let task = router()
        .route(&theft, monday(10, 0))
        .unwrap()
        .into_task()
        .unwrap();
    assert_eq!(router().merge_candidate(&task), None);
}

// ------------------------------------------------------------------ what `rules check` reports

#[test]
fn a_broken_rule_file_names_the_file_and_line() {
    let line = line_of("40-sanitation.toml", "lead = [\"sanitation_team\"]");
    assert_eq!(
        with_rules_edit("40-sanitation.toml", |t| t.replacen("lead = [\"sanitation_team\"]", "lead = [\"sanitation_crew\"]", 1)),
        vec![format!(
            "40-sanitation.toml:{line}: rule sanitation.bin-full: unknown lead role \"sanitation_crew\" (known: department_unit, party_branch, workstation, residents_committee, police_station, urban_management_squad, sanitation_team, property_company, owners_committee, housing, greening, fire_safety, school, social_organisation, volunteer_team, triage_desk)"
        )]
    );
    let line = line_of("20-police.toml", "place = [\"510504002\"]");
    assert_eq!(
        with_rules_edit("20-police.toml", |t| t.replace("place = [\"510504002\"]", "place = [\"510504009\"]")),
        vec![format!(
            "20-police.toml:{line}: unknown place code \"510504009\": no district, street, community or grid of the city has it"
        )]
    );
    let errors = with_rules_edit("20-police.toml", |t| {
        t.replacen("department = [\"police\"]", "department = [\"polce\"]", 1)
    });
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].contains("unknown department \"polce\""),
        "{errors:?}"
    );
    let errors = with_rules_edit("30-urban-management.toml", |t| {
        t.replacen("category = [\"E0101\"]", "category = [\"E0199\"]", 1)
    });
    assert!(
        errors[0].contains("unknown category \"E0199\""),
        "{errors:?}"
    );
    let errors = with_rules_edit("60-residents.toml", |t| {
        t.replacen("hours = [\"22:00-06:00\"]", "hours = [\"22-6\"]", 1)
    });
    assert!(errors[0].starts_with("60-residents.toml:"), "{errors:?}");
    assert!(errors[0].contains("hours \"22-6\""), "{errors:?}");
    // A TOML syntax error keeps its line.
    let line = line_of("50-civil-affairs.toml", "id = \"civil.welfare\"");
    let errors = with_rules_edit("50-civil-affairs.toml", |t| {
        t.replacen("id = \"civil.welfare\"", "id = \"civil.welfare", 1)
    });
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!("50-civil-affairs.toml:{line}: ")),
        "{errors:?}"
    );
}

#[test]
fn a_lead_without_a_unit_in_a_reachable_community_is_an_error() {
    let errors = with_rules_edit("60-residents.toml", |t| {
        t.replace(
            "lead = [\"property_company\", \"workstation\"]",
            "lead = [\"property_company\"]",
        )
    });
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("rule residents.property-service: no unit for lead [property_company] in 8 community(ies) the rule can reach: 510504001004 (锦绣社区), "),
        "{errors:?}"
    );
    assert!(
        errors[0].ends_with("add a fallback role such as \"workstation\""),
        "{errors:?}"
    );
}

#[test]
fn the_rules_must_end_in_one_catch_all() {
    let errors = with_rules_edit("99-catch-all.toml", |t| {
        format!("{t}\n[rule.when]\ndepartment = [\"police\"]\n")
    });
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("the last rule (default.department-unit) has conditions"),
        "{errors:?}"
    );

    let errors = with_rules_edit("99-catch-all.toml", |t| {
        t.replace(
            "lead = [\"department_unit\", \"workstation\"]",
            "suppress = true",
        )
    });
    assert!(
        errors[0].contains("the catch-all rule (default.department-unit) suppresses"),
        "{errors:?}"
    );

    let errors = with_rules_edit("10-emergencies.toml", |t| {
        t.replacen("[rule.when]\ncategory = [\"E0501\"]\n", "", 1)
    });
    assert!(
        errors[0].starts_with("10-emergencies.toml:")
            && errors[0].contains(
                "rule emergency.road-collapse has no conditions, so it matches every event"
            ),
        "{errors:?}"
    );
}

#[test]
fn duplicate_rule_ids_name_both_places() {
    let errors = with_rules_edit("60-residents.toml", |t| {
        t.replace("id = \"residents.noise\"", "id = \"police.theft\"")
    });
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("60-residents.toml:"), "{errors:?}");
    assert!(
        errors[0].contains("rule id \"police.theft\" is used twice (first at "),
        "{errors:?}"
    );
    assert!(errors[0].contains("20-police.toml:"), "{errors:?}");
}

#[test]
fn a_rule_gives_exactly_one_action() {
    let errors = with_rules_edit("40-sanitation.toml", |t| {
        t.replacen(
            "id = \"sanitation.road-cleaning\"",
            "id = \"sanitation.road-cleaning\"\ntriage = true",
            1,
        )
    });
    assert!(
        errors[0]
            .contains("give exactly one of `lead = [...]`, `triage = true` or `suppress = true`"),
        "{errors:?}"
    );
}

#[test]
fn unknown_admission_codes_in_the_city_are_refused() {
    // A city whose admission list names a code the taxonomy lacks.
    let dir = config_dir().join("city");
    let text = std::fs::read_to_string(dir.join("city.toml"))
        .unwrap()
        .replacen(
            "police = [\"E06\", \"E0702\"]",
            "police = [\"E06\", \"E0799\"]",
            1,
        );
    let config = hub_router::city::CityConfig::parse(&text, "city.toml").unwrap();
    let boundaries = hub_router::city::parse_boundaries(
        &std::fs::read_to_string(dir.join("boundaries.geojson")).unwrap(),
        "boundaries.geojson",
    )
    .unwrap();
    let city = City::from_parts(config, boundaries, Vec::new()).unwrap();
    let (taxonomy, rules) = shipped_texts();
    let errors = errors_of(RoutingConfig::new(Arc::new(city), &taxonomy, &rules));
    assert_eq!(
        errors,
        vec!["city.toml: community 510504001002 (清泉社区), admission.police: unknown category \"E0799\" (not a category or major class of taxonomy.toml)".to_owned()]
            .into_iter()
            .map(|e| e.replace("of taxonomy.toml", &format!("of {}", taxonomy.name)))
            .collect::<Vec<_>>()
    );
}

#[test]
fn check_reads_a_directory_and_reports_every_problem() {
    let dir = std::env::temp_dir().join(format!("hub-router-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&config_dir().join("rules"), &dir.join("rules"));
    std::fs::copy(
        config_dir().join("taxonomy.toml"),
        dir.join("taxonomy.toml"),
    )
    .unwrap();
    copy_dir(&config_dir().join("city"), &dir.join("city"));
    assert!(check(&dir).is_ok());

    let police = dir.join("rules/20-police.toml");
    let text = std::fs::read_to_string(&police).unwrap();
    std::fs::write(
        &police,
        text.replacen("lead = [\"police_station\"]", "lead = [\"police\"]", 1),
    )
    .unwrap();
    let tests = dir.join("rules/tests/police.toml");
    let text = std::fs::read_to_string(&tests).unwrap();
    std::fs::write(
        &tests,
        text.replacen("rule = \"police.theft\"", "rule = \"police.robbery\"", 1),
    )
    .unwrap();
    let problems = check(&dir).unwrap_err();
    let errors: Vec<String> = problems
        .iter()
        .filter(|d| d.is_error())
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "rules are checked before their tests: {errors:?}"
    );
    assert!(
        errors[0].contains("20-police.toml:") && errors[0].contains("unknown lead role \"police\""),
        "{errors:?}"
    );

    std::fs::write(&police, text_of(&config_dir().join("rules/20-police.toml"))).unwrap();
    let problems = check(&dir).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].to_string().contains("tests/police.toml:")
            && problems[0]
                .to_string()
                .contains("no rule has id \"police.robbery\""),
        "{}",
        problems[0]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn text_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "__pycache__") {
                copy_dir(&path, &target);
            }
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

#[test]
fn sla_policy_names_are_checked_against_the_policies() {
    let (taxonomy, mut rules) = shipped_texts();
    let f = rules
        .iter_mut()
        .find(|f| short(&f.name) == "10-emergencies.toml")
        .unwrap();
    f.text = f.text.replacen(
        "priority = \"emergency\"",
        "priority = \"emergency\"\nsla = \"emergancy\"",
        1,
    );
    let (config, _) = RoutingConfig::new(city().clone(), &taxonomy, &rules).unwrap();
    let problems = config.check_sla_policies(|name| name == "emergency");
    assert_eq!(problems.len(), 1, "{problems:?}");
    let text = problems[0].to_string();
    assert!(
        text.contains("10-emergencies.toml:")
            && text.ends_with("rule emergency.road-collapse: unknown SLA policy \"emergancy\""),
        "{text}"
    );
    let router = Router::new(config);
    let e = event(
        Department::Residents,
        "road-collapse",
        105.382181,
        29.060633,
    );
    let task = router
        .route(&e, monday(10, 0))
        .unwrap()
        .into_task()
        .unwrap();
    assert_eq!(
        task.sla_policy.as_deref(),
        Some("emergancy"),
        "the rule's choice is recorded"
    );
}

#[test]
fn the_rules_version_changes_with_the_rules_and_only_then() {
    let (taxonomy, rules) = shipped_texts();
    let version = |rules: &[ConfigFile]| {
        RoutingConfig::new(city().clone(), &taxonomy, rules)
            .unwrap()
            .0
            .version()
            .to_owned()
    };
    let before = version(&rules);
    assert_eq!(before, version(&rules));
    let mut edited = rules.clone();
    edited[3].text.push_str("\n# a comment is a change too\n");
    assert_ne!(before, version(&edited));
}

// ------------------------------------------------------------------ the spatial index

fn generated() -> &'static City {
    static CITY: OnceLock<City> = OnceLock::new();
    CITY.get_or_init(|| {
        bench_city(&BenchParams {
            communities_x: 6,
            communities_y: 5,
            grids_x: 3,
            grids_y: 2,
            vertices_per_side: 9,
            ..BenchParams::default()
        })
        .unwrap()
    })
}

fn placed(city: &City, p: Point, lookup: PointLookup) -> (Option<String>, Option<String>) {
    let location = Location {
        point: Some(GeoPoint {
            lon: p.lon,
            lat: p.lat,
        }),
        ..Location::default()
    };
    let l = city.locate_with(&location, lookup);
    (
        l.community.map(|c| c.code.clone()),
        l.grid.map(|g| g.code.clone()),
    )
}

/// Every vertex and edge midpoint of every community and grid: the points where the border
/// rule matters.
fn border_points(city: &City) -> Vec<Point> {
    let rings = city
        .communities()
        .iter()
        .map(|c| &c.boundary)
        .chain(city.grids().iter().map(|g| &g.boundary))
        .flat_map(|b| b.polygons())
        .map(|p| p.exterior());
    let mut out = Vec::new();
    for ring in rings {
        for (i, a) in ring.iter().enumerate() {
            let b = ring[(i + 1) % ring.len()];
            out.push(*a);
            out.push(Point::new((a.lon + b.lon) / 2.0, (a.lat + b.lat) / 2.0));
        }
    }
    out
}

#[test]
fn index_and_scan_agree_on_every_border_point() {
    for city in [city().as_ref(), generated()] {
        let points = border_points(city);
        assert!(points.len() > 1000);
        for p in points {
            assert_eq!(
                placed(city, p, PointLookup::Index),
                placed(city, p, PointLookup::Scan),
                "at {p}"
            );
            let holders = city
                .communities()
                .iter()
                .filter(|c| c.boundary.contains(p))
                .count();
            assert!(holders <= 1, "{p} lies in {holders} communities");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn index_and_scan_agree_on_random_points(lon in 105.30f64..105.60, lat in 28.85f64..29.10) {
        let city = city();
        let p = Point::new(lon, lat);
        let by_index = placed(city, p, PointLookup::Index);
        prop_assert_eq!(&by_index, &placed(city, p, PointLookup::Scan));
        prop_assert_eq!(&by_index, &placed(city, p, PointLookup::Index), "deterministic");
        // A point inside exactly one community polygon resolves to it.
        let holders: Vec<&str> = city.communities().iter().filter(|c| c.boundary.contains(p)).map(|c| c.code.as_str()).collect();
        if holders.len() == 1 {
            prop_assert_eq!(by_index.0.as_deref(), Some(holders[0]));
        } else {
            prop_assert!(holders.is_empty());
            prop_assert_eq!(by_index.0, None);
        }
    }

    #[test]
    fn index_and_scan_agree_on_the_generated_city(fx in -0.05f64..1.05, fy in -0.05f64..1.05, snap in 0u8..4) {
        let city = generated();
        let b = city.district().boundary.bbox();
        let mut p = Point::new(b.min_lon + fx * (b.max_lon - b.min_lon), b.min_lat + fy * (b.max_lat - b.min_lat));
        // Now and then land exactly on a lattice line, where borders run straight.
        if snap == 0 {
            p.lon = 105.0 + ((p.lon - 105.0) / 0.002).round() * 0.002;
        }
        let by_index = placed(city, p, PointLookup::Index);
        prop_assert_eq!(&by_index, &placed(city, p, PointLookup::Scan), "at {}", p);
    }
}
