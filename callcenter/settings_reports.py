"""The `reports:` configuration section (issue 13): the targets the daily report judges its
figures against (shown beside each figure with pass or miss) and how long its list of lost
calls may be. Other report settings (e.g. delivery) are added to `ReportSettings` as fields of
their own."""
from __future__ import annotations

from pydantic import Field

from .settings_delivery import DeliveryRule  # issue 13: the delivery rules (reports/deliver.py)
from .settings_sections import Strict


class ReportTargets(Strict):
    """Fractions (0..1). `escalation_rate_max` empty: `cases.escalation_target`."""
    connect_rate: float = Field(0.95, ge=0, le=1)          # GB/T 33358-2016: >= 95 % over 24 hours
    service_level_15: float = Field(0.80, ge=0, le=1)      # answered within 15 s / offered
    service_level_60: float = Field(0.95, ge=0, le=1)      # answered within 60 s (1-minute response)
    resolution_rate: float = Field(0.90, ge=0, le=1)       # 解决率 >= 90 %
    escalation_rate_max: float | None = Field(None, ge=0, le=1)   # 12345 hand-offs <= 10 %


class ReportSettings(Strict):
    targets: ReportTargets = Field(default_factory=ReportTargets)
    lost_calls_per_department: int = Field(200, ge=0)      # the lost-call list's length per department
    delivery: list[DeliveryRule] = Field(default_factory=list)   # archived reports sent: settings_delivery.py
