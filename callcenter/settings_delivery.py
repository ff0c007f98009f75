"""Delivery rules of the archived reports (issue 13): the ``delivery`` list of the ``reports:``
section. Each rule says which report (``daily``), in which format, to whom (``heads``: every
department's head gets their own department's report, by e-mail and as a link in the panel;
an e-mail address: the whole hotline's report), for which departments, whether an empty report
is sent, and at what time (default: after the department's business hours end).

`check(settings)` checks what needs the rest of the configuration (department ids); its errors
name the key (``reports.delivery[0].departments``). reports/deliver.py acts on the rules.
"""
from __future__ import annotations

import re
from datetime import time
from typing import Literal

from pydantic import Field, field_validator

from .settings_sections import Strict

HEADS = "heads"
EMAIL = re.compile(r"^[^@\s<>,;\"]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?\.[A-Za-z]{2,}$")
FORMATS = ("html", "xlsx", "csv", "json")


class DeliveryRule(Strict):
    report: Literal["daily"] = "daily"
    format: Literal["html", "xlsx", "csv", "json"] = "html"
    recipients: list[str] = Field(default_factory=lambda: [HEADS], min_length=1)   # "heads" and/or addresses
    departments: list[str] = Field(default_factory=list)       # only these departments' heads; [] = every one
    send_if_empty: bool = False                                # a report without any call is sent anyway
    time: str | None = None                                    # "HH:MM" local; default: hours' end + 30 min

    @field_validator("recipients")
    @classmethod
    def _recipients(cls, recipients: list[str]) -> list[str]:
        for i, r in enumerate(recipients):
            if r != HEADS and not EMAIL.match(r):
                raise ValueError(f"recipients[{i}]: {r!r} is neither \"heads\" nor an e-mail address")
        return recipients

    @field_validator("time")
    @classmethod
    def _time(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError(f"{value!r} is not a time of day HH:MM (e.g. \"17:30\")")
        return value

    @property
    def at(self) -> time | None:
        return None if self.time is None else time(int(self.time[:2]), int(self.time[3:]))

    @property
    def heads(self) -> bool:
        return HEADS in self.recipients

    @property
    def addresses(self) -> list[str]:
        return [r for r in self.recipients if r != HEADS]


def check(settings) -> None:
    """Department ids of the rules must be configured ones (ValueError naming the key)."""
    reports = getattr(settings, "reports", None)
    known = {d.id for d in settings.departments}
    for i, rule in enumerate(getattr(reports, "delivery", None) or []):
        for j, department in enumerate(rule.departments):
            if department not in known:
                raise ValueError(f"reports.delivery[{i}].departments[{j}]: unknown department {department!r}")
