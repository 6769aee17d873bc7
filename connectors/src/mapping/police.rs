//! 公安 110 接处警 (incident dispatch) system; field names follow the usual pinyin initials:
//! `jjdbh` 接警单编号 (incident number), `bjlbdm`/`bjlbmc` 报警类别代码/名称 (category),
//! `bjsj` 报警时间 (`yyyyMMddHHmmss`, local), `fadd` 发案地点 (address), `jd`/`wd` 经度/纬度,
//! `jqms` 警情描述, `bjrxm`/`bjrdh`/`bjrsfzh` 报警人姓名/电话/身份证号 (personal data),
//! `sspcs` 所属派出所 (station). Rental-housing and floating-population checks add `fwbh`
//! 房屋编号 (the rented dwelling's number) and `ldrks` 流动人口数 (people to register).
//!
//! Codes seen (the router maps them to the taxonomy): `0201` 盗窃 theft, `0202` 入室盗窃
//! burglary, `0301` 纠纷 dispute, `0501` 出租房屋核查 rental-housing check, `0502` 流动人口登记
//! floating-population registration, `0601` 出租屋内非法网吧 illegal internet café.

use hub_schemas::event::{CivicEvent, Department, Location, PersonalData, Reporter};

use super::fields::{require_some_location, Record};
use super::{MappingContext, MappingError};

pub fn map(r: &Record, ctx: MappingContext<'_>) -> Result<CivicEvent, MappingError> {
    let source_id = r.text("jjdbh")?;
    let location = Location {
        point: r.opt_point("jd", "wd")?,
        address: r.opt_text("fadd")?,
        grid_code: None,
    };
    require_some_location(&location, "jd/wd, fadd")?;
    let name = r.opt_text("bjrxm")?.map(PersonalData::new);
    let phone = r.opt_text("bjrdh")?.map(PersonalData::new);
    let id_number = r.opt_text("bjrsfzh")?.map(PersonalData::new);
    let reporter = (name.is_some() || phone.is_some() || id_number.is_some()).then_some(Reporter {
        name,
        phone,
        id_number,
    });
    if let Some(count) = r.opt_number("ldrks")? {
        if count < 0.0 || count.fract() != 0.0 {
            return Err(MappingError::new(
                "ldrks",
                format!("{count} is not a number of people"),
            ));
        }
    }
    Ok(CivicEvent {
        event_id: CivicEvent::derive_id(ctx.source_system, &source_id),
        source_system: ctx.source_system.to_owned(),
        source_id,
        department: Department::Police,
        category_code: r.text("bjlbdm")?,
        category_name: r.opt_text("bjlbmc")?,
        occurred_at: r.local_time("bjsj", "%Y%m%d%H%M%S")?,
        received_at: ctx.received_at,
        location,
        description: r.opt_free_text("jqms")?.unwrap_or_default(),
        attributes: r.attributes(&["sspcs", "fwbh", "ldrks"]),
        reporter,
        raw_ref: None,
    })
}
