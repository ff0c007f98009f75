"""A department head in headless Chromium: the dashboard of 区市场监管局 follows the PBX live (a
caller starts waiting, B logs out), the head overrides the pause the A/B guard refused agent 1001,
(the agent's panel shows the refusal and who may override), reassigns a task and a case with a
reason (the audit logs name the head and the reason), filters and exports the lost calls and opens
the daily report."""
from __future__ import annotations

import time

from tests.browser.conftest import screenshot_path, sign_in
from tests.test_coverage import B

OVERRIDE = "区长临时会议，B岗马上到岗"


async def test_the_head_watches_live_overrides_a_refused_pause_and_reassigns(rig, browser, page, tmp_path):
    await rig.user("head-market", "head", ["market"])
    await rig.user("1001", "agent", agent="1001")
    await sign_in(page, rig, "head-market", "/head")
    await page.wait_for_selector("#agents tr[data-agent='1001']")
    await page.wait_for_selector("#conn.conn-ok")
    assert await page.inner_text("#kpi-waiting") == "0"

    # live: a caller of the real basic trace starts waiting in q-market
    emitted = time.monotonic()
    await rig.replay_call(stop_after="QueueCallerJoin", speed=50)
    await page.wait_for_selector("#kpi-waiting:has-text('1')", timeout=3000)
    waited = time.monotonic() - emitted
    assert waited < 1.5, waited
    print(f"dashboard showed the waiting caller {waited * 1000:.0f} ms after QueueCallerJoin")
    # B (1002) logs out: the row and the post follow
    rig.server.emit({"Event": "QueueMemberRemoved", "Queue": "q-market", "MemberName": "Agent B 1002", "Interface": B})
    await page.wait_for_selector("#agents tr[data-agent='1002'] :text('未签入')", timeout=3000)
    updated = await page.inner_text("#updated")
    assert updated.startswith("最后更新 10:")             # the service's clock (Monday 10:30)

    # the agent asks to pause in their panel: refused by the A/B guard (B is away), with who may override
    agent_context = await browser.new_context(viewport={"width": 1024, "height": 700}, locale="zh-CN")
    agent = await agent_context.new_page()
    await sign_in(agent, rig, "1001", "/agent")
    await agent.wait_for_selector("#state-label:has-text('就绪')")
    await agent.select_option("#pause-reason", "会议")
    await agent.click("#btn-pause")
    await agent.wait_for_selector("#refusal:not([hidden])")
    assert "market-1" in await agent.inner_text("#refusal-text")
    assert "区市场监管局 市场监管局负责人" in await agent.inner_text("#refusal-who")
    assert rig.actions("QueuePause") == []
    row = page.locator("#agents tr[data-agent='1001']")
    await row.locator("button:has-text('批准暂停/签出')").click()
    await page.wait_for_selector("dialog#override[open]")
    await page.select_option("#override-action", "pause")
    await page.select_option("#override-pause", "会议")
    await page.click("#override-form button[type=submit]")             # no reason yet: refused here
    assert await page.inner_text("#override-error") == "请填写批准理由"
    await page.fill("#override-reason", OVERRIDE)
    await page.click("#override-form button[type=submit]")
    await page.wait_for_selector("#toast:has-text('已批准')")
    [pause] = rig.actions("QueuePause")
    assert (pause["Interface"], pause["Paused"], pause["Reason"]) == ("Local/1001@agents/n", "true", "会议")
    overrides = await page.evaluate("fetch('/api/coverage/overrides').then(r => r.json())")
    [override] = overrides["overrides"]
    assert (override["agent"], override["by"], override["reason"]) == ("1001", "head-market", OVERRIDE)
    await page.wait_for_selector("#agents tr[data-agent='1001'] :text('暂停')", timeout=3000)
    await agent.wait_for_selector("#state-label:has-text('暂停')", timeout=3000)      # the agent's panel too
    await agent_context.close()
    await page.wait_for_selector("#posts .post:has-text('B岗顶岗')", timeout=3000)   # B brought in
    await page.evaluate("document.getElementById('toast').textContent = ''")
    await page.screenshot(path=str(screenshot_path("panel-head.png", tmp_path)))

    # reassign the IVR hang-up's task (1001's) and case 2 (1002's), each with a reason
    task_row = page.locator("#overdue tr[data-kind='task']")
    await task_row.locator("button:has-text('改派')").click()
    await page.wait_for_selector("dialog#reassign[open]")
    await page.select_option("#reassign-to", "1002")
    await page.fill("#reassign-reason", "张伟外出培训，转王芳回访")
    await page.click("#reassign-form button[type=submit]")
    await page.wait_for_selector("#toast:has-text('已改派')")
    [task] = await rig.app.followup.list(caller="13600000009")
    task = await rig.app.followup.get(task["id"])
    assert task["assignee"] == "1002"
    assert any(h["kind"] == "assigned" and h.get("by") == "head-market" and "转王芳回访" in str(h) for h in task["history"])

    [case] = await rig.app.cases.list(caller="13800000001")          # case 2, owned by 1002
    case_row = page.locator(f"#overdue tr[data-kind='case'][data-id='{case['id']}']")
    await case_row.locator("button:has-text('改派')").click()
    await page.select_option("#reassign-to", "1001")
    await page.fill("#reassign-reason", "王芳休假，转张伟跟进")
    await page.click("#reassign-form button[type=submit]")
    await page.wait_for_selector(f"#toast:has-text('案件 #{case['id']} 已改派')")
    case = await rig.app.cases.get(case["id"])
    assert case["owner"] == "1001"
    assert (case["history"][-1]["kind"], case["history"][-1]["actor"], case["history"][-1]["reason"]) == (
        "reassigned", "head-market", "王芳休假，转张伟跟进")

    # lost calls not yet handled (the IVR hang-up of 13600000009, its task now 王芳's), CSV, daily report
    await page.select_option("#lost-reason", "timed_out")            # a filter that leaves nothing
    await page.click("#lost-filters button[type=submit]")
    await page.wait_for_selector("#lost td:has-text('没有未处理的漏接来电')")
    await page.select_option("#lost-reason", "ivr_abandoned")
    await page.click("#lost-filters button[type=submit]")
    lost = page.locator("#lost tr", has_text="13600000009")
    await lost.wait_for()
    assert "IVR挂机" in await lost.inner_text() and "王芳" in await lost.inner_text()
    csv = await page.evaluate("fetch(document.getElementById('lost-csv').href).then(r => r.text())")
    assert "13600000009" in csv and "IVR挂机" in csv
    assert "reason=ivr_abandoned" in await page.get_attribute("#lost-csv", "href")
    report = await page.get_attribute("#daily-report", "href")
    assert report == "/api/reports/daily?format=html&department=market&date=2026-11-23"
    html = await page.evaluate(f"fetch('{report}').then(r => r.text())")
    assert "区市场监管局" in html
    assert page.errors == []
