//! 公安 110 接处警 (incident dispatch) system; field names follow the usual pinyin initials:
//! `jjdbh` 接警单编号 (incident number), `bjlbdm`/`bjlbmc` 报警类别代码/名称 (category),
//! `bjsj` 报警时间 (`yyyyMMddHHmmss`, local), `fadd` 发案地点 (address), `jd`/`wd` 经度/纬度,
//! `jqms` 警情描述, `bjrxm`/`bjrdh` 报警人姓名/电话, `sspcs` 所属派出所 (station).

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
    let reporter = (name.is_some() || phone.is_some()).then_some(Reporter {
        name,
        phone,
        id_number: None,
    });
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
        description: r.opt_text("jqms")?.unwrap_or_default(),
        attributes: r.attributes(&["sspcs"]),
        reporter,
        raw_ref: None,
    })
}
