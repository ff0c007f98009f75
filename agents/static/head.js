// The head dashboard: one department live (waiting, agents, today's figures, A/B posts,
// incidents, overdue work, alarms), lost calls with filters and CSV, and the head's actions:
// override a refused pause or log-out, reassign a task or case with a reason, the daily report.
import { api, whoami, el, text, replace, clock, when, day, hms, toast, describe, Live, shortcut,
         setupChrome, everySecond, leave } from "./common.js";
import { Notes } from "./notes.js";
import { renderWork } from "./work.js";

const LABELS = { logged_out: "未签入", available: "就绪", paused: "暂停", ringing: "振铃",
                 on_call: "通话中", wrap_up: "话后处理" };
const POST_STATES = { a_on: "A岗在岗", b_covers: "B岗顶岗", gap: "缺岗", closed: "非工作时间" };
const LOST_REASONS = { abandoned: "排队放弃", ivr_abandoned: "IVR挂机", timed_out: "排队超时", no_agent: "无人值守", after_hours: "非工作时间" };

const me = await whoami();
if (!me) await leave("/login?next=/head");
if (me.role !== "head" && me.role !== "office") await leave(me.role === "agent" ? "/agent" : "/login");
setupChrome(me);

const state = {
  options: {}, boards: new Map(), received: new Map(), department: null,
  pendingReassign: null, pendingOverride: null,
};
const notes = new Notes(null);
const select = document.getElementById("department");

function deptName(id) { return (state.options.departments || []).find((d) => d.id === id)?.name || id; }
function pct(rate) { return rate === null || rate === undefined ? "—" : `${(rate * 100).toFixed(1)}%`; }

// ---- the dashboard ----------------------------------------------------------------------

function setBoard(board) {
  if (!board || !board.department) return;
  state.boards.set(board.department, board);
  state.received.set(board.department, performance.now());
  if (![...select.options].some((o) => o.value === board.department)) {
    select.append(el("option", { value: board.department, text: board.name || deptName(board.department) }));
  }
  if (!state.department) { state.department = board.department; select.value = board.department; departmentChanged(); }
  if (board.department === state.department) renderBoard();
}

function renderBoard() {
  const b = state.boards.get(state.department);
  if (!b) return;
  const waiting = b.waiting || {};
  text("kpi-waiting", waiting.count ?? 0);
  text("kpi-longest", waiting.longest_seconds === null || waiting.longest_seconds === undefined ? "—" : clock(waiting.longest_seconds));
  const t = b.today || {};
  text("kpi-connect", pct(t.connect_rate));
  const sl = (t.service_level || [])[0];
  text("kpi-service", sl ? pct(sl.rate) : "—");
  if (sl) text("kpi-service-label", `服务水平（${sl.seconds}秒）`);
  text("kpi-abandoned", t.abandoned ?? 0);
  text("kpi-offered", t.offered ?? 0);
  document.getElementById("updated").textContent = `最后更新 ${b.as_of ? hms(new Date(b.as_of)) : hms()}`;
  renderAlarms(b.alarms || []);
  const overdue = b.overdue || {};
  const late = document.getElementById("overdue-counts");
  late.textContent = `超期任务 ${overdue.tasks ?? 0} · 超期案件 ${overdue.cases ?? 0}`;
  late.className = overdue.tasks || overdue.cases ? "overdue-mark" : "muted-strong";
  renderAgents(b.agents || []);
  renderPosts((b.coverage || {}).posts || []);
  // the lists (work, incidents, lost calls) are re-read when the counts or the posts' states change
  const posts = ((b.coverage || {}).posts || []).map((p) => p.state).join(",");
  const counts = `${(b.overdue || {}).tasks ?? 0}/${(b.overdue || {}).cases ?? 0}/${(b.coverage || {}).open_incidents ?? 0}/${posts}/${t.offered ?? 0}`;
  if (state.lastCounts !== counts) { state.lastCounts = counts; loadLists(); }
}

function renderAlarms(alarms) {
  const box = document.getElementById("alarms");
  replace(box, el("h2", { id: "alarms-title", class: "sr-only", text: "告警" }),
    alarms.map((a) => el("div", { class: "alarm", dataset: { kind: a.kind }, text: `⚠ ${a.text || a.kind}` })));
}

function agentSeconds(row) {
  const at = state.received.get(state.department) || performance.now();
  return (row.seconds_in_state || 0) + (performance.now() - at) / 1000;
}

function renderAgents(rows) {
  const body = document.getElementById("agents");
  if (!rows.length) { replace(body, el("tr", {}, el("td", { colspan: 5, class: "empty", text: "本部门没有岗位坐席" }))); return; }
  replace(body, rows.map((r) => {
    const reason = r.state === "paused" ? (r.reason || "") : r.pending ? `待${r.pending === "logout" ? "签出" : "暂停"}${r.pending_reason ? "（" + r.pending_reason + "）" : ""}` : "";
    const canOverride = r.state !== "logged_out";
    return el("tr", { class: r.over_max ? "alarm-row" : "", dataset: { agent: r.agent } },
      el("td", { text: `${r.name || r.agent}（${r.agent}）` }),
      el("td", {}, el("span", { class: `tag ${r.state === "available" ? "tag-ok" : r.state === "paused" ? "tag-warn" : ""}`, text: LABELS[r.state] || r.state })),
      el("td", {}, reason, r.over_max ? el("strong", { class: "overdue-mark", text: " 超时" }) : null),
      el("td", { class: "elapsed", dataset: { seconds: String(r.seconds_in_state || 0) }, text: r.state === "logged_out" ? "—" : clock(agentSeconds(r)) }),
      el("td", {}, canOverride ? el("button", { type: "button", class: "small", text: "批准暂停/签出",
        "aria-label": `批准 ${r.name || r.agent} 暂停或签出`, onclick: () => openOverride(r) }) : null));
  }));
}

function tickAgents() {
  const b = state.boards.get(state.department);
  if (!b) return;
  for (const cell of document.querySelectorAll("#agents td.elapsed")) {
    const row = (b.agents || []).find((r) => r.agent === cell.parentElement.dataset.agent);
    if (row && row.state !== "logged_out") cell.textContent = clock(agentSeconds(row));
  }
}

function renderPosts(posts) {
  const box = document.getElementById("posts");
  if (!posts.length) { replace(box, el("p", { class: "empty", text: "—" })); return; }
  replace(box, posts.map((p) => el("div", { class: "post", dataset: { post: p.post } },
    el("strong", { text: `岗位 ${p.post}${p.pbx && (state.options.pbxes || []).length > 1 ? " @" + p.pbx : ""}` }), " ",
    el("span", { class: p.state === "gap" ? "tag tag-bad" : p.state === "b_covers" ? "tag tag-warn" : "tag tag-ok", text: POST_STATES[p.state] || p.state }),
    seat("A", p.a), seat("B", p.b))));
}

function seat(label, s) {
  if (!s) return null;
  const what = s.available ? "可接听" : !s.logged_in ? "未签入" : s.paused ? "暂停" : "不可接听";
  return el("div", { class: "seat" }, el("span", { text: `${label}岗 ${s.name || s.agent}` }),
    el("span", { class: s.available ? "tag tag-ok" : "tag tag-warn", text: what }));
}

// ---- lists: overdue and open work, incidents, lost calls ---------------------------------

async function loadLists() {
  const d = state.department;
  if (!d) return;
  const q = `department=${encodeURIComponent(d)}`;
  const [tasks, cases, incidents] = await Promise.all([
    api("GET", `/api/tasks?${q}&status=open&limit=200`).catch(() => ({ tasks: [] })),
    api("GET", `/api/cases?${q}&status=open&limit=200`).catch(() => ({ cases: [] })),
    api("GET", `/api/coverage/incidents?${q}`).catch(() => ({ incidents: [] })),
  ]);
  if (d !== state.department) return;
  const overdueFirst = (a, b) => (b.overdue ? 1 : 0) - (a.overdue ? 1 : 0);
  renderWork(document.getElementById("overdue"), cases.cases.sort(overdueFirst), tasks.tasks.sort(overdueFirst),
    { owner: true, columns: 5, reassign: openReassign });
  const list = document.getElementById("incidents");
  const items = incidents.incidents || [];
  replace(list, items.length ? items.map((i) => el("li", { class: i.closed_at ? "" : "alarm-text",
    text: `岗位 ${i.post}：${when(i.opened_at)} 起${i.closed_at ? "，" + when(i.closed_at) + " 恢复" : "，仍缺岗"}` }))
    : el("li", { class: "empty", text: "今日无缺岗" }));
  loadLost();
}

function lostQuery() {
  const params = new URLSearchParams({ department: state.department });
  const date = document.getElementById("lost-date").value;
  if (date) params.set("date", date);
  const reason = document.getElementById("lost-reason").value;
  if (reason) params.set("reason", reason);
  return params;
}

async function loadLost() {
  const params = lostQuery();
  document.getElementById("lost-csv").href = `/api/lost-calls.csv?${params}`;
  const body = document.getElementById("lost");
  let data;
  try { data = await api("GET", `/api/lost-calls?${params}`); } catch (err) {
    replace(body, el("tr", {}, el("td", { colspan: 6, class: "empty", text: describe(err) }))); return;
  }
  let rows = data.lost_calls || [];
  if (document.getElementById("lost-overdue").checked) rows = rows.filter((r) => r.task && r.task.overdue);
  if (!rows.length) { replace(body, el("tr", {}, el("td", { colspan: 6, class: "empty", text: "没有未处理的漏接来电" }))); return; }
  replace(body, rows.map((r) => el("tr", { class: r.task && r.task.overdue ? "overdue" : "" },
    el("td", { text: when(r.started_at) }),
    el("td", {}, r.caller_num || "未显示", r.caller_name && r.caller_name !== r.caller_num ? el("div", { class: "muted-strong", text: r.caller_name }) : null),
    el("td", { text: (LOST_REASONS[r.reason] || r.reason) + (r.short_abandon ? "（短放弃）" : "") }),
    el("td", { text: r.task ? `#${r.task.id}${r.task.attempts ? " · 已回拨" + r.task.attempts + "次" : ""}` : (r.skipped === "short_abandon" ? "短放弃不回访" : r.skipped ? "无法回访" : "待生成") }),
    el("td", { text: r.task ? (r.task.assignee_name || r.task.assignee || "部门池") : "—" }),
    el("td", {}, r.task ? when(r.task.deadline) : "—", r.task && r.task.overdue ? el("span", { class: "overdue-mark", text: " 超期" }) : null))));
}

document.getElementById("lost-filters").addEventListener("submit", (event) => { event.preventDefault(); loadLost(); });

// ---- actions ----------------------------------------------------------------------------

const overrideDialog = document.getElementById("override");
const reassignDialog = document.getElementById("reassign");
for (const button of document.querySelectorAll("dialog [data-close]")) button.addEventListener("click", () => button.closest("dialog").close());

function openOverride(row) {
  state.pendingOverride = row;
  document.getElementById("override-title").textContent = `批准 ${row.name || row.agent} 暂停/签出`;
  document.getElementById("override-refusal").textContent =
    "AB岗保障会拒绝让岗位无人接听的暂停或签出；批准后即执行，由您负责，批准人和理由记入审计。";
  document.getElementById("override-error").textContent = "";
  document.getElementById("override-reason").value = "";
  overrideDialog.showModal();
}

document.getElementById("override-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const row = state.pendingOverride;
  const reason = document.getElementById("override-reason").value.trim();
  const error = document.getElementById("override-error");
  if (!reason) { error.textContent = "请填写批准理由"; return; }
  const action = document.getElementById("override-action").value;
  const body = { override: { reason } };
  if (action === "pause") body.reason = document.getElementById("override-pause").value;
  try {
    const done = await api("POST", `/api/agents/${encodeURIComponent(row.agent)}/${action}`, body);
    overrideDialog.close();
    toast(`已批准：${row.name || row.agent} ${action === "pause" ? "暂停" : "签出"}${done.overridden ? "（已越过AB岗保障）" : ""}${done.deferred ? "，通话结束后生效" : ""}`);
  } catch (err) { error.textContent = describe(err); }
});

function openReassign(r) {
  state.pendingReassign = r;
  const it = r.item;
  document.getElementById("reassign-title").textContent = `改派${r.label} #${it.id}`;
  const current = r.kind === "task" ? it.assignee : it.owner;
  document.getElementById("reassign-what").textContent =
    `来电人 ${it.caller_num || "—"} · 现负责人 ${(r.kind === "task" ? it.assignee_name : it.owner_name) || current || "部门池"}`;
  const dept = (state.options.departments || []).find((d) => d.id === it.department);
  const agents = dept ? dept.agents : state.options.agents || [];
  replace(document.getElementById("reassign-to"),
    r.kind === "task" ? el("option", { value: "", text: "部门待办池" }) : null,
    agents.filter((a) => a.agent !== current).map((a) => el("option", { value: a.agent, text: `${a.name}（${a.agent}）` })));
  document.getElementById("reassign-reason").value = "";
  document.getElementById("reassign-error").textContent = "";
  reassignDialog.showModal();
}

document.getElementById("reassign-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const r = state.pendingReassign;
  const to = document.getElementById("reassign-to").value || null;
  const reason = document.getElementById("reassign-reason").value.trim();
  const error = document.getElementById("reassign-error");
  if (!reason) { error.textContent = "请填写改派原因"; return; }
  if (r.kind === "case" && !to) { error.textContent = "请选择新的负责人"; return; }
  const body = r.kind === "task" ? { assignee: to, reason } : { owner: to, reason };
  try {
    await api("PATCH", `/api/${r.kind === "task" ? "tasks" : "cases"}/${r.item.id}`, body);
    reassignDialog.close();
    toast(`${r.label} #${r.item.id} 已改派`);
    loadLists();
  } catch (err) { error.textContent = describe(err); }
});

function departmentChanged() {
  state.department = select.value;
  const today = state.options.today || day();
  document.getElementById("daily-report").href =
    `/api/reports/daily?format=html&department=${encodeURIComponent(state.department)}&date=${today}`;
  state.lastCounts = null;
  renderBoard();
  loadLists();
}
select.addEventListener("change", departmentChanged);

// ---- start ------------------------------------------------------------------------------

shortcut("Alt+A", "确认最早的一条通知", () => notes.ackFirst());
shortcut("Alt+L", "跳到漏接来电", () => document.getElementById("lost-title").scrollIntoView());
shortcut("Alt+D", "切换部门", () => select.focus());

try { state.options = await api("GET", "/api/panel/options"); } catch (err) { state.options = {}; }
replace(document.getElementById("override-pause"), (state.options.pause_reasons || [{ name: "小休" }]).map((r) => el("option", { value: r.name, text: r.name })));
document.getElementById("lost-date").value = state.options.today || day();
try {
  const data = await api("GET", "/api/panel/dashboard");
  for (const b of data.dashboards || [data]) setBoard(b);
} catch (err) { toast(describe(err)); }

function onMessage(msg) {
  if (msg.type === "hello") {
    for (const b of msg.dashboards || []) setBoard(b);
    if (Array.isArray(msg.notifications)) notes.replaceAll(msg.notifications);
  } else if (msg.type === "dashboard") setBoard(msg);
  else if (msg.type === "notification") notes.add(msg.notification || msg);
}

notes.load();
const live = new Live(onMessage).start();
notes.bind(() => live);
everySecond(tickAgents);
