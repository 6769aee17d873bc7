//! Sample data shared by the tests.

use chrono::{DateTime, Utc};
use hub_cases::lifecycle::Action;
use hub_cases::opening::Opening;
use hub_cases::{apply, Actor, ClockKind, Limit, SlaClock, TaskState, WorkingCalendar};
use hub_router::explanation::{AdmissionCheck, Explanation};
use hub_router::place::{PlaceLevel, PlaceMethod, ResolvedPlace};
use hub_router::priority::Priority;
use hub_router::task::{AssignedUnit, NewTask};
use hub_router::taxonomy::CategoryRef;
use hub_schemas::event::{CivicEvent, Department, GeoPoint, Location};
use hub_store::{CreateOutcome, Report, StoreError, Tasks};

/// Stores a routed task with the opening the case workflow gives it, `clocks` being those its
/// dispatch started.
#[async_trait::async_trait]
pub trait CreateRouted {
    async fn create_routed(
        &self,
        task: &NewTask,
        clocks: &[SlaClock],
    ) -> Result<CreateOutcome, StoreError>;
}

#[async_trait::async_trait]
impl<T: Tasks + ?Sized> CreateRouted for T {
    async fn create_routed(
        &self,
        task: &NewTask,
        clocks: &[SlaClock],
    ) -> Result<CreateOutcome, StoreError> {
        self.create_task(task, &Opening::new(task, clocks.to_vec()))
            .await
    }
}

/// 2024-06-01 08:00:00 UTC.
pub const BASE_MS: i64 = 1_717_228_800_000;

pub fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).expect("test time in range")
}

pub fn unit(unit_id: &str, role: &str, name: &str) -> AssignedUnit {
    AssignedUnit {
        unit_id: unit_id.to_owned(),
        role: hub_router::city::UnitRole::parse(role).expect("a unit role"),
        name: name.to_owned(),
    }
}

/// An illegal-construction report from urban management, routed to 红星社区's workstation,
/// with every optional field filled in.
pub fn sample_task(source_id: &str, created_ms: i64) -> NewTask {
    let source_system = "urban_management.longmatan";
    let event_id = CivicEvent::derive_id(source_system, source_id);
    NewTask {
        task_id: NewTask::derive_id(&event_id),
        event_id,
        source_system: source_system.to_owned(),
        source_id: source_id.to_owned(),
        department: Department::UrbanManagement,
        category_code: "010101".to_owned(),
        category_name: Some("私搭乱建".to_owned()),
        category: CategoryRef {
            code: "E0101".to_owned(),
            name: "私搭乱建".to_owned(),
            group: "illegal_construction".to_owned(),
        },
        priority: Priority::Urgent,
        sla_policy: Some("illegal_construction".to_owned()),
        description: "红星社区3栋楼顶违章搭建彩钢房，约20平方米 \"quoted\" ∑".to_owned(),
        location: Location {
            point: Some(GeoPoint {
                lon: 105.431_234_5,
                lat: 28.898_765_4,
            }),
            address: Some("龙马潭区红星街道红星社区3栋".to_owned()),
            grid_code: Some("510504001002003".to_owned()),
        },
        occurred_at: at(created_ms - 3_600_000),
        received_at: at(created_ms - 60_123),
        place: ResolvedPlace {
            level: PlaceLevel::Grid,
            method: PlaceMethod::Point,
            district_code: Some("510504".to_owned()),
            street_code: Some("510504001".to_owned()),
            community_code: Some("510504001002".to_owned()),
            grid_code: Some("510504001002003".to_owned()),
            matched_area: "红星社区 第3网格".to_owned(),
            point: Some(GeoPoint {
                lon: 105.431_234_5,
                lat: 28.898_765_4,
            }),
        },
        lead_unit: Some(unit(
            "510504001002.workstation",
            "workstation",
            "红星社区工作站",
        )),
        co_handlers: vec![
            unit(
                "510504001002.urban_management",
                "urban_management_squad",
                "红星街道城管中队",
            ),
            unit("510504001002.property", "property_company", "红星物业公司"),
        ],
        explanation: Explanation {
            place_method: PlaceMethod::Point,
            place_level: PlaceLevel::Grid,
            matched_area: "红星社区 第3网格".to_owned(),
            place_detail: "point (105.4312345, 28.8987654) inside grid 510504001002003".to_owned(),
            rule_id: "urban_management.illegal_construction".to_owned(),
            rules_version: "2024.06.1".to_owned(),
            admission: Some(AdmissionCheck {
                admitted: true,
                reason: "红星社区 admits E0101 私搭乱建 from urban management".to_owned(),
            }),
            category: Some(CategoryRef {
                code: "E0101".to_owned(),
                name: "私搭乱建".to_owned(),
                group: "illegal_construction".to_owned(),
            }),
            category_detail: "urban_management code 010101 → E0101 私搭乱建".to_owned(),
            rule_detail: "config/rules/20-urban.toml:4: illegal construction".to_owned(),
            assignment_detail: "lead workstation → 红星社区工作站".to_owned(),
            merged_into: None,
        },
        rules_version: "2024.06.1".to_owned(),
        created_at: at(created_ms),
    }
}

/// A report nothing in the city contains: no lead unit, owned by city triage.
pub fn triage_task(source_id: &str, created_ms: i64) -> NewTask {
    let mut task = sample_task(source_id, created_ms);
    task.department = Department::Residents;
    task.source_system = "residents.12345".to_owned();
    task.event_id = CivicEvent::derive_id(&task.source_system, source_id);
    task.task_id = NewTask::derive_id(&task.event_id);
    task.location = Location {
        point: None,
        address: Some("某小区门口".to_owned()),
        grid_code: None,
    };
    task.place = ResolvedPlace::triage(
        PlaceMethod::Unplaced,
        "no point, grid code or known address",
    );
    task.lead_unit = None;
    task.co_handlers = Vec::new();
    task.explanation.place_method = PlaceMethod::Unplaced;
    task.explanation.place_level = PlaceLevel::Triage;
    task.explanation.matched_area = task.place.matched_area.clone();
    task.explanation.admission = None;
    task
}

pub fn created_id(outcome: CreateOutcome) -> String {
    match outcome {
        CreateOutcome::Created { task_id } => task_id,
        other => panic!("expected a new task, got {other:?}"),
    }
}

pub fn report(source_system: &str, source_id: &str, department: Department, ms: i64) -> Report {
    Report {
        event_id: CivicEvent::derive_id(source_system, source_id),
        source_system: source_system.to_owned(),
        source_id: source_id.to_owned(),
        department,
        occurred_at: at(ms),
        linked_at: at(ms + 500),
    }
}

/// The state the hub derives for a task the router dispatched.
pub fn dispatched_state(unit: &str) -> TaskState {
    let t = apply(
        &TaskState::new(vec!["handling".to_owned()]),
        Action::Dispatch {
            unit: unit.to_owned(),
        },
        &Actor::system("router"),
        at(BASE_MS),
    )
    .unwrap();
    TaskState {
        version: 0,
        ..t.state
    }
}

pub fn sign_for_clock(minutes: u32) -> SlaClock {
    SlaClock::start(
        ClockKind::SignFor,
        1,
        at(BASE_MS),
        Limit::parse(&format!("{minutes} minutes")).unwrap(),
        Some(0.8),
        WorkingCalendar::always_open(),
    )
}
