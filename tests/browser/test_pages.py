"""The pages themselves in headless Chromium: signing in lands each role on its page, the pages
carry no data and a strict CSP, the keyboard help opens with F1 and ?, a dropped live link shows
and reconnects by itself, nothing scrolls sideways on a 1024 px screen, and axe-core finds no
WCAG 2.1 A/AA violation (contrast and labels included) on the log-in page, the agent panel and
the head dashboard once their data has loaded."""
from __future__ import annotations

import aiohttp

from agents.live.ws import SOCKETS
from tests.browser.conftest import PASSWORD, axe_violations, sign_in


async def test_pages_are_data_free_shells_with_a_strict_policy(rig):
    async with aiohttp.ClientSession() as http:
        for path in ("/", "/login", "/agent", "/head"):
            async with http.get(rig.base + path) as r:
                body = await r.text()
                assert r.status == 200 and r.content_type == "text/html"
                assert "script-src 'self'" in r.headers["Content-Security-Policy"]
                assert "<script>" not in body and "13800000000" not in body and "张伟" not in body
        async with http.get(rig.base + "/static/agent.js") as r:
            assert (r.status, r.content_type) == (200, "text/javascript")
        for bad in ("/static/..%2Fpages.py", "/static/nope.js", "/static/pages.py"):
            async with http.get(rig.base + bad) as r:
                assert r.status == 404, bad
        async with http.get(rig.base + "/api/panel/options") as r:
            assert r.status == 401


async def test_sign_in_lands_each_role_on_its_page_with_keyboard_help(rig, page):
    await rig.user("1001", "agent", agent="1001")
    await rig.user("head-market", "head", ["market"])
    await page.goto(rig.base + "/agent")
    await page.wait_for_url("**/login?next=**agent")
    await page.fill("#user", "1001")
    await page.fill("#password", "wrong password!")
    await page.click("button[type=submit]")
    await page.wait_for_selector("#login-error:has-text('用户名或密码错误')")
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/agent")
    await page.wait_for_selector("#state-label:has-text('就绪')")
    await shows_the_keyboard_help(page)
    # the live link drops (the server closes every socket): shown, then it reconnects by itself
    await page.wait_for_selector("#conn.conn-ok")
    for ws in list(rig.web._runner.app[SOCKETS]):
        await ws.close()
    await page.wait_for_selector("#conn.conn-down:has-text('连接中断')")
    await page.wait_for_selector("#conn.conn-ok:has-text('实时 · 最后更新 10:')")
    await page.click("#logout-button")
    await page.wait_for_url("**/login")
    await sign_in(page, rig, "head-market", "/head")
    await page.wait_for_selector("#agents tr[data-agent='1001']")
    await page.goto(rig.base + "/")                       # "/" sends a signed-in head to the dashboard
    await page.wait_for_url("**/head")
    assert page.errors == []


async def shows_the_keyboard_help(page):
    """F1 (or ?) opens the help dialog listing the shortcuts; Esc closes it."""
    await page.keyboard.press("F1")
    await page.wait_for_selector("dialog#help[open]")
    keys = await page.locator("#help-keys tr").all_inner_texts()
    joined = "\n".join(keys)
    for key, label in (("F1", "帮助"), ("Alt+R", "就绪"), ("Alt+P", "暂停"), ("Alt+W", "话后完成"),
                       ("Alt+E", "延长"), ("Alt+A", "确认")):
        assert any(key in k and label in k for k in keys), (key, joined)
    await page.keyboard.press("Escape")
    await page.wait_for_selector("dialog#help:not([open])", state="attached")
    await page.keyboard.press("?")
    await page.wait_for_selector("dialog#help[open]")
    await page.keyboard.press("Escape")


async def test_no_wcag_violations_on_the_login_agent_and_head_pages(rig, page):
    await rig.user("1001", "agent", agent="1001")
    await rig.user("head-market", "head", ["market"])
    await page.goto(rig.base + "/login")
    assert await axe_violations(page) == []
    await sign_in(page, rig, "1001", "/agent")
    await page.wait_for_selector("#state-label:has-text('就绪')")
    await page.wait_for_selector("#work tr[data-kind='task']")
    assert await axe_violations(page) == []
    await page.set_viewport_size({"width": 1024, "height": 700})
    assert await page.evaluate("document.documentElement.scrollWidth") <= 1024
    await page.set_viewport_size({"width": 1280, "height": 800})
    await page.click("#logout-button")
    await page.wait_for_url("**/login")
    await sign_in(page, rig, "head-market", "/head")
    await page.wait_for_selector("#agents tr[data-agent='1001']")
    await page.wait_for_selector("#overdue tr[data-kind='task']")
    assert await axe_violations(page) == []
    await page.set_viewport_size({"width": 1024, "height": 700})        # the narrow laptop
    assert await axe_violations(page) == []
    assert await page.evaluate("document.documentElement.scrollWidth") <= 1024      # no sideways scrolling
    assert page.errors == []
