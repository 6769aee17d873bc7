//! Every word the console shows, in one place: Simplified Chinese, in the words of street and
//! community dispatch (立案, 派遣, 签收, 处置, 核查, 结案, 督办). An English catalogue can follow
//! as a second `Labels` value and a per-account choice.

use hub_cases::clock::ClockKind;
use hub_cases::lifecycle::{ActionKind, CancelReason, ReturnReason};
use hub_router::city::UnitRole;
use hub_router::task::TaskStatus;
use hub_schemas::event::Department;

/// The labels of the pages.
#[derive(Debug)]
pub struct Labels {
    pub app: &'static str,
    pub lang: &'static str,
    pub nav_queue: &'static str,
    pub nav_map: &'static str,
    pub nav_triage: &'static str,
    pub datum: &'static str,
    pub map_count: &'static str,
    pub legend: &'static str,
    pub triage_hint: &'static str,
    pub triage_empty: &'static str,
    pub assign_to: &'static str,
    pub nav_figures: &'static str,
    pub nav_admin: &'static str,
    pub select: &'static str,
    pub department: &'static str,
    pub community: &'static str,
    pub bulk_sign_for: &'static str,
    pub bulk_hint: &'static str,
    pub bulk_assign: &'static str,
    pub group_by: &'static str,
    pub period_from: &'static str,
    pub period_to: &'static str,
    pub download_csv: &'static str,
    pub figures_cases: &'static str,
    pub sign_in: &'static str,
    pub sign_out: &'static str,
    pub token: &'static str,
    pub token_hint: &'static str,
    pub sign_in_failed: &'static str,
    pub sign_in_throttled: &'static str,
    pub queue_title: &'static str,
    pub filter: &'static str,
    pub status: &'static str,
    pub any: &'static str,
    pub open_only: &'static str,
    pub breached_only: &'static str,
    pub at_risk_only: &'static str,
    pub paused_only: &'static str,
    pub grid: &'static str,
    pub unit: &'static str,
    pub community_hint: &'static str,
    pub due_within: &'static str,
    pub sort: &'static str,
    pub sort_due: &'static str,
    pub sort_newest: &'static str,
    pub apply: &'static str,
    pub total: &'static str,
    pub task_id: &'static str,
    pub category: &'static str,
    pub place: &'static str,
    pub lead_unit: &'static str,
    pub co_handlers: &'static str,
    pub deadline: &'static str,
    pub reported_at: &'static str,
    pub no_tasks: &'static str,
    pub live: &'static str,
    pub live_lost: &'static str,
    pub reported: &'static str,
    pub description: &'static str,
    pub source: &'static str,
    pub reports: &'static str,
    pub why_here: &'static str,
    pub rule: &'static str,
    pub rules_version: &'static str,
    pub clocks: &'static str,
    pub clock_kind: &'static str,
    pub limit: &'static str,
    pub clock_state: &'static str,
    pub history: &'static str,
    pub actor: &'static str,
    pub actions: &'static str,
    pub no_actions: &'static str,
    pub note: &'static str,
    pub feedback: &'static str,
    pub finding: &'static str,
    pub reason: &'static str,
    pub extension_by: &'static str,
    pub satisfied: &'static str,
    pub satisfied_yes: &'static str,
    pub satisfied_no: &'static str,
    pub done: &'static str,
    pub moved_on: &'static str,
    pub refused: &'static str,
    pub back_to_queue: &'static str,
    pub triage: &'static str,
    pub unassigned: &'static str,
    pub joint_meeting: &'static str,
    pub joint_convened: &'static str,
    pub joint_role: &'static str,
    pub joint_part: &'static str,
    pub joint_report_in: &'static str,
    pub joint_part_state: &'static str,
    pub joint_lead: &'static str,
    pub joint_lead_part: &'static str,
    pub joint_part_limit: &'static str,
    pub joint_unit: &'static str,
    pub not_called: &'static str,
    pub form_invalid: &'static str,
    pub why_detail: &'static str,
}

pub static ZH: Labels = Labels {
    app: "社区事务联动平台",
    lang: "zh-CN",
    nav_queue: "工单列表",
    nav_map: "地图",
    nav_triage: "待分派",
    datum: "坐标系 GCJ-02（与配置和接口一致）；无底图",
    map_count: "当前视野内 {n} 件（共 {total} 件未结案工单）",
    legend: "图例",
    triage_hint: "无社区承接的工单（属地兜底）和被回退待仲裁的工单。请选择承办单位后派遣或仲裁。",
    triage_empty: "目前没有待分派或待仲裁的工单。",
    assign_to: "承办单位",
    nav_figures: "考核",
    nav_admin: "管理",
    select: "选择",
    department: "来源部门",
    community: "社区",
    bulk_sign_for: "批量签收",
    bulk_hint: "勾选工单后批量签收，或（选定社区时）批量派遣待分派、被回退的工单；不能办理的会被跳过并说明原因。",
    bulk_assign: "批量派遣",
    group_by: "统计口径",
    period_from: "起始日期",
    period_to: "截止日期（不含）",
    download_csv: "下载 CSV",
    figures_cases: "期内受理",
    sign_in: "登录",
    sign_out: "退出",
    token: "账号令牌",
    token_hint: "请输入管理员发给您的账号令牌（config/access.toml 中的账号）。",
    sign_in_failed: "令牌无效，请核对后重试。",
    sign_in_throttled: "登录失败次数过多，请稍后再试。",
    queue_title: "工单列表",
    filter: "筛选",
    status: "状态",
    any: "全部",
    open_only: "未结案",
    breached_only: "仅看已超时",
    at_risk_only: "仅看即将超时",
    paused_only: "仅看已暂停（待居民）",
    grid: "网格",
    unit: "承办单位",
    community_hint: "选定社区后可按网格和承办单位筛选",
    due_within: "到期时间",
    sort: "排序",
    sort_due: "最先到期",
    sort_newest: "最新上报",
    apply: "查询",
    total: "共",
    task_id: "工单号",
    category: "类别",
    place: "位置",
    lead_unit: "主办单位",
    co_handlers: "协办单位",
    deadline: "时限",
    reported_at: "上报时间",
    no_tasks: "没有符合条件的工单。",
    live: "实时更新中",
    live_lost: "实时连接已断开，正在重连…",
    reported: "上报内容",
    description: "问题描述",
    source: "来源",
    reports: "关联上报",
    why_here: "派遣依据",
    rule: "规则",
    rules_version: "规则版本",
    clocks: "办理时限",
    clock_kind: "环节",
    limit: "时限",
    clock_state: "状态",
    history: "流转记录",
    actor: "办理人",
    actions: "可办理操作",
    no_actions: "当前状态下您没有可办理的操作。",
    note: "备注",
    feedback: "处置情况",
    finding: "核查意见",
    reason: "原因",
    extension_by: "延长",
    satisfied: "回访结果",
    satisfied_yes: "满意",
    satisfied_no: "不满意",
    done: "已办理",
    moved_on: "工单状态已变化（可能已由他人办理），请查看最新状态后再操作。",
    refused: "未能办理",
    back_to_queue: "返回工单列表",
    triage: "待分派",
    unassigned: "未派遣（待分派）",
    joint_meeting: "联席会议（吹哨报到）",
    joint_convened: "召集时间",
    joint_role: "角色",
    joint_part: "分工",
    joint_report_in: "报到",
    joint_part_state: "分工完成",
    joint_lead: "牵头单位",
    joint_lead_part: "牵头单位的分工",
    joint_part_limit: "分工时限",
    joint_unit: "单位",
    not_called: "（不召集）",
    form_invalid: "表单内容有误",
    why_detail: "路由引擎原始说明（规则文件与行号）",
};

/// What a history entry's label (as the workflow writes it) says was done.
pub fn history_label(label: &str) -> Option<&'static str> {
    Some(match label {
        "created" => "立案",
        "dispatched" => "派遣",
        "signed_for" => "签收",
        "in_progress" => "开始处置",
        "stage_reported" => "阶段完成",
        "resolved" => "处置反馈",
        "verified" => "核查通过",
        "rework" => "核查不通过（返工）",
        "closed" => "结案",
        "cancelled" => "注销",
        "returned" => "回退",
        "re-dispatched" => "仲裁改派",
        "extension_requested" => "申请延期",
        "extension_approved" => "批准延期",
        "extension_refused" => "不予延期",
        "awaiting_resident" => "等待居民（暂停计时）",
        "resident_responded" => "居民已答复（恢复计时）",
        "callback_satisfied" => "回访：满意",
        "reopened" => "回访不满意，重新办理",
        "escalated" => "督办",
        "joint_meeting_convened" => "吹哨（召集联席会议）",
        "reported_in" => "报到",
        "part_completed" => "完成分工",
        _ => return None,
    })
}

/// A unit's role in the 1+2+X model.
pub fn unit_role(r: UnitRole) -> &'static str {
    match r {
        UnitRole::PartyBranch => "社区党组织",
        UnitRole::Workstation => "社区工作站",
        UnitRole::ResidentsCommittee => "居委会",
        UnitRole::PoliceStation => "派出所（警务室）",
        UnitRole::UrbanManagementSquad => "城管中队",
        UnitRole::SanitationTeam => "环卫所",
        UnitRole::PropertyCompany => "物业公司",
        UnitRole::OwnersCommittee => "业委会",
        UnitRole::Housing => "房管",
        UnitRole::Greening => "园林绿化",
        UnitRole::FireSafety => "消防",
        UnitRole::School => "学校",
        UnitRole::SocialOrganisation => "社会组织",
        UnitRole::VolunteerTeam => "志愿服务队",
        UnitRole::TriageDesk => "指挥中心（属地兜底）",
    }
}

pub fn status(s: TaskStatus) -> &'static str {
    match s {
        TaskStatus::Created => "已立案",
        TaskStatus::Dispatched => "已派遣",
        TaskStatus::SignedFor => "已签收",
        TaskStatus::InProgress => "处置中",
        TaskStatus::Resolved => "已反馈",
        TaskStatus::Verified => "已核查",
        TaskStatus::Closed => "已结案",
        TaskStatus::Cancelled => "已注销",
        TaskStatus::Returned => "已回退",
    }
}

pub fn action(k: ActionKind) -> &'static str {
    match k {
        ActionKind::Dispatch => "派遣",
        ActionKind::SignFor => "签收",
        ActionKind::Start => "开始处置",
        ActionKind::ReportStage => "阶段完成",
        ActionKind::Resolve => "处置反馈",
        ActionKind::Verify => "核查通过",
        ActionKind::Rework => "核查不通过（返工）",
        ActionKind::Close => "结案",
        ActionKind::Cancel => "注销",
        ActionKind::Return => "回退",
        ActionKind::Arbitrate => "仲裁",
        ActionKind::RequestExtension => "申请延期",
        ActionKind::ApproveExtension => "批准延期",
        ActionKind::RefuseExtension => "不予延期",
        ActionKind::AwaitResident => "等待居民答复（暂停计时）",
        ActionKind::ResidentResponded => "居民已答复（恢复计时）",
        ActionKind::Callback => "回访",
        ActionKind::Escalate => "督办上报",
        ActionKind::ConveneJointMeeting => "吹哨（召集联席会议）",
        ActionKind::ReportIn => "报到",
        ActionKind::CompletePart => "完成分工",
    }
}

pub fn return_reason(r: ReturnReason) -> &'static str {
    match r {
        ReturnReason::NotOurRemit => "非本单位职责",
        ReturnReason::OutsideArea => "不在辖区",
        ReturnReason::NotAdmitted => "未准入事项",
        ReturnReason::InsufficientInformation => "信息不全",
        ReturnReason::Duplicate => "重复派遣",
        ReturnReason::BeyondPowers => "超出权限",
        ReturnReason::Other => "其他（请在备注中说明）",
    }
}

pub fn cancel_reason(r: CancelReason) -> &'static str {
    match r {
        CancelReason::Invalid => "无效（现场无此问题）",
        CancelReason::Duplicate => "重复",
        CancelReason::OutOfScope => "不属于受理范围",
        CancelReason::Withdrawn => "上报人撤回",
        CancelReason::Other => "其他（请在备注中说明）",
    }
}

pub fn clock_kind(k: &ClockKind) -> String {
    match k {
        ClockKind::SignFor => "签收".to_owned(),
        ClockKind::Handling { stage } if stage == "handling" => "处置".to_owned(),
        ClockKind::Handling { stage } => format!("处置（{stage}）"),
        ClockKind::Rework => "返工".to_owned(),
        ClockKind::Verification => "核查".to_owned(),
        ClockKind::Arbitration => "回退仲裁".to_owned(),
        ClockKind::Escalation { step, .. } => format!("督办（{}）", ladder_step(step.as_str())),
        ClockKind::ReportIn { unit } => format!("报到：{unit}"),
        ClockKind::JointPart { unit } => format!("分工：{unit}"),
    }
}

pub fn ladder_step(step: &str) -> &'static str {
    match step {
        "grid_worker" => "网格员",
        "workstation" => "社区工作站",
        "party_branch" => "社区党委",
        "joint_meeting" => "联席会议",
        "street" => "街道",
        "district" => "区",
        _ => "上级",
    }
}

pub fn department(d: Department) -> &'static str {
    match d {
        Department::Police => "公安",
        Department::UrbanManagement => "城管",
        Department::Sanitation => "环卫",
        Department::CivilAffairs => "民政",
        Department::Residents => "居民（12345）",
    }
}

/// "3天2小时", "45分钟": a span for people, to the minute.
pub fn span(ms: i64) -> String {
    let minutes = ms.max(0) / 60_000;
    let (d, h, m) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (d, h) {
        (0, 0) => format!("{m}分钟"),
        (0, _) => format!("{h}小时{m}分"),
        _ => format!("{d}天{h}小时"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_naturally() {
        assert_eq!(span(45 * 60_000), "45分钟");
        assert_eq!(span((2 * 60 + 5) * 60_000), "2小时5分");
        assert_eq!(span((3 * 1440 + 2 * 60) * 60_000), "3天2小时");
        assert_eq!(span(-5), "0分钟");
    }

    #[test]
    fn every_status_and_action_has_a_label() {
        for s in TaskStatus::ALL {
            assert!(!status(s).is_empty());
        }
        for k in ActionKind::ALL {
            assert!(!action(k).is_empty());
        }
    }
}
