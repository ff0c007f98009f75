"""The HTML daily report in headless Chromium: served by the API under its strict policy it renders
(three charts, visible text, no console errors, nothing sideways), prints to a PDF on A4 whose
pages are A4 and few, keeps its print rules (repeated table headers, charts not split) and gives
the sample picture docs/images/report-sample.png that the README links (refreshed with
CALLCENTER_SCREENSHOTS=1).

Data: the API test reads the rig's database (the real traces basic, transfer and ivr-hangup);
the print and sample tests render `reports.daily.build` over the real traces of
tests/test_report_formats.py (contract keys the build does not give yet filled in by hand).
"""
from __future__ import annotations

import re
import struct
from datetime import timedelta

from reports.render_html import render_html
from tests.browser.conftest import ROOT, screenshot_path, sign_in
from tests.conftest import MONDAY_10
from tests.test_report_formats import contract, real_report

SAMPLE = ROOT / "docs" / "images" / "report-sample.png"
A4_POINTS = (595.28, 841.89)                      # 210 x 297 mm


def watch_console(page) -> list[str]:
    """The page's script errors go to `page.errors`; its console errors and warnings to the list returned."""
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    messages: list[str] = []
    page.on("console", lambda m: messages.append(m.text) if m.type in ("error", "warning") else None)
    return messages


async def a4_page(browser):
    """A fresh zh-CN context at about an A4 page's width, its page watched: (context, page, problems)."""
    context = await browser.new_context(viewport={"width": 900, "height": 1270}, locale="zh-CN",
                                        device_scale_factor=1)
    page = await context.new_page()
    return context, page, watch_console(page)


async def prints_on_a4(page) -> bytes:
    """The print rules (headers repeat, charts and rows not split, colours kept) in print media,
    then the page printed as PDF on A4; returns the PDF."""
    await page.emulate_media(media="print")
    rules = await page.evaluate("""() => ({
        thead: getComputedStyle(document.querySelector('thead')).display,
        chart: getComputedStyle(document.querySelector('figure.chart')).breakInside,
        row: getComputedStyle(document.querySelector('tbody tr')).breakInside,
        heading: getComputedStyle(document.querySelector('h2')).breakAfter,
        colours: getComputedStyle(document.documentElement).printColorAdjust})""")
    assert rules == {"thead": "table-header-group", "chart": "avoid", "row": "avoid", "heading": "avoid",
                     "colours": "exact"}
    return await page.pdf(format="A4", prefer_css_page_size=True)


def a4_pages(pdf: bytes) -> int:
    """How many pages the PDF has, each checked to be A4."""
    assert pdf.startswith(b"%PDF-")
    boxes = {tuple(float(n) for n in m.groups()) for m in
             re.finditer(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", pdf)}
    assert boxes and all(abs(w - A4_POINTS[0]) < 2 and abs(h - A4_POINTS[1]) < 2 for w, h in boxes), boxes
    return len(re.findall(rb"/Type\s*/Page(?![s\w])", pdf))


async def shows_a_whole_report(page) -> None:
    assert await page.locator("svg").count() == 3
    assert await page.locator("svg rect.answered").count() > 0 and await page.locator("svg polyline").count() > 0
    for text in ("目标", "按部门", "按队列", "按坐席", "当日漏接来电", "说明"):
        assert await page.locator(f"h2:text-is('{text}')").is_visible(), text
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


async def test_the_served_report_renders_under_its_policy(rig, page):
    await rig.user("office", "office")
    await sign_in(page, rig, "office", "/head")
    page = await page.context.new_page()                        # the report alone in its tab
    problems = watch_console(page)
    response = await page.goto(rig.base + "/api/reports/daily?format=html&date=2026-11-23")
    assert response.status == 200 and "default-src 'none'" in response.headers["content-security-policy"]
    await page.wait_for_selector("h1:has-text('日报')")
    assert await page.locator("td:text-is('区市场监管局')").first.is_visible()
    assert await page.locator("tr.total td:text-is('合计')").first.is_visible()
    assert await page.locator("svg rect.offered").count() > 0           # calls by hour: the traces' hour
    assert problems == [] and page.errors == []


async def test_the_report_prints_on_a4(browser, settings, tmp_path):
    report = contract(real_report(settings))
    as_of = (MONDAY_10 + timedelta(hours=5, minutes=40)).isoformat()
    report.update(in_progress=True, as_of=as_of, generated_at=report.get("generated_at") or as_of)
    context, page, problems = await a4_page(browser)
    try:
        await page.set_content(render_html(report), wait_until="load")
        await shows_a_whole_report(page)
        assert await page.locator(".asof").inner_text() == "截至 15:40，当日数据尚未完结"
        await page.screenshot(path=str(screenshot_path("report-sample.png", tmp_path)), full_page=False)
        pdf = await prints_on_a4(page)
    finally:
        await context.close()
    assert problems == [] and page.errors == []
    pages = a4_pages(pdf)
    assert 2 <= pages <= 12, pages          # a day of 3 departments: a few pages, not one per table row
    (tmp_path / "report.pdf").write_bytes(pdf)


def test_the_sample_picture_is_a_png():
    data = SAMPLE.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 800 and height >= 1000
    assert "docs/images/report-sample.png" in (ROOT / "README.md").read_text(encoding="utf-8")
