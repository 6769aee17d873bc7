//! The message catalogue: every word the console shows, in one place — the pages' labels,
//! the flash messages and errors, the table headers, the band words and the sentences built
//! from a task's particulars. Simplified Chinese, in the words of street and community
//! dispatch (立案, 派遣, 签收, 处置, 核查, 结案, 督办). Plain words are fields of [`Labels`]
//! (templates read them as `t.…`); words with particulars are the functions below, grouped by
//! page. An English catalogue can follow as a second `Labels` value with its own functions
//! (and a per-account choice); nothing outside this file holds a word of the console.

use hub_cases::clock::ClockKind;
use hub_cases::lifecycle::{ActionKind, CancelReason, ReturnReason};
use hub_router::city::UnitRole;
use hub_router::task::TaskStatus;
use hub_schemas::event::Department;

use super::views::CONVENE_CO_HANDLERS;

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

    // Shared by the pages.
    /// `aria-label` of the main navigation.
    pub nav_label: &'static str,
    /// The measure word after a number of tasks (`共 3 件`).
    pub count_unit: &'static str,
    pub name: &'static str,
    pub page_failed: &'static str,
    pub no_such_task: &'static str,
    pub request_invalid: &'static str,
    pub store_unavailable_refresh: &'static str,
    pub store_unavailable_retry: &'static str,
    pub out_of_scope: &'static str,

    // Sign-in.
    pub sign_in_again: &'static str,
    pub form_expired: &'static str,

    // Queue.
    pub within_2h: &'static str,
    pub within_1d: &'static str,
    pub within_3d: &'static str,
    pub within_7d: &'static str,
    pub bulk_choose_unit: &'static str,
    pub bulk_unknown_action: &'static str,
    pub bulk_none_chosen: &'static str,
    pub bulk_no_such_task: &'static str,
    pub bulk_unit_elsewhere: &'static str,
    pub bulk_already_dispatched: &'static str,

    // Task page.
    pub finished_on_time: &'static str,
    pub finished_late: &'static str,
    pub stage_done: &'static str,
    pub extension_granted: &'static str,
    pub extension_as_requested: &'static str,
    pub escalate_to: &'static str,
    /// The action named when a refused form did not say which (您的账号无权办理“此操作”).
    pub this_action: &'static str,
    pub form_too_long: &'static str,
    pub triaged_above: &'static str,
    pub admitted: &'static str,
    pub not_admitted: &'static str,

    // Joint meeting.
    /// The co-handler rows of the form that convenes it, and their parts.
    pub joint_co_unit: [&'static str; CONVENE_CO_HANDLERS],
    pub joint_co_part: [&'static str; CONVENE_CO_HANDLERS],
    /// The parts' time limit left open.
    pub joint_no_part_limit: &'static str,
    pub joint_role_lead: &'static str,
    pub joint_role_co_handler: &'static str,
    pub joint_untimed: &'static str,
    pub joint_awaiting_report_in: &'static str,
    pub joint_no_lead: &'static str,
    pub joint_no_lead_part: &'static str,
    pub joint_no_co_handlers: &'static str,
    pub joint_unit_twice: &'static str,

    // History.
    pub history_filed: &'static str,
    pub actor_router: &'static str,
    pub actor_sla_tracker: &'static str,

    // Map: the bands of the points and of the legend.
    pub map_band_ok: &'static str,
    pub map_band_warn: &'static str,
    pub map_band_late: &'static str,
    pub map_band_none: &'static str,

    // Figures.
    pub by_community: &'static str,
    pub by_street: &'static str,
    pub by_unit: &'static str,
    pub figures_rank: &'static str,
    pub figures_received: &'static str,
    pub figures_avg_sign_for: &'static str,
    pub figures_avg_handling: &'static str,
    pub rate_on_time_closing: &'static str,
    pub rate_closing: &'static str,
    pub rate_filing: &'static str,
    pub rate_response: &'static str,
    pub rate_resolution: &'static str,
    pub rate_satisfaction: &'static str,
    pub rate_rework: &'static str,
    pub rate_extension: &'static str,

    // Administration.
    pub admin_only: &'static str,
    pub admin_connectors: &'static str,
    pub no_connectors: &'static str,
    pub connector_kind: &'static str,
    pub connector_last_success: &'static str,
    pub connector_received: &'static str,
    pub connector_produced: &'static str,
    pub connector_dead_lettered: &'static str,
    pub connector_lag: &'static str,
    pub connector_last_error: &'static str,
    pub connector_healthy: &'static str,
    pub connector_retrying: &'static str,
    pub connector_failing: &'static str,
    pub connector_starting: &'static str,
    pub connector_stopped: &'static str,
    pub all_sources: &'static str,
    pub replay: &'static str,
    pub replay_failed: &'static str,
    pub no_dead_letters: &'static str,
    pub letter_at: &'static str,
    pub letter_stage: &'static str,
    pub letter_preview: &'static str,
    pub dry_run_title: &'static str,
    pub dry_run_event: &'static str,
    pub dry_run: &'static str,
    pub dry_run_done: &'static str,
    pub dry_run_failed: &'static str,
    pub dry_run_outcome: &'static str,
    pub rule_action: &'static str,
    pub rule_description: &'static str,
    pub rule_triage: &'static str,
    pub rule_suppress: &'static str,
    pub admin_communities: &'static str,
    pub trail_at: &'static str,
    pub trail_role: &'static str,
    pub trail_action: &'static str,
    pub trail_target: &'static str,
    pub trail_outcome: &'static str,
    pub trail_source: &'static str,
    pub trail_empty: &'static str,
    pub trail_csv: &'static str,
    pub replay_rules_title: &'static str,
    pub replay_rules_hint: &'static str,
    pub no_versions: &'static str,
    pub replay_candidate: &'static str,
    pub replay_rules: &'static str,
    pub replay_rules_done: &'static str,
    pub replay_rules_failed: &'static str,
    pub replay_source_id: &'static str,
    pub replay_changed: &'static str,
    pub replay_before: &'static str,
    pub replay_after: &'static str,
    pub replay_to: &'static str,
    pub replay_rule_test: &'static str,
    pub activate_message: &'static str,
    pub activate_version: &'static str,
    pub activate_confirm: &'static str,
    pub version_activated_hint: &'static str,
    pub open_tasks: &'static str,
    pub open_tasks_keep: &'static str,
    pub open_tasks_reroute: &'static str,
    pub version_not_activated: &'static str,
    pub replay_show_test: &'static str,
    pub member_units: &'static str,
    pub admission_by_department: &'static str,
    pub admission_all: &'static str,
    pub admission_none: &'static str,
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

    nav_label: "主导航",
    count_unit: "件",
    name: "名称",
    page_failed: "页面生成失败",
    no_such_task: "没有这个工单，或不在您的管辖范围内。",
    request_invalid: "请求有误。",
    store_unavailable_refresh: "数据库暂时不可用，请稍后刷新。",
    store_unavailable_retry: "数据库暂时不可用，请稍后重试。",
    out_of_scope: "超出管辖范围",

    sign_in_again: "请重新登录",
    form_expired: "表单已过期，请刷新页面后重试",

    within_2h: "2小时内",
    within_1d: "1天内",
    within_3d: "3天内",
    within_7d: "7天内",
    bulk_choose_unit: "请选择承办单位。",
    bulk_unknown_action: "批量操作只有签收和派遣。",
    bulk_none_chosen: "请先勾选工单。",
    bulk_no_such_task: "没有这个工单",
    bulk_unit_elsewhere: "该单位不在工单所在社区或街道",
    bulk_already_dispatched: "已派遣，无需再派",

    finished_on_time: "按时完成",
    finished_late: "超时完成",
    stage_done: "完成的阶段",
    extension_granted: "批准延长",
    extension_as_requested: "按申请",
    escalate_to: "督办至",
    this_action: "此操作",
    form_too_long: "内容过长",
    triaged_above: "派遣：没有社区承接，由上级分派（属地兜底）",
    admitted: "准入：社区已准入此类事项",
    not_admitted: "准入：社区未准入此类事项",

    joint_co_unit: ["协办单位一", "协办单位二", "协办单位三"],
    joint_co_part: ["协办单位一的分工", "协办单位二的分工", "协办单位三的分工"],
    joint_no_part_limit: "不限",
    joint_role_lead: "牵头",
    joint_role_co_handler: "协办",
    joint_untimed: "不限时",
    joint_awaiting_report_in: "待报到",
    joint_no_lead: "请选择牵头单位。",
    joint_no_lead_part: "请填写牵头单位的分工。",
    joint_no_co_handlers: "联席会议至少要召集一个协办单位。",
    joint_unit_twice: "同一单位只能承担一项分工，请勿重复选择。",

    history_filed: "立案",
    actor_router: "系统（路由引擎）",
    actor_sla_tracker: "系统（时限监控）",

    map_band_ok: "未超时",
    map_band_warn: "即将超时",
    map_band_late: "已超时",
    map_band_none: "无时限",

    by_community: "按社区",
    by_street: "按街道",
    by_unit: "按承办单位",
    figures_rank: "排名",
    figures_received: "受理",
    figures_avg_sign_for: "平均签收（分钟）",
    figures_avg_handling: "平均处置（分钟）",
    rate_on_time_closing: "按期结案率",
    rate_closing: "结案率",
    rate_filing: "立案率",
    rate_response: "响应率",
    rate_resolution: "解决率",
    rate_satisfaction: "满意率",
    rate_rework: "返工率",
    rate_extension: "延期率",

    admin_only: "此页面仅限管理员使用。",
    admin_connectors: "数据接入（连接器）",
    no_connectors: "本进程未运行连接器。",
    connector_kind: "类型",
    connector_last_success: "最近成功",
    connector_received: "接收",
    connector_produced: "投递",
    connector_dead_lettered: "死信",
    connector_lag: "延迟",
    connector_last_error: "最近错误",
    connector_healthy: "正常",
    connector_retrying: "重试中",
    connector_failing: "故障",
    connector_starting: "启动中",
    connector_stopped: "未运行",
    all_sources: "全部来源",
    replay: "按现行映射重放",
    replay_failed: "重放失败",
    no_dead_letters: "没有死信。",
    letter_at: "时间",
    letter_stage: "环节",
    letter_preview: "原始内容（已脱敏）",
    dry_run_title: "路由试运行",
    dry_run_event: "事件（JSON，字段见 schemas/civic_event.avsc）",
    dry_run: "试运行",
    dry_run_done: "试运行结果（未写入任何数据）",
    dry_run_failed: "无法路由",
    dry_run_outcome: "结果",
    rule_action: "处理",
    rule_description: "说明",
    rule_triage: "属地兜底（街道/区分派）",
    rule_suppress: "不立案（抑制）",
    admin_communities: "社区与 1+2+X 成员单位、准入清单",
    trail_at: "时间",
    trail_role: "角色",
    trail_action: "操作",
    trail_target: "对象",
    trail_outcome: "结果",
    trail_source: "来源地址",
    trail_empty: "暂无操作记录",
    trail_csv: "导出全部操作记录（CSV）",
    replay_rules_title: "规则回放（试算）",
    replay_rules_hint: "用一个已保存的规则版本重新分派所选时段收到的事件，与实际分派结果逐件比较；不改动任何数据。",
    no_versions: "尚未发布过规则版本（routing.source = \"store\" 时由 hub rules publish 发布）",
    replay_candidate: "候选版本",
    replay_rules: "回放",
    replay_rules_done: "回放结果（未写入任何数据）",
    replay_rules_failed: "无法回放",
    replay_source_id: "来源编号",
    replay_changed: "变化",
    replay_before: "实际",
    replay_after: "按候选版本",
    replay_to: "截止日期（含）",
    replay_rule_test: "规则测试",
    activate_message: "启用说明",
    activate_version: "启用此版本",
    activate_confirm: "确定启用所选规则版本？各进程将在数秒内按它分派新事件。",
    version_activated_hint: "已通过校验和规则测试；各 hub 进程将在数秒内按此版本分派新事件。",
    open_tasks: "在办任务",
    open_tasks_keep: "仅新事件按此版本分派",
    open_tasks_reroute: "同时改派尚未签收的任务",
    version_not_activated: "未启用",
    replay_show_test: "存为规则测试（复制到候选版本的 rules/tests/）",
    member_units: "成员单位",
    admission_by_department: "准入（按部门）",
    admission_all: "全部",
    admission_none: "不准入",
};

// ------------------------------------------------------------------------------ shared

// Chinese typography, so that sentences put together from labels read right in another
// language's catalogue too.

/// `规则：R1`: a label and what it says.
pub fn labelled(label: &str, text: &str) -> String {
    format!("{label}：{text}")
}

/// `梧桐社区工作站（workstation）`: a name with a word about it.
pub fn with_aside(text: &str, aside: &str) -> String {
    format!("{text}（{aside}）")
}

/// `甲、乙、丙`: names in a row.
pub fn listed<S: AsRef<str>>(items: &[S]) -> String {
    join(items, "、")
}

/// `甲；乙`: statements in a row.
pub fn clauses<S: AsRef<str>>(items: &[S]) -> String {
    join(items, "；")
}

fn join<S: AsRef<str>>(items: &[S], separator: &str) -> String {
    items
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(separator)
}

/// A request the API refused, with its own words.
pub fn request_invalid_because(message: &str) -> String {
    format!("请求有误：{message}")
}

// ------------------------------------------------------------------------------ queue

// The queue's filters, when a value in the address is not one the console offers.

pub fn unknown_status(value: &str) -> String {
    format!("未知的状态：{value}")
}

pub fn bad_due_within(value: &str) -> String {
    format!("到期时间有误：{value}")
}

pub fn unknown_department(value: &str) -> String {
    format!("未知的部门：{value}")
}

pub fn unknown_category(value: &str) -> String {
    format!("未知的类别：{value}")
}

pub fn unknown_unit(value: &str) -> String {
    format!("未知的单位：{value}")
}

pub fn unknown_grid(value: &str) -> String {
    format!("未知的网格：{value}")
}

// Bulk actions: `verb` is the action's word (签收, 派遣), `task` a task's short id.

/// Why one chosen task was left out.
pub fn bulk_refusal(task: &str, why: &str) -> String {
    format!("{task}：{why}")
}

pub fn bulk_not_now(verb: &str) -> String {
    format!("当前状态不能{verb}")
}

pub fn bulk_not_allowed(verb: &str) -> String {
    format!("无权{verb}")
}

pub fn bulk_done(verb: &str, done: usize) -> String {
    format!("已{verb} {done} 件。")
}

/// Done for some, and why not for the others.
pub fn bulk_done_in_part<S: AsRef<str>>(verb: &str, done: usize, refusals: &[S]) -> String {
    format!(
        "已{verb} {done} 件；未{verb} {} 件（{}）。",
        refusals.len(),
        clauses(refusals)
    )
}

// ------------------------------------------------------------------------------ task page

// A clock's countdown; `working_time` when its limit is counted in working days or hours.

fn in_working_time(working_time: bool) -> &'static str {
    if working_time {
        "（工作时间）"
    } else {
        ""
    }
}

pub fn time_left(left_ms: i64, working_time: bool) -> String {
    format!("剩余 {}{}", span(left_ms), in_working_time(working_time))
}

pub fn almost_overdue(left_ms: i64, working_time: bool) -> String {
    format!(
        "即将超时，剩余 {}{}",
        span(left_ms),
        in_working_time(working_time)
    )
}

pub fn overdue_by(overdue_ms: i64) -> String {
    format!("已超时 {}", span(overdue_ms))
}

pub fn paused_time_left(left_ms: i64) -> String {
    format!("已暂停，剩余 {}", span(left_ms))
}

/// A limit of `days` working days, as the forms offer it.
pub fn working_days(days: u32) -> String {
    format!("{days}个工作日")
}

// The answer to an action form.

/// Done, and what it led to (the new status, or what was done).
pub fn action_done(what: &str) -> String {
    labelled(ZH.done, what)
}

pub fn action_refused(why: &str) -> String {
    labelled(ZH.refused, why)
}

/// `action`: the action's word, or [`Labels::this_action`].
pub fn not_allowed_to(action: &str) -> String {
    format!("您的账号无权办理“{action}”。")
}

/// A form changed by hand: the API's own words in brackets.
pub fn form_invalid_because(said: &str) -> String {
    with_aside(ZH.form_invalid, said)
}

pub fn version_not_a_number(value: &str) -> String {
    format!("版本号“{value}”不是数字。")
}

pub fn unknown_form_field(name: &str) -> String {
    format!("表单中有未知的字段“{name}”。")
}

// Where and why a task went where it went (派遣依据); `area` is the matched area's name.

pub fn placed_by_point(lon: f64, lat: f64, area: &str) -> String {
    format!("位置：按上报坐标（{lon:.5}, {lat:.5}）落在{area}")
}

pub fn placed_in(area: &str) -> String {
    labelled(ZH.place, area)
}

pub fn placed_by_grid_code(grid_code: &str, area: &str) -> String {
    format!("位置：按网格编码 {grid_code} 定位到{area}")
}

pub fn placed_by_address(address: &str, area: &str) -> String {
    format!("位置：按地址“{address}”在地名库中定位到{area}")
}

pub fn unplaced(area: &str) -> String {
    format!("位置：上报信息中没有可用的位置（{area}）")
}

/// The department's category code (with its own name, when it sent one) and the
/// taxonomy's category it maps to.
pub fn category_matched(
    department: &str,
    code: &str,
    own_name: Option<&str>,
    taxonomy_code: &str,
    taxonomy_name: &str,
) -> String {
    let own = own_name.map(|n| format!("（{n}）")).unwrap_or_default();
    format!("类别：{department}代码 {code}{own} 对应 {taxonomy_code} {taxonomy_name}")
}

/// No community took the task: the desk that assigns it.
pub fn triaged_by(desk: &str) -> String {
    format!("派遣：没有社区承接，由{desk}分派（属地兜底）")
}

pub fn lead_with_role(name: &str, role: &str) -> String {
    format!("主办：{}", with_aside(name, role))
}

/// `co_handlers`: each with its role.
pub fn co_handlers_with_roles<S: AsRef<str>>(co_handlers: &[S]) -> String {
    format!("协办：{}", listed(co_handlers))
}

// ------------------------------------------------------------------------------ joint meeting

// The convene form's co-handler rows are counted from 1.

pub fn joint_co_part_without_unit(row: usize) -> String {
    format!("第{row}个协办单位填写了分工，但没有选择单位。")
}

pub fn joint_co_unit_without_part(row: usize) -> String {
    format!("请填写第{row}个协办单位的分工。")
}

// A unit's report-in or part against its deadline; times as the page writes them.

pub fn part_done_at(at: &str) -> String {
    format!("{at} 完成")
}

pub fn part_done_late(at: &str) -> String {
    format!("{at} 完成（超时）")
}

pub fn overdue_since(due: &str) -> String {
    format!("已超时（时限 {due}）")
}

pub fn due_by(due: &str) -> String {
    format!("时限 {due}")
}

// ------------------------------------------------------------------------------ history

/// The router's first entry: where the report came from and where it is.
pub fn history_filed_from(
    department: &str,
    source_system: &str,
    source_id: &str,
    area: &str,
    lead_found: bool,
) -> String {
    let mut n = format!("来自{department} {source_system} 记录 {source_id}，位置：{area}");
    if !lead_found {
        n.push_str("；未匹配到主办单位，待分派");
    }
    n
}

/// The router's second entry: the lead unit and the co-handlers it sent the task to.
pub fn history_dispatched_to<S: AsRef<str>>(lead: &str, co_handlers: &[S]) -> String {
    let mut n = format!("派遣至主办单位 {lead}");
    if !co_handlers.is_empty() {
        n.push_str(&format!("；协办：{}", listed(co_handlers)));
    }
    n
}

// ------------------------------------------------------------------------------ administration

/// A connector's lag behind its source.
pub fn lag_seconds(seconds: f64) -> String {
    format!("{seconds:.0} 秒")
}

pub fn dead_letters_heading(shown: usize) -> String {
    format!("死信（最近 {shown} 条）")
}

/// A stored version in the replay form: `r-… · 王科长 · 12-01 10:00 · 说明（当前版本）`.
pub fn version_choice(
    version: &str,
    author: &str,
    at: &str,
    message: &str,
    active: bool,
) -> String {
    let mut s = format!("{version} · {author} · {at} · {message}");
    if active {
        s.push_str("（当前版本）");
    }
    s
}

/// What a replay changes about an event, in words.
pub fn replay_change(what: &str) -> &str {
    match what {
        "outcome" => "处理方式",
        "community" => "所属社区",
        "lead" => "主办单位",
        "co_handlers" => "协办单位",
        "priority" => "紧急程度",
        "sla_policy" => "时限标准",
        "deadlines" => "办理期限",
        other => other,
    }
}

/// One side of a moved event: `派遣 梧桐社区警务室，协办：梧桐社区居委会，期限 12-11 10:05`.
pub fn replay_side(kind: &str, lead: Option<&str>, co: &[String], due: Option<&str>) -> String {
    let how = match kind {
        "dispatch" => "派遣",
        "triage" => "待分派",
        "returned" => "退回部门",
        "suppressed" => "不立案",
        _ => "无法分类",
    };
    let mut s = how.to_owned();
    if let Some(lead) = lead {
        s.push(' ');
        s.push_str(lead);
    }
    if !co.is_empty() {
        s.push_str(&format!("，协办：{}", co.join("、")));
    }
    if let Some(due) = due {
        s.push_str(&format!("，期限 {due}"));
    }
    s
}

pub fn version_activated(version: &str) -> String {
    format!("已启用规则版本 {version}")
}

pub fn reroute_summary(
    considered: usize,
    rerouted: usize,
    unchanged: usize,
    left: usize,
) -> String {
    format!(
        "尚未签收的在办任务 {considered} 件：按新版本改派 {rerouted} 件，分派不变 {unchanged} 件，保持原状 {left} 件"
    )
}

/// One re-routed task: the lead unit before and after, and the co-handlers when they changed.
pub fn rerouted_line(
    task: &str,
    (from, to): (&str, &str),
    (co_from, co_to): (&[String], &[String]),
) -> String {
    let units = |u: &[String]| {
        if u.is_empty() {
            "无".to_owned()
        } else {
            u.join("、")
        }
    };
    let lead = if from == to {
        format!("主办 {to}（不变）")
    } else {
        format!("主办 {from} → {to}")
    };
    let co = if co_from == co_to {
        String::new()
    } else {
        format!("；协办 {} → {}", units(co_from), units(co_to))
    };
    format!("{task}：{lead}{co}")
}

pub fn left_line(task: &str, why: &str) -> String {
    format!("{task}：{why}")
}

pub fn replay_summary(events: u64, moved: u64, candidate: &str) -> String {
    format!("按 {candidate} 回放 {events} 件事件，其中 {moved} 件的分派或期限会变化")
}

pub fn replay_on_time(unit: &str, before: (u64, u64), after: (u64, u64)) -> String {
    format!(
        "{unit}：按时办结 {}/{} 件 → {}/{} 件（按实际办结时间、各版本的期限计）",
        before.0, before.1, after.0, after.1
    )
}

pub fn replay_load(unit: &str, before: u64, after: u64) -> String {
    format!("{unit}：主办 {before} 件 → {after} 件")
}

pub fn trail_heading(shown: usize) -> String {
    format!("操作记录（最近 {shown} 条）")
}

pub fn trail_unreadable(error: &str) -> String {
    format!("操作记录暂时无法读取：{error}")
}

/// An account's role, as the trail shows it.
pub fn role(role: &str) -> &str {
    match role {
        "administrator" => "管理员",
        "street" => "街道",
        "community" => "社区",
        "department" => "部门",
        "" => "—",
        other => other,
    }
}

/// What the trail records as done, in words: `签收` for `task.sign_for`; a route stays as
/// it is.
pub fn trail_action(action: &str) -> String {
    if let Some(kind) = action
        .strip_prefix("task.")
        .and_then(|a| ActionKind::ALL.into_iter().find(|k| k.as_str() == a))
    {
        return self::action(kind).to_owned();
    }
    match action {
        "sign_in" => "登录".to_owned(),
        "sign_in_refused" => "登录失败".to_owned(),
        "sign_out" => "退出".to_owned(),
        "dead_letters.replay" => "重放死信".to_owned(),
        "dead_letters.replay_dry_run" => "重放死信（试运行）".to_owned(),
        "rules.replay" => "规则回放".to_owned(),
        "rules.activate" => "启用规则版本".to_owned(),
        other => other.to_owned(),
    }
}

/// How the hub answered: 完成, or 未通过 with its status.
pub fn trail_outcome(status: u16) -> String {
    if (200..400).contains(&status) {
        "完成".to_owned()
    } else {
        format!("未通过（{status}）")
    }
}

pub fn dead_letters_unreadable(error: &str) -> String {
    format!("死信队列暂时无法读取：{error}")
}

pub fn rules_heading(version: &str) -> String {
    format!("路由规则（版本 {version}，按顺序匹配）")
}

/// A dispatching rule's roles; `co_handlers` empty when it calls none.
pub fn rule_dispatch(lead: &str, co_handlers: &str) -> String {
    if co_handlers.is_empty() {
        format!("派遣 → {lead}")
    } else {
        format!("派遣 → {lead}；协办 {co_handlers}")
    }
}

/// What a dry-run's decision (`outcome`, as the API writes it) would do.
pub fn route_outcome(outcome: &str) -> Option<&'static str> {
    Some(match outcome {
        "dispatch" => "派遣",
        "triage" => "属地兜底（待分派）",
        "return_to_department" => "退回部门（社区未准入）",
        "suppress" => "不立案（规则抑制）",
        _ => return None,
    })
}

/// `source`: the one replayed, or none for all.
pub fn replay_done(source: Option<&str>) -> String {
    labelled("重放完成", source.unwrap_or(ZH.all_sources))
}

/// What a replay did with the records it read.
pub fn replay_report(
    examined: usize,
    produced: usize,
    still_failing: usize,
    skipped: usize,
    not_replayable: usize,
) -> Vec<String> {
    vec![
        format!("检查 {examined} 条"),
        format!("重新投递 {produced} 条"),
        format!("仍不符合映射 {still_failing} 条"),
        format!("无需处理 {skipped} 条"),
        format!("不可重放（非映射错误）{not_replayable} 条"),
    ]
}

// ------------------------------------------------------------------------------ the workflow's words

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
        ActionKind::Reroute => "按新规则改派",
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
        // Under a minute the seconds tell (a drill's or the demo's short limits).
        (0, 0) if m == 0 => format!("{}秒", ms.max(0) / 1000),
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
        assert_eq!(span(-5), "0秒");
        assert_eq!(span(42_500), "42秒");
    }

    #[test]
    fn sentences_put_their_particulars_in_place() {
        assert_eq!(
            bulk_done_in_part("签收", 2, &["t-1：当前状态不能签收", "t-2：无权签收"]),
            "已签收 2 件；未签收 2 件（t-1：当前状态不能签收；t-2：无权签收）。"
        );
        assert_eq!(rule_dispatch("workstation", ""), "派遣 → workstation");
        assert_eq!(
            rule_dispatch("workstation", "police_station"),
            "派遣 → workstation；协办 police_station"
        );
        assert_eq!(
            history_dispatched_to("甲", &["乙", "丙"]),
            "派遣至主办单位 甲；协办：乙、丙"
        );
        assert!(history_filed_from("环卫", "s", "1", "梧桐社区", false).ends_with("待分派"));
        assert_eq!(working_days(3), "3个工作日");
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
