"""Callbacks over Twilio: the agent's phone first, then the caller (the Twilio side of
callcenter/followup/callbacks.py, which holds it as the dialer of the Twilio PBX).

`TwilioDialer.prepare` checks every value of one attempt (its key, the agent's Twilio identity, the
caller's number in E.164 via callcenter/domain/numbers.py `e164`, the department's hotline on the
Twilio PBX as caller id); `dial` sends one REST `calls.create` with the real twilio client, in a
thread (the client blocks), and never re-sends it (the REST API has no idempotency key):

    To: the agent (client:NAME, +86... or sip:...)   From: the hotline   Timeout: ring_timeout
    Twiml: <Say>回拨提示</Say><Dial callerId=hotline timeout action=.../callback/dial?key=KEY>
           <Number>+86 caller</Number></Dial>       (runs once the agent answers)
    StatusCallback: .../callback/status?key=KEY      (the agent's call ended: its CallStatus)

Both URLs are on `ivr.twilio.public_url` + `path_prefix`, so Twilio signs them like every other
webhook (ivr/twilio/web.py checks X-Twilio-Signature, then `attempt_key` the key). What they
report becomes the `AttemptResult` an AMI callback gives (callcenter/domain/callbacks.py):

    Dial action, DialCallStatus completed/answered   answered (talk: DialCallDuration)
    Dial action, busy / no-answer / failed / canceled  the caller's leg failed (busy, no_answer, ...)
    status callback, busy / no-answer / failed / canceled   the agent's leg failed (the caller
                                                     was never dialled)
    status callback, completed without a Dial result   failed, no leg to blame (the attempt is
                                                     over; a new one may start)

A REST answer 4xx/5xx, an API that cannot be reached, or an order that fails the last check is
`DialRefused` (no call rings); a request sent whose answer is lost or unreadable (read timeout,
connection dropped) is `DialUnconfirmed` (the attempt stays pending until its result or its
expiry). The REST origin is `ivr.twilio.api_url`
(default https://api.twilio.com; a regional edge, a proxy, or a test's local server), set
through the client's HttpClient seam (`ApiHttpClient`).
"""
from __future__ import annotations

import asyncio
import functools
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

import requests
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from twilio.twiml.voice_response import Dial, VoiceResponse

from callcenter.domain.callbacks import KEY_PREFIX, AttemptResult
from callcenter.domain.numbers import e164
from callcenter.domain.validation import InvalidValue, identifier, mask_numbers, phone_number
from callcenter.followup.callbacks import DialRefused, DialUnconfirmed
from callcenter.settings_twilio import CLIENT, SIP

log = logging.getLogger(__name__)
TWILIO_API = "https://api.twilio.com"
KEY = re.compile(re.escape(KEY_PREFIX) + r"[0-9]{1,18}-[0-9]{1,6}")
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
SID = re.compile(r"CA[0-9a-f]{32}")
AGENT_PROMPT = "正在为您回拨来电群众，请稍候。"
CALLER_RESULTS = {"completed": "answered", "answered": "answered", "busy": "busy", "no-answer": "no_answer",
                  "failed": "failed", "canceled": "no_answer"}
AGENT_RESULTS = {"busy": "busy", "no-answer": "no_answer", "failed": "failed", "canceled": "no_answer"}
# reason_code as an AMI callback gives it: the Originate reason of the agent's leg (4 answered,
# 3 no answer, 5 busy, 0 failed, 1 hung up)
AGENT_REASONS = {"busy": "5", "no-answer": "3", "failed": "0", "canceled": "1"}
ANSWERED = "4"
MAX_SECONDS = 86400


def _invalid(message: str, code: str = "invalid_field") -> InvalidValue:
    exc = InvalidValue(message)
    exc.code = code                   # read by Callbacks: invalid_number -> 409, else 400
    return exc


def attempt_key(value: object) -> str:
    """A callback attempt's idempotency key as this service writes it (cb-<task>-<n>)."""
    if not isinstance(value, str) or not KEY.fullmatch(value):
        raise InvalidValue("key: expected a callback attempt key like cb-12-1")
    return value


def _e164(value: object, what: str) -> str:
    if not isinstance(value, str) or not E164.fullmatch(value):
        raise _invalid(f"{what}: expected a number in E.164 (+ and 7 to 15 digits)",
                       "invalid_number" if what == "the caller's number" else "invalid_field")
    return value


def _target(kind: str, value: str) -> str:
    """The agent as calls.create's To: client:NAME, +86..., sip:... (each checked)."""
    if kind == "client" and CLIENT.fullmatch(value):
        return f"client:{value}"
    if kind == "number":
        return _e164(value, "the agent's number")
    if kind == "sip" and SIP.fullmatch(value):
        return value
    raise _invalid(f"the agent's Twilio {kind} identity is not dialable")


@dataclass(frozen=True)
class Order:
    """One calls.create, every value checked."""
    key: str
    agent: str
    to: str                          # the agent's leg
    from_: str                       # the hotline (E.164), also the caller id the caller sees
    caller: str                      # the caller in E.164
    timeout: int                     # seconds each leg rings
    twiml: str
    status_callback: str


class ApiHttpClient(TwilioHttpClient):
    """twilio's requests-based HttpClient with the REST origin replaced by `api_url` (when it is not
    Twilio's own); no retries (a calls.create is never sent twice)."""

    def __init__(self, api_url: str, timeout: float):
        super().__init__(timeout=timeout, max_retries=0)
        self.api_url = api_url.rstrip("/")

    def request(self, method, url, *args, **kwargs):
        if self.api_url != TWILIO_API and url.startswith(TWILIO_API + "/"):
            url = self.api_url + url[len(TWILIO_API):]
        return super().request(method, url, *args, **kwargs)


class TwilioDialer:
    """The dialer of the Twilio PBX for Callbacks (callcenter/followup/callbacks.py)."""

    def __init__(self, settings, client: Client | None = None):
        self.conf = settings.ivr.twilio
        self.pbx = self.conf.pbx
        self.base = self.conf.public_url + self.conf.path_prefix
        self.ring_timeout = max(5, min(600, int(settings.followup.callback.ring_timeout)))
        self.hotlines = {d.id: [str(h) for h in d.hotlines if getattr(h, "pbx", "*") == self.pbx]
                         for d in settings.departments}
        self._client = client

    @property
    def client(self) -> Client:
        if self._client is None:
            conf = self.conf
            self._client = Client(conf.account_sid, conf.auth_token.get_secret_value(), conf.account_sid,
                                  http_client=ApiHttpClient(conf.api_url, conf.api_timeout),
                                  environment={"TWILIO_EDGE": "", "TWILIO_REGION": ""})   # the configuration decides
        return self._client

    def unready(self) -> str | None:
        if not self.conf.account_sid:
            return "ivr.twilio.account_sid is not set (the REST API account that places callbacks)"
        return None

    def url(self, name: str, key: str) -> str:
        return f"{self.base}/callback/{name}?" + urlencode({"key": attempt_key(key)})

    def prepare(self, key: str, agent: str, number: str, department: str | None) -> Order:
        """The order for one attempt; InvalidValue (with a `code`) for anything not dialable."""
        attempt_key(key)
        identifier(agent, "an agent id")
        target = self.conf.agent(agent)
        if target is None:
            raise _invalid(f"agent {agent} has no Twilio identity (ivr.twilio.agents)")
        to = _target(*(("client", target.client) if target.client else
                       ("number", target.number) if target.number else ("sip", target.sip or "")))
        try:
            phone_number(number)
        except InvalidValue as exc:
            raise _invalid(f"the caller's number: {exc}", "invalid_number") from None
        caller = _e164(e164(number), "the caller's number")
        hotlines = self.hotlines.get(department or "", [])
        if not hotlines:
            raise _invalid(f"department {department} has no hotline on PBX {self.pbx} (its caller id)")
        hotline = _e164(hotlines[0], "the hotline")
        r = VoiceResponse()
        r.say(AGENT_PROMPT, language="zh-CN")
        d = Dial(caller_id=hotline, timeout=self.ring_timeout, action=self.url("dial", key), method="POST")
        d.number(caller)
        r.append(d)
        return Order(key, agent, to, hotline, caller, self.ring_timeout, str(r), self.url("status", key))

    def _check(self, order: Order) -> None:
        """Once more, right where the REST request is built."""
        if not isinstance(order.key, str) or not KEY.fullmatch(order.key):
            raise DialRefused("not a callback attempt key")
        if not (order.to.startswith("client:") and CLIENT.fullmatch(order.to[7:]) or E164.fullmatch(order.to)
                or SIP.fullmatch(order.to)):
            raise DialRefused("the agent's identity is not dialable")
        for value in (order.from_, order.caller):
            if not E164.fullmatch(value):
                raise DialRefused("a number is not in E.164")
        if order.status_callback != self.url("status", order.key) or self.url("dial", order.key) not in order.twiml:
            raise DialRefused("a callback URL is not this service's")
        if f"<Number>{order.caller}</Number>" not in order.twiml or not 5 <= order.timeout <= 600:
            raise DialRefused("the TwiML does not dial the checked number")

    def _create(self, order: Order) -> str:
        self._check(order)
        call = self.client.calls.create(
            to=order.to, from_=order.from_, twiml=order.twiml, timeout=order.timeout,
            status_callback=order.status_callback, status_callback_method="POST")
        sid = getattr(call, "sid", None) or ""
        return sid if SID.fullmatch(sid) else ""

    async def dial(self, order: Order) -> str:
        """Place the call (one REST request, in a thread); its CallSid ("" if Twilio gave none)."""
        loop = asyncio.get_running_loop()
        try:
            sid = await loop.run_in_executor(None, functools.partial(self._create, order))
        except (TwilioRestException, TwilioServiceException) as exc:     # an HTTP error answer: no call
            message = getattr(exc, "msg", None) or getattr(exc, "title", None) or ""
            raise DialRefused(f"Twilio answered {exc.status}"
                              + (f" (error {exc.code}: {str(message)[:160]})" if exc.code else "")) from None
        except (requests.ConnectTimeout, requests.exceptions.SSLError, requests.exceptions.InvalidURL) as exc:
            raise DialRefused(f"the Twilio API was not reached ({type(exc).__name__})") from None
        except requests.ConnectionError as exc:
            if _never_connected(exc):
                raise DialRefused("the Twilio API was not reached (connection refused)") from None
            raise DialUnconfirmed(f"the Twilio API's answer was lost ({type(exc).__name__})") from None
        except requests.RequestException as exc:          # a read timeout: it may be ringing
            raise DialUnconfirmed(f"the Twilio API's answer was lost ({type(exc).__name__})") from None
        except DialRefused:
            raise                                          # the order failed its last check: not sent
        except Exception as exc:                           # an unreadable answer (TwilioException, bad JSON):
            raise DialUnconfirmed(f"unreadable answer from the Twilio API ({type(exc).__name__})") from None
        log.info("callback %s: Twilio call %s to agent %s, caller %s", order.key, sid or "?", order.agent,
                 mask_numbers(order.caller))
        return sid

    # --- what Twilio reports (the webhooks, ivr/twilio/web.py, checked every value first) ---

    def dial_result(self, key: str, sid: str, status: str, duration: int, now: datetime) -> AttemptResult:
        """The Dial action: how the caller's leg ended."""
        result = CALLER_RESULTS[status]
        answered = now - timedelta(seconds=duration) if result == "answered" else None
        return AttemptResult(self.pbx, attempt_key(key), "", f"Twilio/{sid}", result,
                             "" if result == "answered" else "caller", ANSWERED, answered or now, answered, now, sid)

    def status_result(self, key: str, sid: str, status: str, now: datetime) -> AttemptResult | None:
        """The agent's call ended: a failed agent leg, or (completed) the end of an attempt whose
        Dial result did not come (recorded results are never overwritten). None: not final."""
        if status in AGENT_RESULTS:
            return AttemptResult(self.pbx, attempt_key(key), "", f"Twilio/{sid}", AGENT_RESULTS[status],
                                 "agent", AGENT_REASONS[status], now, None, now, sid)
        if status == "completed":
            return AttemptResult(self.pbx, attempt_key(key), "", f"Twilio/{sid}", "failed", "", ANSWERED,
                                 now, None, now, sid)
        return None


def _never_connected(exc: requests.ConnectionError) -> bool:
    """True when the connection was never made (refused, no route, DNS): nothing was sent."""
    text = repr(exc)
    return any(marker in text for marker in ("NewConnectionError", "Connection refused", "NameResolution",
                                             "No route to host", "Network is unreachable"))
