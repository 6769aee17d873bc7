//! Routing one civic event: place → responsibility → the task to create, with its
//! explanation.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hub_schemas::event::CivicEvent;

use crate::city::City;
use crate::explanation::Explanation;
use crate::place::PlaceMethod;
use crate::responsibility::{self, DEFAULT_RULES_VERSION};
use crate::task::NewTask;

pub struct Router {
    city: Arc<City>,
}

impl Router {
    pub fn new(city: Arc<City>) -> Self {
        Router { city }
    }

    pub fn city(&self) -> &City {
        &self.city
    }

    /// Decide where `event` goes. Pure: the same event, city and time give the same task.
    pub fn route(&self, event: &CivicEvent, now: DateTime<Utc>) -> NewTask {
        let place = self.city.resolve(&event.location);
        let assignment = responsibility::assign(&self.city, &place, event.department);
        let place_detail = match place.method {
            PlaceMethod::Point => match event.location.point {
                Some(p) => format!(
                    "point ({:.6}, {:.6}) inside {}",
                    p.lon, p.lat, place.matched_area
                ),
                None => place.matched_area.clone(),
            },
            PlaceMethod::GridCode => format!(
                "grid code {} names {}",
                event.location.grid_code.as_deref().unwrap_or_default(),
                place.matched_area
            ),
            PlaceMethod::Address => format!(
                "address `{}` found in the gazetteer: {}",
                event.location.address.as_deref().unwrap_or_default(),
                place.matched_area
            ),
            PlaceMethod::Unplaced => format!("no usable location: {}", place.matched_area),
        };
        let explanation = Explanation {
            place_method: place.method,
            place_level: place.level,
            matched_area: place.matched_area.clone(),
            place_detail,
            rule_id: assignment.rule_id,
            rules_version: DEFAULT_RULES_VERSION.to_owned(),
            admission: None,
            merged_into: None,
        };
        NewTask {
            task_id: NewTask::derive_id(&event.event_id),
            event_id: event.event_id.clone(),
            source_system: event.source_system.clone(),
            source_id: event.source_id.clone(),
            department: event.department,
            category_code: event.category_code.clone(),
            category_name: event.category_name.clone(),
            description: event.description.clone(),
            location: event.location.clone(),
            occurred_at: event.occurred_at,
            received_at: event.received_at,
            place,
            lead_unit: assignment.lead,
            co_handlers: assignment.co_handlers,
            explanation,
            rules_version: DEFAULT_RULES_VERSION.to_owned(),
            created_at: now,
        }
    }
}
