// The call card of the agent panel: the call ringing or in progress (caller, IVR path, the
// caller's history with the 首问负责 owner) and the wrap-up form for it. Text only, never HTML.
import { api, el, text, replace, when, toast, describe } from "./common.js";

const LABELS = { ringing: "振铃", on_call: "通话中", wrap_up: "话后处理" };

/** `model`: the agent panel's state (view, options); `me`: who is signed in; `saved()`: after a wrap-up. */
export function callCard(model, me, saved) {
  // ---- the call ---------------------------------------------------------------------------

  function currentCall() {
    const v = model.view;
    return v && v.call && ["ringing", "on_call", "wrap_up"].includes(v.state) ? v.call : null;
  }

  function renderCall() {
    const call = currentCall();
    document.getElementById("call").hidden = !call;
    document.getElementById("call-empty").hidden = !!call;
    const wrapup = document.getElementById("wrapup");
    const v = model.view || {};
    wrapup.hidden = !(call && (v.state === "on_call" || v.state === "wrap_up"));
    if (!call) { model.historyFor = null; return; }
    const tag = document.getElementById("call-state");
    tag.textContent = LABELS[v.state];
    tag.className = v.state === "ringing" ? "tag tag-ringing" : "tag";
    text("call-number", call.caller_num || "未显示号码");
    document.getElementById("call-name").textContent = call.caller_name && call.caller_name !== call.caller_num ? call.caller_name : "";
    const dept = departmentOf(call.queue);
    const pbx = call.pbx && (model.options.pbxes || []).length > 1 ? ` @${call.pbx}` : "";   // several PBXes
    text("call-queue", [call.hotline, dept ? dept.name : "", call.queue ? call.queue + pbx : ""].filter(Boolean).join(" · "));
    text("call-ivr", ivrPath(call));
    text("call-since", when(call.since));
    fillItems(dept);
    if (model.historyFor !== (call.caller_num || "")) loadHistory(call);
  }

  function ivrPath(call) {
    if (Array.isArray(call.ivr_path) && call.ivr_path.length) return call.ivr_path.join(" → ");
    const parts = [];
    if (call.hotline) parts.push(`拨打 ${call.hotline}`);
    if (call.ivr_choice) parts.push(`按键 ${call.ivr_choice}`);
    if (call.ivr_queue || call.queue) parts.push(`进入 ${departmentOf(call.ivr_queue || call.queue)?.name || call.ivr_queue || call.queue}`);
    return parts.join(" → ") || "未经 IVR";
  }

  function departmentOf(queue) {
    for (const d of model.options.departments || []) if ((d.queues || []).includes(queue) || d.id === queue) return d;
    return null;
  }

  function fillItems(dept) {
    const select = document.getElementById("wu-item");
    const key = dept ? dept.id : "";
    if (select.dataset.dept === key) return;
    select.dataset.dept = key;
    replace(select, el("option", { value: "", text: "（不选）" }), (dept?.items || []).map((i) => el("option", { value: i, text: i })));
  }

  async function loadHistory(call) {
    const number = call.caller_num || "";
    model.historyFor = number;
    const box = document.getElementById("call-history");
    const owner = document.getElementById("call-owner");
    owner.hidden = true;
    if (!number) { replace(box, el("p", { class: "empty", text: "号码未显示，无历史" })); return; }
    let history;
    try {
      history = await api("GET", `/api/callers/${encodeURIComponent(number)}/history`);
    } catch (err) {
      if (model.historyFor === number) replace(box, el("p", { class: "empty", text: describe(err) }));
      return;
    }
    if (model.historyFor !== number) return;
    const dept = departmentOf(call.queue);
    const owners = history.owners || {};
    const first = (dept && owners[dept.id]) || Object.values(owners)[0];
    if (first) {
      owner.hidden = false;
      const mine = first.owner === me.agent;
      owner.textContent = `首问负责人：${first.owner_name || first.owner}（${first.owner}）${mine ? " · 是您本人" : ""} · 案件 #${first.case_id}`;
    }
    const calls = history.calls || [];
    const cases = (history.cases || []).filter((c) => !c.status || c.status === "open");
    const tasks = (history.tasks || []).filter((t) => !t.status || t.status === "open");
    const list = (items, line) => items.length ? el("ul", {}, items.map((i) => el("li", { text: line(i) }))) : null;
    replace(box,
      el("p", {}, el("strong", { text: history.repeat_caller ? "重复来电 · 以往来电：" : "以往来电：" }), calls.length ? `${calls.length} 次` : "无记录"),
      list(calls.slice(0, 5), (c) => `${when(c.started_at)} · ${c.department_name || c.queue || ""} · ${c.outcome_name || c.outcome || ""}${c.agent_name || c.agent ? " · " + (c.agent_name || c.agent) : ""}`),
      el("p", {}, el("strong", { text: "未结案件：" }), cases.length ? "" : "无"),
      list(cases, (c) => `#${c.id} ${c.department_name || ""} · 负责人 ${c.owner_name || c.owner || "—"}${c.item ? " · " + c.item : ""} · 期限 ${when(c.deadline)}${c.overdue ? " · 超期" : ""}`),
      el("p", {}, el("strong", { text: "未完成回访任务：" }), tasks.length ? "" : "无"),
      list(tasks, (t) => `#${t.id} ${t.department_name || ""} · ${t.assignee_name || t.assignee || "部门池"} · 期限 ${when(t.deadline)}${t.overdue ? " · 超期" : ""}`),
    );
  }

  // ---- wrap-up ----------------------------------------------------------------------------

  const form = document.getElementById("wrapup");
  form.disposition.addEventListener("change", () => {
    form.work_order.disabled = form.disposition.value !== "escalated_12345";
    form.directed_to.disabled = form.disposition.value !== "out_of_scope";
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const call = currentCall();
    const error = document.getElementById("wrapup-error");
    error.textContent = "";
    if (!call) { error.textContent = "没有可处理的来电"; return; }
    if (!form.disposition.value) { error.textContent = "请选择处理结果"; form.disposition.focus(); return; }
    const body = { disposition: form.disposition.value };
    if (form.item.value) body.item = form.item.value;
    if (!form.work_order.disabled) body.work_order = form.work_order.value.trim();
    if (!form.directed_to.disabled) body.directed_to = form.directed_to.value.trim();
    if (form.note.value.trim()) body.note = form.note.value.trim();
    const id = call.uniqueid || call.call_id;
    try {
      const result = await api("POST", `/api/calls/${encodeURIComponent(call.pbx)}/${encodeURIComponent(id)}/disposition`, body);
      model.disposed = id;
      toast(`处理结果已保存（案件 #${result.id}）`);
      form.dataset.saved = id;
      saved();
    } catch (err) {
      error.textContent = describe(err);
    }
  });

  return { renderCall, currentCall };
}
