"""An agent's shift in headless Chromium: signed in, a call of the real basic trace rings in the
panel (played live after the page is open) with the caller, the IVR path and the caller's history
(首问负责: 13800000000's case 1 is 1001's own); a pause asked during the call waits for its end (and
is taken back); the wrap-up form is saved for that call; a callback started from 我的工作 shows its
progress; a pause and ready by keyboard. A caller name with markup shows as text and runs nothing."""
from __future__ import annotations

import asyncio
import time

from tests.browser.conftest import screenshot_path, sign_in

CALLER = "13800000000"
MARKUP = "<img src=x onerror=alert(1)>"


async def test_a_call_rings_is_wrapped_up_and_a_callback_is_started(rig, page, tmp_path):
    await rig.user("1001", "agent", agent="1001")
    await sign_in(page, rig, "1001", "/agent")
    await page.wait_for_selector("#state-label:has-text('就绪')")
    await page.wait_for_selector("#posts .post[data-post='market-1']")
    assert "张伟" in await page.inner_text("#posts")

    started = time.monotonic()
    rest = asyncio.get_running_loop().create_task(rig.replay_call(stop_after="AgentCalled"))
    await page.wait_for_selector(f"#call-number:has-text('{CALLER}')", timeout=5000)
    rang = time.monotonic()
    rest = await rest
    shown_after = rang - started - 0.5              # AgentCalled is 0.5 s into the call
    assert shown_after < 2.0, shown_after
    print(f"ringing shown in the panel {shown_after * 1000:.0f} ms after the PBX's AgentCalled")
    assert await page.inner_text("#state-label") == "振铃"
    assert "按键 1" in await page.inner_text("#call-ivr")
    await page.wait_for_selector("#call-owner:has-text('首问负责人：张伟（1001）')")
    history = await page.inner_text("#call-history")
    assert "以往来电" in history and "#1" in history

    answered = [raw for raw in rest if raw.startswith(b"Event: AgentConnect")]
    rest = rest[rest.index(answered[0]):]
    rig.server.emit(rest.pop(0))
    await page.wait_for_selector("#state-label:has-text('通话中')")
    await page.wait_for_selector("#wrapup:not([hidden])")
    await page.select_option("#pause-reason", "小休")     # a pause asked during the call waits for its end
    await page.click("#btn-pause")
    await page.wait_for_selector("#pending-text:has-text('通话结束后暂停（小休）')")
    await page.evaluate("document.getElementById('toast').textContent = ''")
    await page.screenshot(path=str(screenshot_path("panel-agent.png", tmp_path)))
    await page.click("#btn-cancel-pending")                 # ... and can be taken back
    await page.wait_for_selector("#state-pending", state="hidden")

    await rig.play(rest)                            # the caller hangs up: wrap-up
    await page.wait_for_selector("#state-label:has-text('话后处理')")
    left = await countdown(page)
    assert 50 < left <= 60, left                   # panel.wrapup.seconds, counting down on the server's timer
    await page.keyboard.press("Alt+E")             # 延长: extend_seconds more
    for _ in range(40):
        if await countdown(page) > left + 50:
            break
        await asyncio.sleep(0.05)
    assert await countdown(page) > left + 50
    await page.select_option("#wu-disposition", "follow_up_simple")
    await page.select_option("#wu-item", index=1)
    item = await page.eval_on_selector("#wu-item", "s => s.value")
    await page.fill("#wu-note", "来电人咨询档案查阅，需补充材料")
    for _ in range(50):                             # the call is stored a moment after it ends
        await page.click("#wrapup button[type=submit]")
        try:
            await page.wait_for_selector("#toast:has-text('处理结果已保存')", timeout=300)
            break
        except Exception:
            await asyncio.sleep(0.1)
    [case] = await rig.app.cases.list(caller=CALLER)
    case = await rig.app.cases.get(case["id"])
    [entry] = [h for h in case["history"] if h["kind"] == "disposition"]
    assert (entry["actor"], entry["disposition"], entry["item"], entry["note"]) == (
        "1001", "follow_up_simple", item, "来电人咨询档案查阅，需补充材料")
    assert entry["call_id"].startswith("1795349900")
    await page.keyboard.press("Alt+W")                # 话后完成: ready again
    await page.wait_for_selector("#state-label:has-text('就绪')")

    # 我的工作: the IVR hang-up's task (13600000009) is 1001's; call back, see the progress
    row = page.locator("#work tr[data-kind='task']")
    await row.wait_for()
    assert "13600000009" in await row.inner_text()
    await row.locator("button:has-text('回拨')").click()
    await page.wait_for_selector("#work tr[data-kind='task'] .progress:has-text('正在呼叫')")
    await page.wait_for_selector("#work tr[data-kind='task'] .progress:has-text('未接通')", timeout=6000)
    [originate] = rig.actions("Originate")
    assert (originate["Exten"].endswith("13600000009"), originate["Channel"]) == (True, "Local/1001@agents/n")

    # a pause with a reason (Alt+P), then ready (Alt+R): sent to the PBX, shown with its time
    await page.select_option("#pause-reason", "用餐")
    await page.keyboard.press("Alt+P")
    await page.wait_for_selector("#state-label:has-text('暂停')")
    await page.wait_for_selector("#state-detail:has-text('用餐 · 已持续 00:0')")
    pause = rig.actions("QueuePause")[-1]                # (the wrap-up paused and unpaused before)
    assert (pause["Interface"], pause["Paused"], pause["Reason"]) == ("Local/1001@agents/n", "true", "用餐")
    await page.keyboard.press("Alt+R")
    await page.wait_for_selector("#state-label:has-text('就绪')")
    assert page.errors == []


async def test_markup_from_the_pbx_or_a_notification_is_shown_as_text(rig, page):
    """The caller name of a live call and a notification's text both carry markup: shown as
    text, no element made, nothing run. The notification arrives live, counts as delivered once
    shown (sent, shown_at), and 确认 acknowledges it."""
    await rig.user("1001", "agent", agent="1001")
    await sign_in(page, rig, "1001", "/agent")
    await page.wait_for_selector("#state-label:has-text('就绪')")
    await page.wait_for_selector("#conn.conn-ok")
    await page.evaluate("window.__alerted = false; window.alert = (m) => { window.__alerted = String(m); }; 0")
    await rig.replay_call(caller_name=MARKUP.encode(), stop_after="AgentCalled")
    await page.wait_for_selector(f"#call-number:has-text('{CALLER}')")
    assert await page.inner_text("#call-name") == MARKUP

    key = "test:deadline:1"
    assert await rig.app.notifier.notify(key, "panel", "1001", "回访任务即将到期", f"来电人 {MARKUP} 的回访任务今天到期")
    note = page.locator("#notes li.unacked")
    await note.wait_for(timeout=3000)
    assert MARKUP in await note.inner_text()
    assert await page.locator("main img").count() == 0
    for _ in range(40):                                   # reported shown by the page: delivered
        row = await rig.app.notifier.status(key)
        if row["shown_at"] is not None:
            break
        await asyncio.sleep(0.05)
    assert (row["status"], row["acked_at"]) == ("sent", None)
    await note.locator("button:has-text('确认')").click()
    await page.wait_for_selector("#notes li.empty")
    row = await rig.app.notifier.status(key)
    assert (row["acked_by"], row["acked_at"] is not None) == ("1001", True)
    await asyncio.sleep(0.2)
    assert (await page.evaluate("window.__alerted"), page.dialogs, page.errors) == (False, [], [])


async def countdown(page) -> int:
    """The wrap-up's remaining seconds as the badge shows them ("剩余 mm:ss")."""
    detail = await page.inner_text("#state-detail")
    assert detail.startswith("剩余 "), detail
    minutes, seconds = detail[3:].split(":")
    return int(minutes) * 60 + int(seconds)
