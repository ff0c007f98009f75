// Panel notifications: listed on connect, pushed live; each one is reported "shown" once it is
// on screen (that is when it counts as delivered) and acknowledged with 确认.
import { api, el, replace, when, toast, describe } from "./common.js";

// a report notification (kind "report", reports/deliver.py) links to its archived report
function reportLink(n) {
  const m = n.kind === "report" && /\/api\/reports\/archive\/(\d+)/.exec(n.body || "");
  return m ? el("a", { class: "report-link", href: `/api/reports/archive/${m[1]}`, text: "下载报表" }) : null;
}

export class Notes {
  constructor(getLive) {
    this.getLive = getLive;
    this.items = new Map();          // id -> notification
    this.reported = new Set();       // ids reported shown
    this.list = document.getElementById("notes");
    this.count = document.getElementById("notes-count");
    document.addEventListener("visibilitychange", () => this.reportShown());
  }
  bind(getLive) { this.getLive = getLive; }
  async load() {
    try {
      const data = await api("GET", "/api/notifications");
      this.replaceAll(data.notifications || []);
    } catch (err) { /* the live feed lists them too */ }
  }
  replaceAll(list) {
    this.items.clear();
    for (const n of list) if (n && n.id !== undefined && !n.acked_at) this.items.set(n.id, n);
    this.render();
  }
  add(n) {
    if (!n || n.id === undefined || n.acked_at) return;
    const fresh = !this.items.has(n.id);
    this.items.set(n.id, n);
    this.render();
    if (fresh) toast(`新通知：${n.subject || ""}`);
  }
  render() {
    const items = [...this.items.values()].sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
    this.count.textContent = items.length ? String(items.length) : "";
    if (!items.length) { replace(this.list, el("li", { class: "empty", text: "暂无通知" })); return; }
    replace(this.list, items.map((n) => el("li", { class: "unacked", dataset: { id: String(n.id) } },
      el("span", { class: "subject", text: n.subject || "通知" }),
      n.body ? el("span", { class: "body", text: n.body }) : null,
      reportLink(n),
      el("div", { class: "actions-inline" },
        el("span", { class: "when", text: when(n.created_at) }),
        el("button", { type: "button", class: "small", "aria-label": `确认通知：${n.subject || ""}`,
                       onclick: () => this.ack(n.id), text: "确认" })))));
    this.reportShown();
  }
  async reportShown() {
    if (document.visibilityState !== "visible") return;
    for (const id of this.items.keys()) {
      if (this.reported.has(id) || this.items.get(id).shown_at) continue;
      this.reported.add(id);
      try { await api("POST", `/api/notifications/${id}/shown`, {}); } catch (err) { this.reported.delete(id); }
    }
  }
  async ack(id) {
    try {
      await api("POST", `/api/notifications/${id}/ack`, {});
      this.items.delete(id);
      this.render();
      toast("已确认");
    } catch (err) { toast(describe(err)); }
  }
  ackFirst() {
    const items = [...this.items.values()].sort((a, b) => String(a.created_at).localeCompare(String(b.created_at)));
    if (items.length) this.ack(items[0].id); else toast("没有待确认的通知");
  }
}
