"""The configuration sections that say how the service runs (thresholds, follow-up, cases,
the after-commit pipeline, notifications, the web server, instances and the database), as
opposed to what it serves (PBXes, departments, agents and posts: callcenter/settings.py, which
loads both and re-exports these classes).
"""
from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Thresholds(Strict):
    short_abandon_seconds: float = Field(5, ge=0)
    service_level_seconds: list[float] = Field(default_factory=lambda: [15, 60])
    exclude_short_abandons: bool = False   # from the connect-rate denominator


class CallbackSettings(Strict):
    context: str = "callback"             # dialplan context that dials the caller
    dial_prefix: str = ""                 # prepended to the caller's number (e.g. "0" for an outside line)
    ring_timeout: float = Field(30, gt=0) # seconds the agent's phone rings before the attempt fails


class FollowUpSettings(Strict):
    contact_workdays: int = Field(1, ge=0)          # first contact deadline ("1515": 1 workday)
    short_abandons_create_tasks: bool = True        # flagged either way
    withheld_create_tasks: bool = False             # withheld numbers cannot be called back
    max_attempts: int = Field(3, ge=1)              # callback attempts before "unreachable" may be recorded
    retry_spacing_minutes: float = Field(30, ge=0)  # business minutes between attempts
    warn_before_minutes: float = Field(120, ge=0)   # warn the assignee this long before the deadline
    check_interval_seconds: float = Field(60, gt=0) # how often deadlines are checked
    acknowledge_callers_by_sms: bool = False        # SMS the caller: missed call noted, reply by deadline
    callback: CallbackSettings = Field(default_factory=CallbackSettings)


class PipelineSettings(Strict):
    """What acts on committed calls (callcenter/aftercommit.py)."""
    batch_size: int = Field(200, ge=1)              # calls per transaction
    max_attempts: int = Field(3, ge=1)              # failed tries of one call's step before it is parked
    tick_seconds: float = Field(5, gt=0)            # a pass at least this often (retries, callback expiry)
    callback_margin_seconds: float = Field(30, ge=0)   # a callback still pending after ring_timeout + this expires
    stop_seconds: float = Field(3, ge=0)            # at shutdown, keep catching up this long at most
    linger_seconds: float = Field(0.1, ge=0)        # a pass waits this long for a batch to fill


class SurveyFollowUpSettings(Strict):
    """A 不满意 (dissatisfied) survey rating's follow-up (issue 12, 好差评; callcenter/followup/ratings.py)."""
    contact_workdays: int = Field(1, ge=0)          # contact the caller within 1 workday
    simple_workdays: int = Field(5, ge=1)           # rectification of a simple matter
    complex_workdays: int = Field(13, ge=1)         # ... of a complex one (the case's disposition follow_up_complex)
    link_grace_minutes: float = Field(30, gt=0)     # a session whose call is not stored by then is acted on alone
    link_seconds: float = Field(2, gt=0)            # sessions are matched with their stored calls this often


class CaseSettings(Strict):
    simple_workdays: int = Field(5, ge=1)           # "1515": simple matters solved in 5 workdays
    complex_workdays: int = Field(15, ge=1)         # complex ones in 15
    knowledge_gap_workdays: int = Field(5, ge=1)    # add the missing answer to the knowledge base
    wrapup_minutes: float = Field(10, ge=0)         # an answered call without disposition after this is pending
    escalation_target: float = Field(0.10, ge=0, le=1)   # hand-offs to 12345 kept under 10 %


class TwilioSettings(Strict):
    account_sid: str = ""
    auth_token: SecretStr = SecretStr("")
    from_number: str = ""                          # the SMS sender, E.164
    base_url: str | None = None                    # override https://api.twilio.com (tests, proxies)

    @property
    def enabled(self) -> bool:
        return bool(self.account_sid and self.auth_token.get_secret_value() and self.from_number)


class SmtpSettings(Strict):
    host: str = ""
    port: int = Field(25, ge=1, le=65535)
    username: str = ""
    password: SecretStr = SecretStr("")
    sender: str = ""
    starttls: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.host and self.sender)


class NotifySettings(Strict):
    sms: TwilioSettings = Field(default_factory=TwilioSettings)
    email: SmtpSettings = Field(default_factory=SmtpSettings)
    warning_channels: list[str] = Field(default_factory=lambda: ["panel", "sms"])      # to the assignee
    escalation_channels: list[str] = Field(default_factory=lambda: ["panel", "sms", "email"])  # to the head


class WebTls(Strict):
    cert: str = Field(min_length=1)          # PEM certificate chain; relative to the configuration directory
    key: str = Field(min_length=1)           # PEM private key


class WebSettings(Strict):
    host: str = "127.0.0.1"                  # not loopback: needs tls, or behind_proxy (settings_checks.py)
    port: int = Field(8080, ge=0, le=65535)
    tls: WebTls | None = None                # serve HTTPS directly
    behind_proxy: bool = False               # a TLS reverse proxy in front (docs/operations.md)
    allowed_origins: list[str] = Field(default_factory=list)   # Origins a session may act from (and WebSockets)
    # panel sessions and log-ins (issue 10; docs/api.md "Authentication")
    session_idle_minutes: float = Field(30, gt=0)        # a session unused this long ends
    session_max_hours: float = Field(12, gt=0)           # and every session ends this long after log-in
    login_max_failures: int = Field(5, ge=1)             # failed log-ins per user name within the window
    login_max_failures_per_address: int = Field(20, ge=1)   # failed log-ins per client address
    login_window_minutes: float = Field(15, gt=0)

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        """An Origin as browsers send it: scheme://host[:port], no path, no trailing slash."""
        for origin in origins:
            if not ORIGIN.fullmatch(origin):
                raise ValueError(f"{origin!r} is not an origin: expected http(s)://host[:port] "
                                 "with no path (e.g. https://hotline.example.gov.cn)")
        return origins


class InstanceSettings(Strict):
    """Restarts and more than one instance (docs/architecture.md "Checkpoints and more than one
    instance"): how often open calls and sessions are checkpointed, how often the lock is polled."""
    checkpoint_seconds: float = Field(10, gt=0)     # open calls and agent sessions saved this often
    leader_poll_seconds: float = Field(1, gt=0)     # PostgreSQL: the advisory lock is tried / checked this often


class DatabaseSettings(Strict):
    """Database faults (docs/operations.md "Database faults"): timeouts, retries, the journal."""
    connect_timeout: float = Field(5, gt=0)         # PostgreSQL: seconds to open a connection
    statement_timeout: float = Field(15, gt=0)      # PostgreSQL: seconds one statement may take
    pool_timeout: float = Field(5, gt=0)            # seconds to wait for a free pooled connection
    busy_timeout: float = Field(5, ge=0)            # SQLite: seconds to wait for another writer's lock
    stall_seconds: float = Field(3, gt=0)           # a write unanswered this long marks the database degraded
    retry_seconds: float = Field(1, gt=0)           # held writes are retried this often while it is down
    probe_seconds: float = Field(5, gt=0)           # after this long without a write, probe it (SELECT 1)
    stop_seconds: float = Field(3, ge=0)            # at shutdown, try the database this long, then journal
    journal: str | None = None                      # default: next to the SQLite file, else ./callcenter-journal.jsonl


class PauseReason(Strict):
    name: str = Field(min_length=1, max_length=40)  # what the agent picks, and the PBX's pause reason
    max_minutes: float = Field(0, ge=0)             # paused longer alarms the head; 0 = no maximum


class WrapupSettings(Strict):
    seconds: float = Field(60, ge=0)                # after each answered call; 0 = no wrap-up
    extend_seconds: float = Field(60, gt=0)         # one "extend" adds this much
    max_seconds: float = Field(300, ge=0)           # a wrap-up never lasts longer than this in all
    require_disposition: bool = False               # "ready" refused until the call has a disposition
    reason: str = Field("话后处理", min_length=1, max_length=40)   # the pause reason the PBX shows


class PanelSettings(Strict):
    """The agent panel and head dashboard (issue 11; docs/api.md)."""
    pause_reasons: list[PauseReason] = Field(default_factory=lambda: [
        PauseReason(name="小休", max_minutes=15), PauseReason(name="用餐", max_minutes=60),
        PauseReason(name="培训", max_minutes=120), PauseReason(name="会议", max_minutes=90)])
    wrapup: WrapupSettings = Field(default_factory=WrapupSettings)
    longest_wait_target_seconds: float = Field(60, gt=0)    # head dashboard alarm
