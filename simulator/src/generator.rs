//! Realistic records for each department's fake system, placed at the sample city's
//! gazetteer addresses (`config/city/addresses.csv`), so every record has a known grid.

use std::path::Path;

use chrono::{DateTime, FixedOffset, Utc};
use hub_schemas::event::Department;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// One gazetteer entry: an address or landmark, its point and the grid it lies in.
#[derive(Debug, Clone, PartialEq)]
pub struct Address {
    pub name: String,
    pub lon: f64,
    pub lat: f64,
    pub grid_code: String,
}

impl Address {
    /// The community code: the first 12 digits of a 15-digit grid code.
    pub fn community_code(&self) -> &str {
        &self.grid_code[..12.min(self.grid_code.len())]
    }
}

/// Read `addresses.csv` (`address,lon,lat,grid_code` with a header line).
pub fn load_addresses(path: &Path) -> Result<Vec<Address>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split(',').collect();
        let bad = |what: &str| format!("{}:{}: {what}", path.display(), i + 1);
        if cols.len() != 4 {
            return Err(bad("expected 4 columns: address,lon,lat,grid_code"));
        }
        out.push(Address {
            name: cols[0].to_owned(),
            lon: cols[1].parse().map_err(|_| bad("lon is not a number"))?,
            lat: cols[2].parse().map_err(|_| bad("lat is not a number"))?,
            grid_code: cols[3].to_owned(),
        });
    }
    if out.is_empty() {
        return Err(format!("{}: no addresses", path.display()));
    }
    Ok(out)
}

/// (department's own code, name, description template) for each department.
const URBAN_MANAGEMENT: &[(&str, &str, &str)] = &[
    ("010101", "私搭乱建", "屋顶违章搭建彩钢棚"),
    ("010102", "暴露垃圾", "路边垃圾堆积无人清运"),
    ("030201", "占道经营", "流动摊贩占用人行道经营"),
    ("020101", "非法小广告", "墙面张贴非法小广告"),
    ("040102", "工地管理", "工地出入口渣土撒漏"),
    ("060101", "井盖破损", "人行道井盖破损缺失"),
    ("060203", "路灯损坏", "路灯夜间不亮"),
];
const POLICE: &[(&str, &str, &str)] = &[
    ("0201", "盗窃", "小区内电动车被盗"),
    ("0202", "入室盗窃", "住户报称家中财物被盗"),
    ("0301", "纠纷", "邻里因噪音发生纠纷"),
    ("0501", "出租房屋核查", "出租屋未登记租住人员"),
    ("0502", "流动人口登记", "新入住流动人口待登记"),
    ("0601", "出租屋内非法网吧", "出租屋内疑似开设黑网吧"),
];
const SANITATION: &[(&str, &str, &str)] = &[
    ("GARBAGE_OVERFLOW", "垃圾满溢", "垃圾桶满溢"),
    ("EXPOSED_GARBAGE", "暴露垃圾", "绿化带内暴露垃圾"),
    ("ROAD_CLEANING", "道路保洁", "路面油污需冲洗"),
    ("CONSTRUCTION_WASTE", "建筑垃圾", "装修垃圾乱倒"),
];
const CIVIL_AFFAIRS: &[(&str, &str, &str)] = &[
    (
        "ELDERLY_NO_CONTACT",
        "独居老人失联",
        "独居老人超过48小时未联系上",
    ),
    ("LEFT_BEHIND_CHILD", "留守儿童探访", "留守儿童季度探访到期"),
    ("HARDSHIP", "困难群众帮扶", "低保户申请临时救助"),
    ("DISABILITY_SUPPORT", "残疾人帮扶", "残疾人辅具申领跟进"),
];
const SURNAMES: &[&str] = &["王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴"];
const GIVEN: &[&str] = &[
    "建国", "秀英", "志强", "桂兰", "海燕", "俊杰", "淑珍", "伟", "芳", "军",
];

/// Produces records in each department's own format.
pub struct Generator {
    addresses: Vec<Address>,
    rng: SmallRng,
    sequence: u64,
    /// Distinguishes ids of separate runs against one store.
    run_tag: String,
}

impl Generator {
    pub fn new(addresses: Vec<Address>, seed: u64) -> Self {
        Generator {
            addresses,
            rng: SmallRng::seed_from_u64(seed),
            sequence: 0,
            run_tag: format!("{:04}", seed % 10_000),
        }
    }

    pub fn addresses(&self) -> &[Address] {
        &self.addresses
    }

    /// A record for `department` at a random address, occurring at `now`.
    pub fn record(&mut self, department: Department, now: DateTime<Utc>) -> Value {
        let i = self.rng.random_range(0..self.addresses.len());
        let address = self.addresses[i].clone();
        self.record_at(department, &address, now)
    }

    /// A record for `department` at a given address.
    pub fn record_at(&mut self, department: Department, at: &Address, now: DateTime<Utc>) -> Value {
        self.sequence += 1;
        let seq = self.sequence;
        let local = now.with_timezone(&FixedOffset::east_opt(8 * 3600).expect("UTC+8"));
        let date = local.format("%Y%m%d");
        let pick = |rng: &mut SmallRng, table: &'static [(&str, &str, &str)]| {
            table[rng.random_range(0..table.len())]
        };
        let name = format!(
            "{}{}",
            SURNAMES[self.rng.random_range(0..SURNAMES.len())],
            GIVEN[self.rng.random_range(0..GIVEN.len())]
        );
        let phone = format!("138{:08}", self.rng.random_range(0..100_000_000u32));
        let tag = &self.run_tag;
        match department {
            Department::UrbanManagement => {
                let (code, cname, desc) = pick(&mut self.rng, URBAN_MANAGEMENT);
                json!({
                    "caseNo": format!("CG{date}{tag}{seq:06}"), "eventTypeCode": code, "eventTypeName": cname,
                    "reportTime": local.format("%Y-%m-%d %H:%M:%S").to_string(),
                    "x": at.lon, "y": at.lat, "address": at.name, "description": desc,
                    "source": if seq.is_multiple_of(3) { "市民举报" } else { "巡查上报" },
                    "reporter": { "name": name, "phone": phone },
                })
            }
            Department::Police => {
                let (code, cname, desc) = pick(&mut self.rng, POLICE);
                let mut record = json!({
                    "jjdbh": format!("J510504{date}{tag}{seq:05}"), "bjlbdm": code, "bjlbmc": cname,
                    "bjsj": local.format("%Y%m%d%H%M%S").to_string(), "fadd": at.name,
                    "jd": format!("{:.6}", at.lon), "wd": format!("{:.6}", at.lat), "jqms": desc,
                    "bjrxm": name, "bjrdh": phone,
                    "sspcs": format!("{}派出所", &at.name.chars().take(2).collect::<String>()),
                });
                // Rental-housing and floating-population checks name the dwelling and head count.
                if code == "0501" || code == "0502" {
                    record["fwbh"] = json!(format!("FW{}{:04}", at.grid_code, seq % 10_000));
                    record["ldrks"] = json!(1 + seq % 6);
                }
                record
            }
            Department::Sanitation => {
                let (code, cname, desc) = pick(&mut self.rng, SANITATION);
                json!({
                    "orderId": format!("HW-{date}-{tag}-{seq:06}"), "type": code, "typeName": cname,
                    "createdAt": local.to_rfc3339(), "binId": format!("BIN-{:04}", self.rng.random_range(1..2000)),
                    "lng": at.lon, "lat": at.lat, "fillLevel": self.rng.random_range(60..=100), "remark": desc,
                })
            }
            Department::CivilAffairs | Department::Residents => {
                let (code, cname, desc) = pick(&mut self.rng, CIVIL_AFFAIRS);
                json!({
                    "case_id": format!("MZ-{date}-{tag}-{seq:06}"), "case_type": code, "case_type_name": cname,
                    "updated_at": local.format("%Y-%m-%d %H:%M:%S").to_string(),
                    "grid_code": at.grid_code, "address": at.name, "note": desc,
                    "hours_without_contact": if code == "ELDERLY_NO_CONTACT" { 48 + seq % 24 } else { 0 },
                    "person": {
                        "name": name, "phone": phone,
                        "id_number": format!("510504{:04}{:02}{:02}{:04}", 1940 + seq % 40, 1 + seq % 12, 1 + seq % 28, seq % 10_000),
                    },
                })
            }
        }
    }
}
