//! Working calendars and time limits.
//!
//! A calendar gives the working hours of each weekday in local time (e.g. 08:30-12:00 and
//! 14:00-17:30, Monday to Friday, UTC+8), the public holidays (放假) and the make-up working
//! days (调休上班, usually a Saturday or Sunday next to a holiday) of the years it covers.
//! Outside the covered years only the weekly hours apply: add next year's holidays as soon as
//! they are published (the State Council usually does so in November).
//!
//! Time limits ([`Limit`]) are counted in one of three measures ([`Measure`]):
//! * natural time (`minutes`, `hours`, `days`): wall-clock time, holidays included;
//! * working time (`working_minutes`, `working_hours`): only minutes inside working hours;
//! * working days (`working_days`): whole working days. A working day is worth the calendar's
//!   standard day (the usual length of a weekday, e.g. 7 h), so 1 working day from Monday
//!   10:00 is Tuesday 10:00, and from Friday 18:00 (after hours) it is Monday 17:30. A day
//!   with shorter hours counts as a whole day all the same, in proportion.
//!
//! A deadline is the earliest instant at which the limit is used up, so a limit that ends
//! exactly at closing time falls due at closing time, not at the next opening.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::OnceLock;

use chrono::{
    DateTime, Datelike, FixedOffset, NaiveDate, NaiveTime, Offset, TimeDelta, Timelike, Utc,
};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::{ConfigError, Source};

const MS_PER_MINUTE: i64 = 60_000;
const MS_PER_HOUR: i64 = 3_600_000;
const MS_PER_DAY: i64 = 86_400_000;
/// How far a calendar walk may go. Limits are capped far below this (see
/// [`TimeUnit::max_amount`]); the cap only guards against a calendar without working days.
const MAX_WALK_DAYS: u32 = 5_000;
/// A holiday range longer than this is almost certainly a typo (a wrong month or year).
const MAX_HOLIDAY_DAYS: i64 = 31;

// ------------------------------------------------------------------------------ limits

/// The unit a time limit is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    /// Natural seconds: for drills and tests of the SLA tracker (a ladder climbed in
    /// seconds); real policies count in minutes and up.
    Seconds,
    /// Natural minutes (e.g. the 30-minute report-in of a joint case).
    Minutes,
    /// Natural hours (e.g. the 12345 hotline's 24 h).
    Hours,
    /// Natural days of 24 hours.
    Days,
    WorkingMinutes,
    /// 工作时
    WorkingHours,
    /// 工作日
    WorkingDays,
}

impl TimeUnit {
    pub const ALL: [TimeUnit; 7] = [
        TimeUnit::Seconds,
        TimeUnit::Minutes,
        TimeUnit::Hours,
        TimeUnit::Days,
        TimeUnit::WorkingMinutes,
        TimeUnit::WorkingHours,
        TimeUnit::WorkingDays,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TimeUnit::Seconds => "seconds",
            TimeUnit::Minutes => "minutes",
            TimeUnit::Hours => "hours",
            TimeUnit::Days => "days",
            TimeUnit::WorkingMinutes => "working_minutes",
            TimeUnit::WorkingHours => "working_hours",
            TimeUnit::WorkingDays => "working_days",
        }
    }

    /// Accepts the plural (canonical) and the singular ("1 working_day").
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|u| u.as_str() == s || u.as_str().strip_suffix('s') == Some(s))
    }

    pub fn measure(self) -> Measure {
        match self {
            TimeUnit::Seconds | TimeUnit::Minutes | TimeUnit::Hours | TimeUnit::Days => {
                Measure::Natural
            }
            TimeUnit::WorkingMinutes | TimeUnit::WorkingHours => Measure::Working,
            TimeUnit::WorkingDays => Measure::WorkingDays,
        }
    }

    /// The largest amount accepted: about two years, whatever the unit. Beyond that a limit
    /// is a typo, and the cap bounds the cost of computing a deadline.
    pub fn max_amount(self) -> u32 {
        match self {
            TimeUnit::Seconds => 24 * 60 * 60,
            TimeUnit::Minutes => 2 * 365 * 24 * 60,
            TimeUnit::Hours => 2 * 365 * 24,
            TimeUnit::Days => 2 * 365,
            TimeUnit::WorkingMinutes => 500 * 8 * 60,
            TimeUnit::WorkingHours => 500 * 8,
            TimeUnit::WorkingDays => 500,
        }
    }

    fn names() -> String {
        Self::ALL.map(TimeUnit::as_str).join(", ")
    }
}

impl fmt::Display for TimeUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How time is counted against a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// Wall-clock time.
    Natural,
    /// Time inside working hours.
    Working,
    /// Working days, each worth a standard day whatever its hours.
    WorkingDays,
}

/// A time limit such as `4 working_hours`, `7 working_days` or `30 minutes`. Written in
/// configuration and stored as that text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Limit {
    pub amount: u32,
    pub unit: TimeUnit,
}

impl Limit {
    pub const fn new(amount: u32, unit: TimeUnit) -> Self {
        Limit { amount, unit }
    }
    pub const fn minutes(amount: u32) -> Self {
        Self::new(amount, TimeUnit::Minutes)
    }
    pub const fn hours(amount: u32) -> Self {
        Self::new(amount, TimeUnit::Hours)
    }
    pub const fn days(amount: u32) -> Self {
        Self::new(amount, TimeUnit::Days)
    }
    pub const fn working_minutes(amount: u32) -> Self {
        Self::new(amount, TimeUnit::WorkingMinutes)
    }
    pub const fn working_hours(amount: u32) -> Self {
        Self::new(amount, TimeUnit::WorkingHours)
    }
    pub const fn working_days(amount: u32) -> Self {
        Self::new(amount, TimeUnit::WorkingDays)
    }

    pub fn measure(&self) -> Measure {
        self.unit.measure()
    }

    /// The limit as milliseconds of `measure` on `calendar`. A limit written in another
    /// measure is carried over unit by unit (hours ↔ working hours, days ↔ working days), so
    /// that a "2 days" extension of a working-day clock means 2 working days.
    pub fn in_measure(&self, measure: Measure, calendar: &WorkingCalendar) -> i64 {
        let amount = i64::from(self.amount);
        let day = match measure {
            Measure::Natural => MS_PER_DAY,
            Measure::Working | Measure::WorkingDays => calendar.standard_day_ms,
        };
        amount
            * match self.unit {
                TimeUnit::Seconds => 1000,
                TimeUnit::Minutes | TimeUnit::WorkingMinutes => MS_PER_MINUTE,
                TimeUnit::Hours | TimeUnit::WorkingHours => MS_PER_HOUR,
                TimeUnit::Days | TimeUnit::WorkingDays => day,
            }
    }

    /// Parses `"<amount> <unit>"`, e.g. `"4 working_hours"`.
    pub fn parse(text: &str) -> Result<Limit, String> {
        let mut words = text.split_whitespace();
        let (Some(amount), Some(unit), None) = (words.next(), words.next(), words.next()) else {
            return Err(format!(
                "limit {text:?} must be \"<amount> <unit>\", e.g. \"4 working_hours\" (units: {})",
                TimeUnit::names()
            ));
        };
        let unit = TimeUnit::parse(unit).ok_or_else(|| {
            format!(
                "limit {text:?}: unknown unit {unit:?} (known: {})",
                TimeUnit::names()
            )
        })?;
        let amount: u32 = amount.parse().map_err(|_| {
            format!("limit {text:?}: amount {amount:?} is not a whole number (write 90 minutes, not 1.5 hours)")
        })?;
        if amount == 0 {
            return Err(format!(
                "limit {text:?} is zero: a limit must give some time"
            ));
        }
        if amount > unit.max_amount() {
            return Err(format!(
                "limit {text:?} is longer than the largest accepted ({} {unit})",
                unit.max_amount()
            ));
        }
        Ok(Limit { amount, unit })
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.unit)
    }
}

impl FromStr for Limit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Limit::parse(s)
    }
}

impl TryFrom<String> for Limit {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Limit::parse(&s)
    }
}

impl From<Limit> for String {
    fn from(l: Limit) -> String {
        l.to_string()
    }
}

/// Parses a limit held in a spanned TOML string, pointing errors at it.
pub(crate) fn spanned_limit(
    src: &Source<'_>,
    value: &Spanned<String>,
) -> Result<Limit, ConfigError> {
    Limit::parse(value.get_ref()).map_err(|m| src.at(value.span(), m))
}

// ------------------------------------------------------------------------------ calendar

/// Working hours of one span of a day, in milliseconds since local midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: i64,
    end: i64,
}

/// A holiday as published: the days off and the make-up working days (调休) that go with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holiday {
    pub name: String,
    pub off: Vec<NaiveDate>,
    pub work: Vec<NaiveDate>,
}

/// What a date is on a calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayKind<'a> {
    /// A weekday with working hours.
    Workday,
    /// A day without weekly working hours (a weekend).
    RestDay,
    /// A public holiday (放假).
    Holiday(&'a str),
    /// A make-up working day (调休上班) for the named holiday.
    MakeupWorkday(&'a str),
}

#[derive(Debug, Clone, Copy)]
enum Override {
    Off(usize),
    Work(usize),
}

/// A city's working calendar. See the module documentation for what it counts.
#[derive(Debug, Clone)]
pub struct WorkingCalendar {
    id: String,
    name: String,
    file: String,
    offset: FixedOffset,
    weekly: [Vec<Span>; 7],
    makeup: Vec<Span>,
    holidays: Vec<Holiday>,
    overrides: HashMap<NaiveDate, Override>,
    years: BTreeSet<i32>,
    standard_day_ms: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalendar {
    name: String,
    utc_offset: Spanned<String>,
    years: Spanned<Vec<i32>>,
    hours: Spanned<RawWeek>,
    #[serde(default)]
    makeup_day_hours: Option<Spanned<String>>,
    #[serde(default)]
    holidays: Vec<RawHoliday>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeek {
    #[serde(default)]
    mon: Vec<Spanned<String>>,
    #[serde(default)]
    tue: Vec<Spanned<String>>,
    #[serde(default)]
    wed: Vec<Spanned<String>>,
    #[serde(default)]
    thu: Vec<Spanned<String>>,
    #[serde(default)]
    fri: Vec<Spanned<String>>,
    #[serde(default)]
    sat: Vec<Spanned<String>>,
    #[serde(default)]
    sun: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHoliday {
    name: Spanned<String>,
    off: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    work: Vec<Spanned<String>>,
}

const WEEKDAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl WorkingCalendar {
    /// Reads a calendar file; its id is the file stem (`calendars/cn-mainland.toml` →
    /// `cn-mainland`).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let file = path.display().to_string();
        let id = path
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            })
            .ok_or_else(|| ConfigError::File {
                file: file.clone(),
                message:
                    "a calendar file name must be its id: letters, digits, '-' or '_', then .toml"
                        .into(),
            })?;
        Self::parse(&text, &file, id)
    }

    /// Parses calendar text; `file` names it in errors, `id` is how policies refer to it.
    pub fn parse(text: &str, file: &str, id: &str) -> Result<Self, ConfigError> {
        let src = Source::new(file, text);
        let raw: RawCalendar = src.parse()?;

        let offset = parse_offset(raw.utc_offset.get_ref()).ok_or_else(|| {
            src.at(
                raw.utc_offset.span(),
                format!(
                    "utc_offset {:?} must look like \"+08:00\"",
                    raw.utc_offset.get_ref()
                ),
            )
        })?;

        let mut years = BTreeSet::new();
        for &y in raw.years.get_ref() {
            if !(1970..=9999).contains(&y) || !years.insert(y) {
                return Err(src.at(
                    raw.years.span(),
                    format!("years: {y} is out of range or listed twice"),
                ));
            }
        }
        if years.is_empty() {
            return Err(src.at(
                raw.years.span(),
                "years is empty: list the years whose holidays this file gives",
            ));
        }

        let week = raw.hours.get_ref();
        let days = [
            &week.mon, &week.tue, &week.wed, &week.thu, &week.fri, &week.sat, &week.sun,
        ];
        let mut weekly: [Vec<Span>; 7] = Default::default();
        for (i, spans) in days.into_iter().enumerate() {
            weekly[i] = parse_day_hours(&src, WEEKDAY_NAMES[i], spans)?;
        }
        if weekly.iter().all(Vec::is_empty) {
            return Err(src.at(
                raw.hours.span(),
                "hours gives no working hours on any weekday",
            ));
        }

        let makeup = match &raw.makeup_day_hours {
            None => weekly[0].clone(),
            Some(day) => {
                let i = WEEKDAY_NAMES
                    .iter()
                    .position(|n| n == day.get_ref())
                    .ok_or_else(|| {
                        src.at(
                            day.span(),
                            format!(
                                "makeup_day_hours {:?} must be one of {}",
                                day.get_ref(),
                                WEEKDAY_NAMES.join(", ")
                            ),
                        )
                    })?;
                weekly[i].clone()
            }
        };
        if makeup.is_empty() {
            let at = raw
                .makeup_day_hours
                .as_ref()
                .map_or(raw.hours.span(), |d| d.span());
            return Err(src.at(at, "make-up working days (调休) would have no hours: name a weekday with hours in makeup_day_hours"));
        }

        let mut holidays = Vec::new();
        let mut overrides: HashMap<NaiveDate, Override> = HashMap::new();
        for (index, h) in raw.holidays.iter().enumerate() {
            let name = h.name.get_ref().trim();
            if name.is_empty() {
                return Err(src.at(h.name.span(), "holiday name is empty"));
            }
            if h.off.get_ref().is_empty() {
                return Err(src.at(h.off.span(), format!("holiday {name}: off lists no days")));
            }
            let mut holiday = Holiday {
                name: name.to_owned(),
                off: Vec::new(),
                work: Vec::new(),
            };
            for value in h.off.get_ref() {
                let (from, to) = parse_date_range(value.get_ref())
                    .map_err(|m| src.at(value.span(), format!("holiday {name}: {m}")))?;
                let mut d = from;
                while d <= to {
                    check_year(&years, d)
                        .map_err(|m| src.at(value.span(), format!("holiday {name}: {m}")))?;
                    if overrides.insert(d, Override::Off(index)).is_some() {
                        return Err(src.at(
                            value.span(),
                            format!("holiday {name}: {d} is already listed"),
                        ));
                    }
                    holiday.off.push(d);
                    let Some(next) = d.succ_opt() else { break };
                    d = next;
                }
            }
            for value in &h.work {
                let d = parse_date(value.get_ref())
                    .map_err(|m| src.at(value.span(), format!("holiday {name}: work: {m}")))?;
                check_year(&years, d)
                    .map_err(|m| src.at(value.span(), format!("holiday {name}: {m}")))?;
                if !weekly[weekday_index(d)].is_empty() {
                    return Err(src.at(
                        value.span(),
                        format!("holiday {name}: {d} is a {}, already a working day; a make-up working day (调休) must be a rest day", d.weekday()),
                    ));
                }
                if overrides.insert(d, Override::Work(index)).is_some() {
                    return Err(src.at(
                        value.span(),
                        format!("holiday {name}: {d} is already listed"),
                    ));
                }
                holiday.work.push(d);
            }
            holidays.push(holiday);
        }

        let standard_day_ms = standard_day(&weekly);
        Ok(WorkingCalendar {
            id: id.to_owned(),
            name: raw.name,
            file: file.to_owned(),
            offset,
            weekly,
            makeup,
            holidays,
            overrides,
            years,
            standard_day_ms,
        })
    }

    /// A calendar where every minute is working time (UTC, no holidays): working units then
    /// count like natural ones. The fallback when no calendar is configured, and handy in tests.
    pub fn always_open() -> &'static WorkingCalendar {
        static ALWAYS: OnceLock<WorkingCalendar> = OnceLock::new();
        ALWAYS.get_or_init(|| {
            let all_day = vec![Span {
                start: 0,
                end: MS_PER_DAY,
            }];
            WorkingCalendar {
                id: "always-open".into(),
                name: "24/7".into(),
                file: "(built in)".into(),
                offset: Utc.fix(),
                weekly: std::array::from_fn(|_| all_day.clone()),
                makeup: all_day.clone(),
                holidays: Vec::new(),
                overrides: HashMap::new(),
                years: BTreeSet::new(),
                standard_day_ms: MS_PER_DAY,
            }
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The file the calendar was read from, for messages.
    pub fn file(&self) -> &str {
        &self.file
    }
    pub fn utc_offset(&self) -> FixedOffset {
        self.offset
    }
    pub fn holidays(&self) -> &[Holiday] {
        &self.holidays
    }
    /// The years whose holidays the calendar lists.
    pub fn years(&self) -> impl Iterator<Item = i32> + '_ {
        self.years.iter().copied()
    }
    /// Whether the calendar knows the holidays of `date`'s year. A deadline beyond the
    /// covered years ignores holidays the calendar does not yet list.
    pub fn covers(&self, date: NaiveDate) -> bool {
        self.years.contains(&date.year())
    }
    /// What one working day is worth in working time.
    pub fn standard_day(&self) -> TimeDelta {
        TimeDelta::milliseconds(self.standard_day_ms)
    }

    /// The local date of an instant.
    pub fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        self.local(t).0
    }

    pub fn day_kind(&self, date: NaiveDate) -> DayKind<'_> {
        match self.overrides.get(&date) {
            Some(Override::Off(i)) => DayKind::Holiday(&self.holidays[*i].name),
            Some(Override::Work(i)) => DayKind::MakeupWorkday(&self.holidays[*i].name),
            None if self.weekly[weekday_index(date)].is_empty() => DayKind::RestDay,
            None => DayKind::Workday,
        }
    }

    /// The working spans of a local date, as instants.
    pub fn working_spans(&self, date: NaiveDate) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        self.spans(date)
            .iter()
            .map(|s| (self.utc(date, s.start), self.utc(date, s.end)))
            .collect()
    }

    /// Whether `t` is inside working hours (a span's closing minute is not).
    pub fn is_working_time(&self, t: DateTime<Utc>) -> bool {
        let (date, tod) = self.local(t);
        self.spans(date)
            .iter()
            .any(|s| s.start <= tod && tod < s.end)
    }

    /// Whether `t` is within working hours counting each span's closing instant, which is
    /// where a deadline lands when a limit ends exactly at closing time.
    pub fn is_within_working_hours(&self, t: DateTime<Utc>) -> bool {
        let (date, tod) = self.local(t);
        self.spans(date)
            .iter()
            .any(|s| s.start <= tod && tod <= s.end)
    }

    /// The deadline of `limit` counted from `start`.
    pub fn add(&self, start: DateTime<Utc>, limit: Limit) -> DateTime<Utc> {
        let measure = limit.measure();
        self.advance(start, limit.in_measure(measure, self), measure)
    }

    /// The deadline of `amount` `unit`s counted from `start`; exact to the millisecond.
    pub fn add_working(&self, start: DateTime<Utc>, amount: u32, unit: TimeUnit) -> DateTime<Utc> {
        self.add(start, Limit::new(amount, unit))
    }

    /// The earliest instant at which `ms` milliseconds of `measure` have passed since `start`.
    pub fn advance(&self, start: DateTime<Utc>, ms: i64, measure: Measure) -> DateTime<Utc> {
        match measure {
            Measure::Natural => start
                .checked_add_signed(TimeDelta::milliseconds(ms))
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
            Measure::Working => self.walk_advance(start, ms, false),
            Measure::WorkingDays => self.walk_advance(start, ms, true),
        }
    }

    /// Milliseconds of `measure` between `from` and `to` (zero when `to` is not after `from`).
    pub fn elapsed(&self, from: DateTime<Utc>, to: DateTime<Utc>, measure: Measure) -> i64 {
        if to <= from {
            return 0;
        }
        match measure {
            Measure::Natural => (to - from).num_milliseconds(),
            Measure::Working => self.walk_elapsed(from, to, false),
            Measure::WorkingDays => self.walk_elapsed(from, to, true),
        }
    }

    // -- internals

    fn spans(&self, date: NaiveDate) -> &[Span] {
        match self.overrides.get(&date) {
            Some(Override::Off(_)) => &[],
            Some(Override::Work(_)) => &self.makeup,
            None => &self.weekly[weekday_index(date)],
        }
    }

    fn local(&self, t: DateTime<Utc>) -> (NaiveDate, i64) {
        // Checked: an instant at the edge of chrono's range stays at that edge.
        let offset = TimeDelta::seconds(i64::from(self.offset.local_minus_utc()));
        let local = t
            .naive_utc()
            .checked_add_signed(offset)
            .unwrap_or(t.naive_utc());
        let time = local.time();
        // A leap second reports nanos ≥ 1e9; clamp it into the last millisecond.
        let ms = i64::from(time.num_seconds_from_midnight()) * 1000
            + i64::from(time.nanosecond().min(999_999_999) / 1_000_000);
        (local.date(), ms)
    }

    fn utc(&self, date: NaiveDate, ms_of_day: i64) -> DateTime<Utc> {
        let midnight = date.and_time(NaiveTime::MIN);
        let local = midnight
            .checked_add_signed(TimeDelta::milliseconds(ms_of_day))
            .unwrap_or(midnight);
        let utc = local
            .checked_sub_signed(TimeDelta::seconds(i64::from(self.offset.local_minus_utc())))
            .unwrap_or(local);
        DateTime::from_naive_utc_and_offset(utc, Utc)
    }

    /// Working milliseconds of `avail` on a day of `len` working ms, in the walk's unit.
    fn weigh(&self, avail: i64, len: i64, days: bool) -> i128 {
        if days && len != self.standard_day_ms {
            i128::from(avail) * i128::from(self.standard_day_ms) / i128::from(len)
        } else {
            i128::from(avail)
        }
    }

    fn walk_advance(&self, start: DateTime<Utc>, amount: i64, days: bool) -> DateTime<Utc> {
        if amount <= 0 {
            return start;
        }
        let (mut date, mut tod) = self.local(start);
        let mut remaining = i128::from(amount);
        for _ in 0..MAX_WALK_DAYS {
            let spans = self.spans(date);
            let len: i64 = spans.iter().map(|s| s.end - s.start).sum();
            for span in spans {
                if tod >= span.end {
                    continue;
                }
                let from = tod.max(span.start);
                let avail = span.end - from;
                let weighed = self.weigh(avail, len, days);
                if remaining <= weighed {
                    let offset = if days && len != self.standard_day_ms {
                        // ceil(remaining · len / standard): the earliest millisecond that
                        // uses the remainder up.
                        let std = i128::from(self.standard_day_ms);
                        (remaining * i128::from(len) + std - 1) / std
                    } else {
                        remaining
                    };
                    let offset = i64::try_from(offset).unwrap_or(avail).min(avail);
                    return self.utc(date, from + offset);
                }
                remaining -= weighed;
            }
            match date.succ_opt() {
                Some(next) => date = next,
                None => break,
            }
            tod = 0;
        }
        DateTime::<Utc>::MAX_UTC
    }

    fn walk_elapsed(&self, from: DateTime<Utc>, to: DateTime<Utc>, days: bool) -> i64 {
        let (mut date, mut lo) = self.local(from);
        let (end_date, end_tod) = self.local(to);
        let mut total: i128 = 0;
        while date <= end_date {
            let hi = if date == end_date {
                end_tod
            } else {
                MS_PER_DAY
            };
            let spans = self.spans(date);
            let len: i64 = spans.iter().map(|s| s.end - s.start).sum();
            for span in spans {
                let overlap = span.end.min(hi) - span.start.max(lo);
                if overlap > 0 {
                    // Weighed per span, exactly as `walk_advance` does, so that advancing by
                    // an elapsed amount never overshoots.
                    total += self.weigh(overlap, len, days);
                }
            }
            match date.succ_opt() {
                Some(next) => date = next,
                None => break,
            }
            lo = 0;
        }
        i64::try_from(total).unwrap_or(i64::MAX)
    }
}

fn weekday_index(date: NaiveDate) -> usize {
    date.weekday().num_days_from_monday() as usize
}

/// The usual length of a working weekday: the most common, the longer on a tie.
fn standard_day(weekly: &[Vec<Span>; 7]) -> i64 {
    let mut counts: Vec<(i64, usize)> = Vec::new();
    for spans in weekly {
        let len: i64 = spans.iter().map(|s| s.end - s.start).sum();
        if len == 0 {
            continue;
        }
        match counts.iter_mut().find(|(l, _)| *l == len) {
            Some((_, n)) => *n += 1,
            None => counts.push((len, 1)),
        }
    }
    counts
        .into_iter()
        .max_by_key(|&(len, n)| (n, len))
        .map_or(MS_PER_DAY, |(len, _)| len)
}

fn parse_offset(s: &str) -> Option<FixedOffset> {
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = s.get(1..)?.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if h > 14 || m > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

/// "HH:MM" as milliseconds since midnight; "24:00" is accepted (as an end).
fn parse_clock(s: &str) -> Option<i64> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return None;
    }
    Some(h * MS_PER_HOUR + m * MS_PER_MINUTE)
}

fn parse_day_hours(
    src: &Source<'_>,
    day: &str,
    values: &[Spanned<String>],
) -> Result<Vec<Span>, ConfigError> {
    let mut spans: Vec<Span> = Vec::new();
    for value in values {
        let text = value.get_ref().trim();
        let bad = |why: &str| src.at(value.span(), format!("hours.{day}: {text:?} {why}"));
        let (a, b) = text
            .split_once('-')
            .ok_or_else(|| bad("must look like \"08:30-12:00\""))?;
        let start = parse_clock(a.trim()).ok_or_else(|| bad("has a start that is not HH:MM"))?;
        let end = parse_clock(b.trim()).ok_or_else(|| bad("has an end that is not HH:MM"))?;
        if start >= end {
            return Err(bad("ends before it starts"));
        }
        if start == MS_PER_DAY {
            return Err(bad("starts at 24:00"));
        }
        if let Some(prev) = spans.last() {
            if start < prev.end {
                return Err(bad(
                    "overlaps or comes before the span listed before it; list spans in order",
                ));
            }
        }
        spans.push(Span { start, end });
    }
    Ok(spans)
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| format!("{s:?} is not a date (YYYY-MM-DD)"))
}

/// "YYYY-MM-DD" or an inclusive range "YYYY-MM-DD..YYYY-MM-DD".
fn parse_date_range(s: &str) -> Result<(NaiveDate, NaiveDate), String> {
    match s.split_once("..") {
        None => parse_date(s).map(|d| (d, d)),
        Some((a, b)) => {
            let (from, to) = (parse_date(a)?, parse_date(b)?);
            if to < from {
                return Err(format!("range {s:?} ends before it starts"));
            }
            if (to - from).num_days() >= MAX_HOLIDAY_DAYS {
                return Err(format!(
                    "range {s:?} is longer than {MAX_HOLIDAY_DAYS} days"
                ));
            }
            Ok((from, to))
        }
    }
}

fn check_year(years: &BTreeSet<i32>, d: NaiveDate) -> Result<(), String> {
    if years.contains(&d.year()) {
        Ok(())
    } else {
        Err(format!(
            "{d} is outside the years this file covers ({}); add {} to years",
            years
                .iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            d.year()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAL: &str = r#"
name = "test"
utc_offset = "+08:00"
years = [2026]
[hours]
mon = ["08:30-12:00", "14:00-17:30"]
tue = ["08:30-12:00", "14:00-17:30"]
wed = ["08:30-12:00", "14:00-17:30"]
thu = ["08:30-12:00", "14:00-17:30"]
fri = ["08:30-12:00", "14:00-17:30"]
"#;

    fn cn(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        let offset = FixedOffset::east_opt(8 * 3600).unwrap();
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, min, 0)
            .unwrap()
            .and_local_timezone(offset)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn limits_parse_and_print() {
        assert_eq!(Limit::parse("4 working_hours"), Ok(Limit::working_hours(4)));
        assert_eq!(Limit::parse("1 working_day"), Ok(Limit::working_days(1)));
        assert_eq!(Limit::working_days(7).to_string(), "7 working_days");
        assert!(Limit::parse("0 hours").unwrap_err().contains("zero"));
        assert!(Limit::parse("1.5 hours")
            .unwrap_err()
            .contains("whole number"));
        assert!(Limit::parse("4 fortnights")
            .unwrap_err()
            .contains("known: seconds, minutes"));
        assert_eq!(
            Limit::parse("90 seconds")
                .map(|l| l.in_measure(Measure::Natural, WorkingCalendar::always_open())),
            Ok(90_000)
        );
        assert!(Limit::parse("99999 working_days")
            .unwrap_err()
            .contains("largest"));
    }

    #[test]
    fn standard_day_is_seven_hours() {
        let cal = WorkingCalendar::parse(CAL, "t.toml", "t").unwrap();
        assert_eq!(cal.standard_day(), TimeDelta::hours(7));
    }

    #[test]
    fn limit_ending_at_closing_time_is_due_at_closing_time() {
        let cal = WorkingCalendar::parse(CAL, "t.toml", "t").unwrap();
        let start = cn(2026, 3, 2, 16, 0); // Monday
        assert_eq!(
            cal.add(start, Limit::working_minutes(90)),
            cn(2026, 3, 2, 17, 30)
        );
        assert_eq!(
            cal.add(start, Limit::working_minutes(91)),
            cn(2026, 3, 3, 8, 31)
        );
    }

    #[test]
    fn elapsed_inverts_advance() {
        let cal = WorkingCalendar::parse(CAL, "t.toml", "t").unwrap();
        let start = cn(2026, 3, 6, 11, 0);
        let end = cal.add(start, Limit::working_hours(9));
        assert_eq!(cal.elapsed(start, end, Measure::Working), 9 * MS_PER_HOUR);
    }

    #[test]
    fn bad_hours_are_refused_with_their_line() {
        let text = CAL.replace(
            "tue = [\"08:30-12:00\", \"14:00-17:30\"]",
            "tue = [\"14:00-17:30\", \"08:30-12:00\"]",
        );
        let err = WorkingCalendar::parse(&text, "t.toml", "t")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("t.toml:7:"), "{err}");
        assert!(err.contains("hours.tue"), "{err}");
    }
}
