"""A department head in headless Chromium gets the day's report as a panel notification with a
link to the archive (reports/deliver.py, agents/static/notes.js) and opens it with the panel's
own session: the archived HTML report, as stored."""
from __future__ import annotations

from callcenter.settings_delivery import DeliveryRule
from reports.deliver import Deliverer
from tests.browser.conftest import sign_in
from tests.conftest import MONDAY_10


async def test_a_head_opens_the_report_linked_in_a_panel_notification(rig, page):
    await rig.user("head-market", "head", ["market"])
    await sign_in(page, rig, "head-market", "/head")
    await page.wait_for_selector("#conn.conn-ok")
    rig.app.settings.reports.delivery = [DeliveryRule(format="html", recipients=["heads"], departments=["market"])]
    deliverer = Deliverer(rig.app)
    counts = await deliverer.deliver(deliverer.plan(MONDAY_10.date()))    # by hand, as `report deliver`
    assert counts["sent"] == 1                                            # the panel (no e-mail configured)
    archived = await deliverer.archive.find(MONDAY_10.date(), "market", "html")

    link = page.locator("#notes li.unacked a.report-link")
    await link.wait_for(timeout=3000)
    assert await link.inner_text() == "下载报表"
    assert await link.get_attribute("href") == f"/api/reports/archive/{archived.id}"
    response = await page.request.get(rig.base + f"/api/reports/archive/{archived.id}")
    assert response.status == 200 and await response.body() == archived.content
    assert "区市场监管局" in archived.content.decode("utf-8")
    assert page.errors == []
