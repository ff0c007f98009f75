"""The agent panel against the real Asterisk (../shared/asterisk; skipped when it cannot start
here): 签入, a pause with a reason, 就绪 and 签出 made in headless Chromium change the PBX's own
queue state, read back with QueueStatus by a separate AMI client; a call placed on the PBX (a
citizen dialling the hotline) rings in the panel with the caller's number, is answered by the lab's
simulated phone and ends in wrap-up, whose pause the PBX shows too."""
from __future__ import annotations

import time

import pytest

from tests.browser.asterisk_rig import service_on_asterisk
from tests.browser.conftest import sign_in

AGENT, QUEUE, HOTLINE = "1001", "q-market", "62000001"    # 1001 is A of market-1, whose queue is q-market
CALLER = "13800000077"


@pytest.fixture
async def pbx(tmp_path, sqlite_url):
    async with service_on_asterisk(tmp_path, sqlite_url) as rig:
        yield rig


async def test_panel_actions_change_the_real_queue_and_a_real_call_rings(pbx, page):
    [agent] = [a for a in pbx.app.settings.agents if a.id == AGENT]
    interface, state_interface = agent.interfaces[0], agent.state_interface
    assert (interface, state_interface) == ("Local/1001@agents/n", "Custom:1001")   # the lab dialplan's phones
    assert await pbx.members(QUEUE) == {}                  # a fresh PBX: nobody logged in
    await pbx.user(AGENT, "agent", agent=AGENT)
    await sign_in(page, pbx, AGENT, "/agent")
    await page.wait_for_selector("#state-label:has-text('未签入')")
    await page.wait_for_selector("#conn.conn-ok")

    # 签入: QueueAdd on the PBX; the panel shows 就绪 once the PBX reports the member
    await page.click("#btn-login")
    member = await pbx.member_until(QUEUE, interface, lambda m: m is not None)
    assert member is not None, await pbx.members(QUEUE)
    assert (member["StateInterface"], member["Paused"], member["Penalty"], member["Name"]) == (
        state_interface, "0", "0", agent.name), member
    await page.wait_for_selector("#state-label:has-text('就绪')")

    # 暂停 with a reason: Paused 1 and that PausedReason on the PBX
    await page.select_option("#pause-reason", "用餐")
    await page.click("#btn-pause")
    member = await pbx.member_until(QUEUE, interface, lambda m: m is not None and m["Paused"] == "1")
    assert (member["Paused"], member.get("PausedReason")) == ("1", "用餐"), member
    await page.wait_for_selector("#state-detail:has-text('用餐 · 已持续')")

    # 就绪: unpaused on the PBX
    await page.click("#btn-ready")
    member = await pbx.member_until(QUEUE, interface, lambda m: m is not None and m["Paused"] == "0")
    assert member["Paused"] == "0", member
    await page.wait_for_selector("#state-label:has-text('就绪')")

    # a citizen calls the hotline: the PBX's queue rings 1001's (simulated) phone for 3 s, which
    # then answers and talks 2 s: the panel rings with the number, then shows the call
    await pbx.agent_phone(AGENT, ring=3, talk=2)
    placed = time.monotonic()
    await pbx.call(HOTLINE, QUEUE, CALLER)
    await page.wait_for_selector(f"#call-number:has-text('{CALLER}')", timeout=5000)
    assert await page.inner_text("#state-label") == "振铃"
    print(f"the real call rang in the panel {time.monotonic() - placed:.2f} s after the Originate")
    await page.wait_for_selector("#state-label:has-text('通话中')", timeout=6000)
    assert await page.inner_text("#call-number") == CALLER
    await page.wait_for_selector("#state-label:has-text('话后处理')", timeout=6000)
    wrapup = pbx.app.settings.panel.wrapup.reason
    member = await pbx.member_until(QUEUE, interface, lambda m: m is not None and m["Paused"] == "1")
    assert (member["Paused"], member.get("PausedReason"), member["CallsTaken"]) == ("1", wrapup, "1"), member

    # 话后完成, then 签出: unpaused, then no longer a member of the queue
    await page.click("#btn-done")
    member = await pbx.member_until(QUEUE, interface, lambda m: m is not None and m["Paused"] == "0")
    assert member["Paused"] == "0", member
    await page.wait_for_selector("#state-label:has-text('就绪')")
    await page.click("#btn-logout")
    member = await pbx.member_until(QUEUE, interface, lambda m: m is None)
    assert member is None, member
    await page.wait_for_selector("#state-label:has-text('未签入')")
    assert page.errors == [] and page.dialogs == []
