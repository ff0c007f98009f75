"""The HTML period report (reports/render_period.py) in headless Chromium, as the daily report's
is checked in tests/browser/test_report_html.py: served by the API under its strict policy it
renders (the rates chart, the ranking, no console errors, nothing sideways), and it prints to a
PDF on A4 whose pages are A4 and few, keeping the print rules (repeated table headers, the chart
not split, colours kept).

Data: the served test reads the rig's database (the real traces of Monday 23 November); the print
test renders the month of the story of tests/test_report_period.py (October 2026, two ranked
departments, every rate missing its target, the agents' rows summed over the month).
"""
from __future__ import annotations

import re
from datetime import date

from callcenter.storage.store import Store
from reports import period
from reports.render_period import render_period_html
from tests.browser.conftest import sign_in
from tests.browser.test_report_html import a4_page, a4_pages, prints_on_a4, watch_console
from tests.test_report_period import NOW, store_story


async def test_the_served_period_report_renders_under_its_policy(rig, page):
    await rig.user("office", "office")
    await sign_in(page, rig, "office", "/head")
    page = await page.context.new_page()                        # the report alone in its tab
    problems = watch_console(page)
    response = await page.goto(rig.base + "/api/reports/period?kind=month&format=html&date=2026-11-23")
    assert response.status == 200 and "default-src 'none'" in response.headers["content-security-policy"]
    await page.wait_for_selector("h1:has-text('热线月报 2026年11月')")
    assert await page.locator("svg").count() == 1
    assert await page.locator("svg rect.connect").count() > 1             # a department's bar and the legend
    assert await page.locator("svg line.target").count() == 4            # two targets, each in the legend too
    assert await page.locator("h2:text-is('部门排名')").is_visible()
    assert await page.locator("tr.total td:text-is('合计')").first.is_visible()
    agent = page.locator("section.agents tbody tr", has_text="张伟（1001）").locator("td")   # answered the traces' calls
    assert int(await agent.nth(2).inner_text()) >= 1 and re.fullmatch(r"\d+:\d\d:\d\d", await agent.nth(5).inner_text())
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert problems == [] and page.errors == []


async def test_the_period_report_prints_on_a4(browser, settings, tmp_path):
    store = Store(f"sqlite:///{tmp_path}/story.db")
    await store.migrate()
    await store_story(store)
    try:
        report = await period.period_report(store, settings, "month", date(2026, 10, 20), NOW)
    finally:
        await store.close()
    context, page, problems = await a4_page(browser)
    try:
        await page.set_content(render_period_html(report), wait_until="load")
        for text in ("目标", "图表", "部门排名", "按部门", "按队列", "按坐席", "说明"):
            assert await page.locator(f"h2:text-is('{text}')").is_visible(), text
        agents = page.locator("section.agents tbody tr")
        assert await agents.count() == 16
        first = agents.first.locator("td")
        assert [await first.nth(i).inner_text() for i in (0, 2, 5, 9)] == ["张伟（1001）", "4", "86:30:00", "66.7%"]
        assert await page.locator("svg text.value.miss").count() == 4   # 75 % and 66.7 %, 75 % and 0 %: all missed
        first = page.locator("table.ranking tbody tr").first
        assert await first.locator("td").nth(1).inner_text() == "区市场监管局"
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        chart = await page.locator("svg.rates").bounding_box()
        assert chart and chart["width"] > 500 and chart["height"] > 200
        pdf = await prints_on_a4(page)
    finally:
        await context.close()
    assert problems == [] and page.errors == []
    pages = a4_pages(pdf)
    assert 2 <= pages <= 10, pages          # a month of 8 departments: a few pages, not one per table row
    (tmp_path / "period-report.pdf").write_bytes(pdf)
