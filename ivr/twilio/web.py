"""The Twilio webhooks: aiohttp routes under `ivr.twilio.path_prefix` (default /twilio), on a
listener of their own (`ivr.twilio.host`/`port`, behind the reverse proxy Twilio reaches).

Why not the panel's web server: its guard admits JSON bodies with a session or bearer token;
Twilio posts forms and authenticates with X-Twilio-Signature. Separate listeners keep the two
trust models apart (and the proxy can expose only the webhooks to the Internet).

    POST /twilio/voice    the number's voice URL (an incoming call)
    POST /twilio/gather   Gather results (menu, callback offer, survey)    ?s=state
    POST /twilio/record   Record results (the callback message)            ?s=state
    POST /twilio/queue    the Enqueue action (QueueResult; bridged: the survey)  ?s=&queue=&at=
    POST /twilio/wait     the Enqueue waitUrl (the wait prompt)
    POST /twilio/dial     the owner Dial's action (DialCallStatus; not answered: the queue)  ?s=
    POST /twilio/agent    an agent's leg (voice URL of the agent's client/number): <Dial><Queue>
    POST /twilio/bridge   the Queue noun's url: the caller is about to be bridged  ?agent=&queue=
    POST /twilio/status   the number's status callback (CallStatus: completed, no-answer, ...)
    POST /twilio/callback/dial    a callback's Dial action: the caller's leg (DialCallStatus)  ?key=
    POST /twilio/callback/status  a callback's status callback: the agent's leg (CallStatus)  ?key=

The two callback routes (ivr/twilio/dialout.py) hand the attempt's result, keyed by the attempt's
idempotency key, to the after-commit pass that records AMI callback results
(`AfterCommit.add_callback_results` -> `Callbacks.record`).

Every request must carry a valid X-Twilio-Signature over `ivr.twilio.public_url` + the path and
query as received, and the form: else 403 and a log line (numbers masked). Every value that
enters is checked (CallSid, numbers, digits, durations, states); a bad one gets 400, no traceback.
The caller's number (`From`) enters in canonical domestic form (callcenter/domain/numbers.py);
the dialled hotline (`To`) stays E.164, as the configuration names it.
"""
from __future__ import annotations

import logging
import math
import re

from aiohttp import web
from twilio.request_validator import RequestValidator

from callcenter.domain import ivr_flow as f
from callcenter.domain.numbers import canonical
from callcenter.domain.validation import InvalidValue, identifier, mask_numbers, phone_number
from . import twiml
from .calls import TwilioIvr
from .dialout import CALLER_RESULTS, TwilioDialer, attempt_key

log = logging.getLogger(__name__)
CALL_SID = re.compile(r"CA[0-9a-f]{32}")
RECORDING_SID = re.compile(r"RE[0-9a-f]{32}")
QUEUE_RESULTS = frozenset({"bridged", "bridging-in-progress", "queue-full", "redirected", "hangup", "error",
                           "system-error", "leave"})
CALL_STATUSES = frozenset({"queued", "ringing", "in-progress", "completed", "busy", "failed", "no-answer",
                           "canceled", "initiated"})
DIAL_STATUSES = frozenset({"completed", "answered", "busy", "no-answer", "failed", "canceled"})
MAX_FORM = 32 * 1024
MAX_SECONDS = 86400
TWIML = "text/xml"
IVR: web.AppKey[TwilioIvr] = web.AppKey("twilio_ivr")


class BadInput(Exception):
    pass


def _sid(params: dict, key: str = "CallSid") -> str:
    value = params.get(key, "")
    if not CALL_SID.fullmatch(value):
        raise BadInput(f"{key}: expected CA followed by 32 hex digits")
    return value


def _number(params: dict, key: str) -> str:
    try:
        return phone_number(params.get(key, ""))
    except InvalidValue as exc:
        raise BadInput(f"{key}: {exc}") from None


def _caller(params: dict) -> str:
    """The caller's number when it is one ('anonymous', a client: identity or garbage: ""), in
    canonical form (callcenter/domain/numbers.py): Twilio's +8613800000001 is the 13800000001 an
    Asterisk PBX reports, so owner routing, tasks and cases see one caller."""
    try:
        return phone_number(canonical(params.get("From", "")))
    except InvalidValue:
        return ""


def _seconds(params: dict, key: str, default: int | None = 0) -> int:
    value = params.get(key)
    if value in (None, "") and default is not None:
        return default
    if not isinstance(value, str) or not value.isdigit() or int(value) > MAX_SECONDS:
        raise BadInput(f"{key}: expected a number of seconds")
    return int(value)


def _choice(params: dict, key: str, allowed: frozenset, default: str | None = None) -> str:
    value = params.get(key, default)
    if value not in allowed:
        raise BadInput(f"{key}: expected one of {', '.join(sorted(allowed))}")
    return value


def _digits(params: dict) -> str:
    value = params.get("Digits", "")
    if len(value) > 32 or f.clean_digits(value) != value:
        raise BadInput("Digits: expected DTMF keys (0-9 * #)")
    return value


def _ident(query, key: str, what: str, required: bool = True) -> str | None:
    value = query.get(key)
    if value is None and not required:
        return None
    try:
        return identifier(value, what)
    except InvalidValue as exc:
        raise BadInput(f"{key}: {exc}") from None


class Webhooks:
    """The routes around one TwilioIvr; `validator` checks X-Twilio-Signature."""

    def __init__(self, ivr: TwilioIvr):
        self.ivr = ivr
        conf = ivr.conf
        self.public_url = conf.public_url
        self.validator = RequestValidator(conf.auth_token.get_secret_value())
        dialers = getattr(getattr(ivr.app, "callbacks", None), "dialers", None) or {}
        self.dialer = dialers.get(conf.pbx) or TwilioDialer(ivr.app.settings)    # reads results only

    def routes(self, prefix: str) -> list:
        names = {"voice": self.voice, "gather": self.gather, "record": self.record, "queue": self.queue,
                 "wait": self.wait, "dial": self.dial, "agent": self.agent, "bridge": self.bridge,
                 "status": self.status, "callback/dial": self.callback_dial,
                 "callback/status": self.callback_status}
        return [web.post(f"{prefix}/{name}", self._checked(handler)) for name, handler in names.items()]

    def _checked(self, handler):
        async def run(request: web.Request) -> web.StreamResponse:
            try:
                form = await request.post()
            except Exception as exc:             # too large, a broken body
                log.warning("Twilio webhook %s: unreadable form: %s", request.path, type(exc).__name__)
                return web.Response(status=400, text="unreadable form\n")
            params = {k: v for k, v in form.items() if isinstance(v, str)}
            signature = request.headers.get("X-Twilio-Signature", "")
            url = self.public_url + request.raw_path
            if not signature or len(form) != len(params) or not self.validator.validate(url, params, signature):
                sid = params.get("CallSid", "")
                log.warning("Twilio webhook %s refused: %s X-Twilio-Signature (call %s from %s)", request.path,
                            "bad" if signature else "missing", sid if CALL_SID.fullmatch(sid) else "?",
                            mask_numbers(params.get("From", "")[:24]) or "?")
                return web.Response(status=403, text="forbidden\n")
            try:
                text = await handler(request, params)
            except (BadInput, InvalidValue) as exc:
                log.warning("Twilio webhook %s refused: %s", request.path, mask_numbers(str(exc))[:200])
                return web.Response(status=400, text=f"bad request: {mask_numbers(str(exc))[:200]}\n")
            return web.Response(text=text, content_type=TWIML)
        return run

    # --- the handlers (params: the signed form; request.query: the signed URL's query) ---

    async def voice(self, request, p) -> str:
        name = p.get("CallerName", "")
        return await self.ivr.incoming(_sid(p), _number(p, "To"), _caller(p),
                                       name if len(name) <= 64 and name.isprintable() else "")

    async def gather(self, request, p) -> str:
        return await self.ivr.gather(_sid(p), request.query.get("s", ""), _number(p, "To"), _caller(p), _digits(p))

    async def record(self, request, p) -> str:
        recording = p.get("RecordingSid") or None
        if recording is not None and not RECORDING_SID.fullmatch(recording):
            raise BadInput("RecordingSid: expected RE followed by 32 hex digits")
        seconds = _seconds(p, "RecordingDuration")
        gone = _choice(p, "CallStatus", CALL_STATUSES, "in-progress") == "completed"
        return await self.ivr.record(_sid(p), request.query.get("s", ""), _number(p, "To"), _caller(p),
                                     seconds, recording, gone)

    async def queue(self, request, p) -> str:
        try:
            enqueued = float(request.query.get("at", ""))
        except ValueError:
            enqueued = math.nan
        if not (math.isfinite(enqueued) and 0 < enqueued < 1e11):
            raise BadInput("at: expected the moment of the Enqueue")
        return await self.ivr.queue_result(
            _sid(p), request.query.get("s", ""), _number(p, "To"), _caller(p),
            _ident(request.query, "queue", "a queue"), enqueued, _choice(p, "QueueResult", QUEUE_RESULTS),
            _seconds(p, "QueueTime"), _choice(p, "CallStatus", CALL_STATUSES, "in-progress"))

    async def wait(self, request, p) -> str:
        _sid(p)
        return self.ivr.wait()

    async def dial(self, request, p) -> str:
        return await self.ivr.dial_result(
            _sid(p), request.query.get("s", ""), _number(p, "To"), _caller(p),
            _choice(p, "DialCallStatus", DIAL_STATUSES), _seconds(p, "DialCallDuration"),
            _choice(p, "CallStatus", CALL_STATUSES, "in-progress"))

    async def agent(self, request, p) -> str:
        caller = p.get("From", "")
        if len(caller) > 200 or not caller.isprintable():
            raise BadInput("From: not an identity")
        return self.ivr.agent_leg(_sid(p), caller, _ident(request.query, "queue", "a queue", required=False))

    async def bridge(self, request, p) -> str:
        return await self.ivr.bridge(_sid(p), _ident(request.query, "agent", "an agent id"),
                                     _ident(request.query, "queue", "a queue"), _seconds(p, "QueueTime"))

    async def status(self, request, p) -> str:
        return self.ivr.status(_sid(p), _choice(p, "CallStatus", CALL_STATUSES))

    # --- callbacks (ivr/twilio/dialout.py): the attempt's key in the signed URL ---

    async def callback_dial(self, request, p) -> str:
        key = attempt_key(request.query.get("key"))
        status = _choice(p, "DialCallStatus", DIAL_STATUSES)
        result = self.dialer.dial_result(key, _sid(p), status, _seconds(p, "DialCallDuration"),
                                         self.ivr.app.clock.now())
        await self._attempt(result)
        gone = _choice(p, "CallStatus", CALL_STATUSES, "in-progress") != "in-progress"     # the agent hung up
        if gone or CALLER_RESULTS[status] == "answered":
            return twiml.empty()
        return twiml.text("对方未接通，本次回拨已记录。")        # the agent hears why the call ends

    async def callback_status(self, request, p) -> str:
        key = attempt_key(request.query.get("key"))
        await self._attempt(self.dialer.status_result(key, _sid(p), _choice(p, "CallStatus", CALL_STATUSES),
                                                      self.ivr.app.clock.now()))
        return twiml.empty()

    async def _attempt(self, result) -> None:
        if result is None:
            return
        log.info("Twilio callback %s: %s%s", result.key, result.result,
                 f" ({result.failed_leg} leg)" if result.failed_leg else "")
        await self.ivr.app.after_commit.add_callback_results([result])


def web_app(app, on_finished=None) -> web.Application:
    """The webhooks' aiohttp application (the server below runs it; tests put it on a test server)."""
    ivr = TwilioIvr(app, on_finished=_default_sink(app) if on_finished is None else on_finished)
    hooks = Webhooks(ivr)
    wapp = web.Application(client_max_size=MAX_FORM)
    wapp.add_routes(hooks.routes(app.settings.ivr.twilio.path_prefix))
    wapp[IVR] = ivr
    app.twilio = ivr
    return wapp


def _default_sink(app):
    """`app.ivr_records` (ivr/records.py: its `add`, or a `finished` method), looked up at each
    record (the store may be wired after us); without it the records stay in memory
    (`TwilioIvr.finished`)."""
    def store(record: dict):
        records = getattr(app, "ivr_records", None)
        take = getattr(records, "add", None) or getattr(records, "finished", None)
        return take(record) if callable(take) else None
    return store


class TwilioServer:
    """The webhook listener as one of `App.extras`."""

    def __init__(self, app, on_finished=None, host: str | None = None, port: int | None = None):
        conf = app.settings.ivr.twilio
        self.app_obj, self.on_finished = app, on_finished
        self.host = conf.host if host is None else host
        self.port = conf.port if port is None else port
        self.web = web_app(app, on_finished)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        runner = web.AppRunner(self.web, access_log=None)      # access logs would carry callers' numbers
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        log.info("Twilio webhooks listening on %s (public: %s%s)", self.addresses,
                 self.app_obj.settings.ivr.twilio.public_url, self.app_obj.settings.ivr.twilio.path_prefix)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def addresses(self) -> list:
        return self._runner.addresses if self._runner else []
