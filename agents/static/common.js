// The panel's shared pieces: the API with the CSRF token, the live WebSocket with reconnect and
// a visible status, DOM building with textContent only, times in Asia/Shanghai, shortcuts + help.
// Nothing from the server is ever parsed as HTML here: caller names are attacker-controlled.

export const TZ = "Asia/Shanghai";
const CSRF_KEY = "cc_csrf";
let csrf = sessionStorage.getItem(CSRF_KEY) || "";

export class ApiFailure extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
    this.code = this.body.error || "";
  }
}

export function setCsrf(token) {
  if (token) { csrf = token; sessionStorage.setItem(CSRF_KEY, token); }
}

/** One request to /api: JSON in and out; a state change sends X-CSRF-Token. 401 -> log-in page. */
export async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  const init = { method, headers, credentials: "same-origin" };
  if (method !== "GET") {
    headers["Content-Type"] = "application/json";
    if (csrf) headers["X-CSRF-Token"] = csrf;
    init.body = JSON.stringify(body || {});
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiFailure(0, { error: "network", message: "网络不可用，请稍后重试" });
  }
  let data = null;
  try { data = await response.json(); } catch (err) { data = null; }
  if (response.status === 401 && path !== "/api/login") {
    location.assign("/login?next=" + encodeURIComponent(location.pathname));
    throw new ApiFailure(401, data);
  }
  if (!response.ok) throw new ApiFailure(response.status, data);
  return data;
}

/** Who is signed in (and the CSRF token, when the server gives it); null when nobody is. */
export async function whoami() {
  const response = await fetch("/api/me", { credentials: "same-origin", headers: { "Accept": "application/json" } });
  if (!response.ok) return null;
  const me = await response.json();
  setCsrf(me.csrf_token);
  return me;
}

/** Build an element: attributes as properties or attributes, children as nodes or text (never HTML). */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function text(id, value) {
  const node = document.getElementById(id);
  if (node) node.textContent = value === null || value === undefined || value === "" ? "—" : String(value);
  return node;
}

export function replace(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

const timeFmt = new Intl.DateTimeFormat("zh-CN", { timeZone: TZ, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
const dateTimeFmt = new Intl.DateTimeFormat("zh-CN", { timeZone: TZ, month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false });
const dayFmt = new Intl.DateTimeFormat("en-CA", { timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit" });

export function hms(date) { return timeFmt.format(date || new Date()); }
export function when(iso) { return iso ? dateTimeFmt.format(new Date(iso)) : "—"; }
export function day(iso) { return dayFmt.format(iso ? new Date(iso) : new Date()); }

/** mm:ss (or h:mm:ss) of a number of seconds. */
export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds || 0));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const two = (n) => String(n).padStart(2, "0");
  return h ? `${h}:${two(m)}:${two(r)}` : `${two(m)}:${two(r)}`;
}

export function toast(message) {
  const node = document.getElementById("toast");
  if (!node) return;
  node.textContent = message;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { node.textContent = ""; }, 4000);
}

export function alertBox(message) {
  const node = document.getElementById("alert");
  if (!node) return;
  node.textContent = message;
  clearTimeout(alertBox.timer);
  alertBox.timer = setTimeout(() => { node.textContent = ""; }, 8000);
}

/** A friendly zh-CN line for a failed request. */
export function describe(err) {
  if (!(err instanceof ApiFailure)) return "操作失败：" + String(err && err.message || err);
  const codes = {
    disposition_required: "请先保存处理结果，再点“话后完成”",
    pbx_not_connected: "与交换机的连接中断，未执行，请稍后重试",
    not_active: "本服务实例处于备用状态，未执行", not_ready: "服务刚启动，尚未读到交换机状态，请稍后重试",
    already_closed: "已经办结", too_few_attempts: "回拨次数不足，不能标记为无法联系",
    version_conflict: "内容已被他人修改，请刷新后重试", already_disposed: "该来电已填写处理结果",
    too_many_attempts: "尝试次数过多，请稍后再试",
  };
  if (codes[err.code]) return codes[err.code];
  const known = { 0: "网络不可用", 403: "无权执行此操作", 404: "未找到", 409: "与当前状态冲突", 502: "交换机拒绝了请求", 503: "交换机暂时不可用" };
  return (known[err.status] || "操作失败") + "：" + (err.body.message || err.code || err.status);
}

/** The live feed: /api/live over WebSocket, reconnecting with back-off; shows its state. */
export class Live {
  constructor(onMessage, statusId = "conn") {
    this.onMessage = onMessage;
    this.status = document.getElementById(statusId);
    this.lastUpdate = null;
    this.delay = 500;
    this.socket = null;
    this.closed = false;
  }
  start() { this.connect(); return this; }
  connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    this.show("wait");
    const socket = new WebSocket(`${scheme}//${location.host}/api/live`);
    this.socket = socket;
    socket.addEventListener("open", () => { this.delay = 500; this.show("ok"); });
    socket.addEventListener("message", (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch (err) { return; }
      this.touch(message.sent_at);
      this.show("ok");
      try { this.onMessage(message); } catch (err) { console.error("live message", err); }
    });
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket || this.closed) return;
      this.show("down");
      if (event.code === 4401 || event.code === 1008) { location.assign("/login"); return; }
      setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 10000);
    });
  }
  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) { this.socket.send(JSON.stringify(message)); return true; }
    return false;
  }
  /** The last update on the service's clock (a message's sent_at), else this browser's. */
  touch(at) { this.lastUpdate = at ? new Date(at) : new Date(); }
  show(state) {
    if (!this.status) return;
    const last = this.lastUpdate ? `最后更新 ${hms(this.lastUpdate)}` : "尚无数据";
    const label = { ok: `实时 · ${last}`, wait: `连接中… · ${last}`, down: `连接中断 · ${last} · 正在重连` }[state];
    this.status.textContent = label;
    this.status.className = `conn conn-${state}`;
    this.state = state;
  }
}

/** Keyboard shortcuts and the help dialog that lists them (F1 or ? opens it). */
const registry = [];

export function shortcut(keys, label, run) {
  registry.push({ keys, label, run });
}

function matches(event, keys) {
  const parts = keys.split("+");
  const key = parts.pop();
  const want = new Set(parts);
  if (want.has("Alt") !== event.altKey || want.has("Ctrl") !== event.ctrlKey || event.metaKey) return false;
  if (key.length === 1) return event.code === `Key${key.toUpperCase()}` || event.key.toLowerCase() === key.toLowerCase();
  return event.key === key;
}

export function openHelp() {
  const dialog = document.getElementById("help");
  const body = document.getElementById("help-keys");
  replace(body, registry.map((s) => el("tr", {}, el("td", {}, el("kbd", { text: s.keys })), el("td", { text: s.label }))));
  if (!dialog.open) dialog.showModal();
}

export function setupChrome(me) {
  shortcut("F1", "打开帮助（本列表）", openHelp);
  shortcut("?", "打开帮助（本列表）", openHelp);
  document.getElementById("help-button")?.addEventListener("click", openHelp);
  document.getElementById("logout-button")?.addEventListener("click", async () => {
    try { await api("POST", "/api/logout", {}); } catch (err) { /* signed out anyway */ }
    sessionStorage.removeItem(CSRF_KEY);
    location.assign("/login");
  });
  if (me) text("who", me.name ? `${me.name}（${me.user}）` : me.user);
  document.addEventListener("keydown", (event) => {
    const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(event.target.tagName) && !event.altKey && event.key !== "F1";
    if (typing) return;
    for (const s of registry) {
      if (s.keys === "?" ? event.key === "?" : matches(event, s.keys)) {
        event.preventDefault();
        s.run(event);
        return;
      }
    }
  });
}

/** Run fn every second (for running clocks); returns the interval id. */
export function everySecond(fn) { fn(); return setInterval(fn, 1000); }

/** Go elsewhere and stop this page's script (a promise that never settles). */
export function leave(url) {
  location.replace(url);
  return new Promise(() => {});
}

/** Say why the page cannot be used, and stop its script. */
export function stop(message) {
  document.querySelector("main").textContent = message;
  return new Promise(() => {});
}
