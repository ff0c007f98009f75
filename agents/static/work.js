// "My work" and the head's overdue list: cases and tasks in one table, by deadline, with the
// workdays left (from the server), overdue marked, and the row's action (回拨 or 改派).
import { api, el, replace, when, day, describe, toast } from "./common.js";

const REASONS = { abandoned: "放弃", ivr_abandoned: "IVR挂机", timed_out: "排队超时", no_agent: "无人值守",
                  after_hours: "非工作时间", ring_no_answer: "振铃未接", callback_request: "留言回拨",
                  dissatisfied: "不满意回访" };
const RESULTS = { pending: "正在呼叫…", answered: "已接通", no_answer: "未接通", busy: "占线", failed: "呼叫失败",
                  cancelled: "已取消", congestion: "线路忙" };

export function rows(cases, tasks) {
  const all = [
    ...cases.map((c) => ({ kind: "case", label: "案件", item: c })),
    ...tasks.map((t) => ({ kind: "task", label: "回访任务", item: t })),
  ];
  all.sort((a, b) => String(a.item.deadline || "9").localeCompare(String(b.item.deadline || "9")) || a.item.id - b.item.id);
  return all;
}

/** Workdays left to the deadline on the service's calendar (GET /api/panel/options: today and
 *  the workdays around it): today counts while it is not past; overdue: workdays since. */
export function workdaysLeft(item, calendar) {
  if (!item.deadline) return "—";
  const days = calendar && calendar.workdays;
  const today = calendar && calendar.today;
  if (!days || !today) return item.overdue ? "已超期" : "—";
  const due = day(item.deadline);
  if (item.overdue) return `超期 ${days.filter((d) => d > due && d <= today).length} 个工作日`;
  return String(days.filter((d) => d >= today && d <= due).length);
}

/** Fill a tbody; options.callback adds 回拨 to tasks, options.reassign(row) adds 改派. */
export function renderWork(tbody, cases, tasks, options = {}) {
  const list = rows(cases, tasks);
  if (!list.length) { replace(tbody, el("tr", {}, el("td", { colspan: options.columns || 7, class: "empty", text: "没有待办" }))); return; }
  replace(tbody, list.map((r) => {
    const it = r.item;
    const status = r.kind === "task" ? (REASONS[it.reason] || it.reason || "") + (it.misses > 1 ? ` · 未接 ${it.misses} 次` : "")
                                       + (it.rectify_deadline ? ` · 整改期限 ${when(it.rectify_deadline)}` : "")
                                       + (it.recording ? ` · 留言 ${it.recording}` : "")
                                     : (it.item || "") + (it.disposition ? "" : " 待填写处理结果");
    const cells = [
      el("td", { text: `${r.label} #${it.id}` }),
      el("td", { text: it.caller_num || "—" }),
    ];
    if (options.owner) cells.push(el("td", { text: (r.kind === "task" ? it.assignee_name || it.assignee : it.owner_name || it.owner) || "部门池" }));
    else cells.push(el("td", { text: it.department_name || it.department || "" }));
    cells.push(el("td", {}, when(it.deadline), it.overdue ? el("span", { class: "overdue-mark", text: " 超期" }) : null));
    if (!options.owner) cells.push(el("td", { text: workdaysLeft(it, options.calendar) }), el("td", { text: status.trim() || "—" }));
    const action = el("td", { class: "row-actions" });
    if (options.callback && r.kind === "task") action.append(callbackButton(it));
    if (options.reassign) action.append(el("button", { type: "button", class: "small", text: "改派",
      "aria-label": `改派${r.label} #${it.id}`, onclick: () => options.reassign(r) }));
    cells.push(action);
    return el("tr", { class: it.overdue ? "overdue" : "", dataset: { kind: r.kind, id: String(it.id) } }, cells);
  }));
}

function callbackButton(task) {
  const progress = el("span", { class: "progress", role: "status", "aria-live": "polite" });
  const button = el("button", { type: "button", class: "small primary", text: "回拨",
    "aria-label": `回拨 ${task.caller_num || ""}`, onclick: () => callback(task, button, progress) });
  const last = (task.callbacks || []).at?.(-1);
  if (last) progress.textContent = " " + describeAttempt(last);
  return el("span", {}, button, progress);
}

export function describeAttempt(a) {
  let s = RESULTS[a.result] || a.result || "";
  if (a.result === "answered" && a.talk_seconds !== null && a.talk_seconds !== undefined) s += `，通话 ${a.talk_seconds} 秒`;
  if (a.result === "pending") s = "正在呼叫：先接通您的话机，再拨打来电人…";
  return s;
}

async function callback(task, button, progress) {
  button.disabled = true;
  progress.textContent = " 正在发起回拨…";
  let attempt;
  try {
    attempt = await api("POST", `/api/tasks/${task.id}/callbacks`, {});
  } catch (err) {
    progress.textContent = " " + describe(err);
    button.disabled = false;
    return;
  }
  progress.textContent = " " + describeAttempt(attempt);
  const key = attempt.key;
  const started = Date.now();
  while (attempt.result === "pending" && Date.now() - started < 180000) {
    await new Promise((r) => setTimeout(r, 1000));
    try {
      const t = await api("GET", `/api/tasks/${task.id}`);
      attempt = (t.callbacks || []).find((c) => c.key === key) || attempt;
      progress.textContent = " " + describeAttempt(attempt) + (t.status === "closed" ? " · 任务已完成" : "");
    } catch (err) { /* keep polling */ }
  }
  button.disabled = false;
  if (attempt.result !== "pending") toast(`回拨 ${task.caller_num || ""}：${describeAttempt(attempt)}`);
}
