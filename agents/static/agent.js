// The agent panel: my state (from the server, never guessed here), the call ringing or in
// progress with the caller's history, the wrap-up form, my work, my posts, my notifications.
import { api, whoami, el, text, replace, clock, when, hms, toast, alertBox, describe, Live,
         shortcut, setupChrome, everySecond, leave, stop } from "./common.js";
import { Notes } from "./notes.js";
import { renderWork } from "./work.js";
import { callCard } from "./call.js";

const LABELS = { logged_out: "未签入", available: "就绪", paused: "暂停", ringing: "振铃",
                 on_call: "通话中", wrap_up: "话后处理" };
const DEFAULT_REASONS = [{ name: "小休" }, { name: "用餐" }, { name: "培训" }, { name: "会议" }];

const me = await whoami();
if (!me) await leave("/login?next=/agent");
if (!me.agent) await stop("此账号未绑定坐席工号，无法使用坐席工作台。");
setupChrome(me);

const model = {
  view: null,          // the AgentView dict as last received
  received: 0,         // performance.now() when it arrived
  serverNow: null,     // the server's time then (sent_at), for countdowns on the server's clock
  options: {},         // GET /api/panel/options: pause reasons, departments and items, workdays
  historyFor: null,    // the caller whose history is shown
  disposed: null,      // the call id whose wrap-up was saved
};

const notes = new Notes(null);
let live = null;
const { renderCall } = callCard(model, me, () => loadWork());

// ---- state ------------------------------------------------------------------------------

function setView(view, sentAt) {
  if (!view || typeof view !== "object") return;
  model.view = view;
  model.received = performance.now();
  model.serverNow = sentAt ? new Date(sentAt) : null;
  renderState();
  renderCall();
}

function elapsed() { return (performance.now() - model.received) / 1000; }

function secondsInState() {
  const v = model.view;
  if (!v) return 0;
  if (typeof v.seconds_in_state === "number") return v.seconds_in_state + elapsed();
  if (v.since && model.serverNow) return (model.serverNow - new Date(v.since)) / 1000 + elapsed();
  return elapsed();
}

function wrapupLeft() {
  const v = model.view;
  if (!v || !v.wrapup_until) return null;
  if (typeof v.wrapup_seconds_left === "number") return v.wrapup_seconds_left - elapsed();
  const now = model.serverNow ? model.serverNow.getTime() + elapsed() * 1000 : Date.now();
  return (new Date(v.wrapup_until).getTime() - now) / 1000;
}

function renderState() {
  const v = model.view || { state: "logged_out" };
  const badge = document.getElementById("state-badge");
  badge.className = `badge state-${v.state}` + (v.over_max ? " over-max" : "");
  text("state-label", LABELS[v.state] || v.state);
  tick();
  document.getElementById("state-pending").hidden = !v.pending;
  if (v.pending) document.getElementById("pending-text").textContent = v.pending === "logout" ? "通话结束后签出" :
    `通话结束后暂停${v.pending_reason ? "（" + v.pending_reason + "）" : ""}`;
  const overmax = document.getElementById("state-overmax");
  overmax.hidden = !v.over_max;
  if (v.over_max) overmax.textContent = "暂停已超过该原因的最长时间，负责人已收到提醒";
  const s = v.state;
  const busy = s === "ringing" || s === "on_call";
  enable("btn-login", s === "logged_out");
  enable("btn-ready", s === "paused" || s === "wrap_up");
  enable("btn-pause", (s === "available" || busy || s === "wrap_up") && v.pending !== "pause");
  enable("btn-logout", s !== "logged_out" && v.pending !== "logout");
  enable("btn-done", s === "wrap_up");
  enable("btn-extend", s === "wrap_up");
}

function enable(id, on) { const b = document.getElementById(id); if (b) b.disabled = !on; }

function tick() {
  const v = model.view;
  if (!v) { text("state-detail", ""); return; }
  let detail = "";
  if (v.state === "paused") detail = `${v.reason || "暂停"} · 已持续 ${clock(secondsInState())}`;
  else if (v.state === "wrap_up") {
    const left = wrapupLeft();
    detail = left === null ? `已持续 ${clock(secondsInState())}` : `剩余 ${clock(Math.max(0, left))}`;
    document.getElementById("wrapup-timer").textContent = left === null ? "" : `话后处理剩余 ${clock(Math.max(0, left))}`;
  } else if (v.state !== "logged_out") detail = `已持续 ${clock(secondsInState())}`;
  document.getElementById("state-detail").textContent = detail;
}

// ---- actions ----------------------------------------------------------------------------

async function act(action) {
  const body = {};
  if (action === "pause") body.reason = document.getElementById("pause-reason").value;
  hideRefusal();
  try {
    const done = await api("POST", `/api/agents/${encodeURIComponent(me.agent)}/${action}`, body);
    if (done && done.deferred) toast(action === "logout" ? "将在通话结束后签出" : "将在通话结束后暂停");
    else toast({ login: "已签入", ready: "已就绪", unpause: "已就绪", pause: "已暂停", logout: "已签出", extend: "话后处理已延长" }[action] || "已完成");
    if (done && done.state && model.view) setView({ ...model.view, ...(done.view || {}) }, null);
  } catch (err) {
    if (err.code === "coverage_guard" || err.code === "not_head") showRefusal(err.body.message || "");
    else alertBox(describe(err));
  }
}

function showRefusal(message) {
  const box = document.getElementById("refusal");
  box.hidden = false;
  document.getElementById("refusal-text").textContent = message.replace(/^refused: /, "");
  const heads = headsOf(message);
  document.getElementById("refusal-who").textContent =
    `只有部门负责人可以批准${heads ? "：" + heads : ""}（在值班看板上“批准暂停/签出”）。`;
}

function hideRefusal() { document.getElementById("refusal").hidden = true; }

function headsOf(message) {
  const o = model.options;
  const named = (o.posts || []).filter((p) => message.includes(`post ${p.post}:`));
  const depts = new Set(named.map((p) => p.department));
  return (o.departments || []).filter((d) => depts.has(d.id) && d.head).map((d) => `${d.name} ${d.head}`).join("、");
}

/** 就绪 ends a pause (unpause) or the wrap-up (ready); the server decides what it means now. */
function readyAction() { return model.view && model.view.state === "paused" ? "unpause" : "ready"; }

for (const button of document.querySelectorAll("button[data-action]")) {
  button.addEventListener("click", () => act(button.id === "btn-ready" ? readyAction() : button.dataset.action));
}
document.getElementById("btn-cancel-pending").addEventListener("click", () => act("unpause"));

function pressIf(id, action) {
  const b = document.getElementById(id);
  if (b && !b.disabled) act(action); else toast("当前状态下不可用");
}

shortcut("Alt+R", "就绪（结束暂停或话后处理）", () => pressIf("btn-ready", readyAction()));
shortcut("Alt+P", "暂停（按所选原因）", () => pressIf("btn-pause", "pause"));
shortcut("Alt+W", "话后完成", () => pressIf("btn-done", "ready"));
shortcut("Alt+E", "延长话后处理", () => pressIf("btn-extend", "extend"));
shortcut("Alt+A", "确认最早的一条通知", () => notes.ackFirst());
shortcut("Alt+D", "跳到话后处理表单", () => document.getElementById("wu-disposition").focus());
shortcut("Alt+M", "跳到“我的工作”", () => document.getElementById("work-title").scrollIntoView());

// ---- my work, my posts, notifications ---------------------------------------------------

async function loadWork() {
  const [cases, tasks] = await Promise.all([
    api("GET", "/api/cases?status=open").catch(() => ({ cases: [] })),
    api("GET", "/api/tasks?status=open").catch(() => ({ tasks: [] })),
  ]);
  renderWork(document.getElementById("work"), cases.cases || [], tasks.tasks || [], { callback: true, calendar: model.options });
}

function renderPosts(posts) {
  const box = document.getElementById("posts");
  if (!posts || !posts.length) { replace(box, el("p", { class: "empty", text: "未分配岗位" })); return; }
  const deptName = (id) => (model.options.departments || []).find((d) => d.id === id)?.name || id;
  replace(box, posts.map((p) => el("div", { class: "post", dataset: { post: p.post } },
    el("strong", { text: `岗位 ${p.post}${onPbx(p.pbx)} · ${deptName(p.department)}${p.state === "gap" ? " · 缺岗" : ""}` }),
    seat("A岗", p.a), seat("B岗", p.b),
    el("div", { class: "seat" }, el("span", { text: "现在可接听" }),
      el("strong", { text: availableNow(p) })))));
}

// with more than one PBX configured, a post says which one it is on
function onPbx(pbx) { return pbx && (model.options.pbxes || []).length > 1 ? ` @${pbx}` : ""; }

function seat(label, s) {
  if (!s) return null;
  const state = s.available && (!s.state || s.state === "available") ? "可接听" : !s.logged_in ? "未签入" :
    s.paused ? `暂停${s.reason ? "（" + s.reason + "）" : ""}` : LABELS[s.state] || (s.available ? "可接听" : "不可接听");
  return el("div", { class: "seat" }, el("span", { text: `${label} ${s.name || s.agent}${s.agent === me.agent ? "（我）" : ""}` }),
    el("span", { class: state === "可接听" ? "tag tag-ok" : s.available ? "tag" : "tag tag-warn", text: state }));
}

function availableNow(p) {
  const free = (s) => s && s.available && (!s.state || s.state === "available");   // not on a call either
  const names = [p.a, p.b].filter(free).map((s) => s.name || s.agent);
  return names.length ? names.join("、") : "无人（缺岗）";
}

function reasons(list) {
  const select = document.getElementById("pause-reason");
  replace(select, (list && list.length ? list : DEFAULT_REASONS).map((r) =>
    el("option", { value: r.name, text: r.max_minutes ? `${r.name}（最长 ${r.max_minutes} 分钟）` : r.name })));
}

async function loadPanel() {
  try { model.options = await api("GET", "/api/panel/options") || {}; } catch (err) { model.options = {}; }
  reasons(model.options.pause_reasons);
  try {
    const p = await api("GET", "/api/panel/agent");
    renderPosts(p.posts);
    if (p.view) { setView(p.view, p.sent_at || p.as_of); text("who", `${p.view.name || me.agent}（${me.user}）`); }
  } catch (err) { renderPosts([]); }
}

// ---- the live feed ----------------------------------------------------------------------

function onMessage(msg) {
  switch (msg.type) {
    case "hello":
      if (msg.agent && msg.agent.view) setView(msg.agent.view, msg.sent_at);
      if (msg.agent && msg.agent.posts) renderPosts(msg.agent.posts);
      if (Array.isArray(msg.notifications)) notes.replaceAll(msg.notifications);
      break;
    case "agent": {
      const view = msg.view || msg.agent_view || (msg.state ? msg : msg.agent);
      if (view && (!view.agent || view.agent === me.agent)) setView(view, msg.sent_at);
      if (msg.posts) renderPosts(msg.posts);
      break;
    }
    case "ringing": {
      const call = msg.call || msg;
      const base = model.view || { agent: me.agent };
      if (!model.view || !["ringing", "on_call"].includes(model.view.state)) setView({ ...base, state: "ringing", call, seconds_in_state: 0 }, msg.sent_at);
      break;
    }
    case "posts": renderPosts(msg.posts); break;
    case "notification": notes.add(msg.notification || msg); break;
    case "work": loadWork(); break;
    default: break;
  }
}

notes.bind(() => live);
reasons(null);
await loadPanel();
loadWork();
notes.load();
live = new Live(onMessage).start();
everySecond(tick);
setInterval(loadWork, 60000);
