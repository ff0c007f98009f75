"""The `ivr.twilio:` configuration section (issue 12): Twilio Voice as a PBX for the same IVR flow
(ivr/twilio/), its cross-checks, and what it adds to the directory (the Twilio PBX id, its
agents' identities) and to call tracking (its hotline context).

What an operator writes (docs/operations.md "Connecting Twilio Voice"):

    ivr:
      twilio:
        enabled: true
        public_url: https://hotline.example.gov.cn      # what Twilio calls (the reverse proxy's address)
        auth_token: ${TWILIO_AUTH_TOKEN}                # checks X-Twilio-Signature; never logged
        account_sid: ${TWILIO_ACCOUNT_SID}              # callbacks: the REST API's account (ivr/twilio/dialout.py)
        pbx: twilio                                     # the PBX id of calls over Twilio
        path_prefix: /twilio
        port: 8081                                      # the webhook listener (behind the proxy)
        agents:
          - {agent: "1001", client: zhang}              # dialled as <Client>zhang</Client>
          - {agent: "1002", number: "+8613900001002", queue: q-market}
        queues: {q-market: market}                      # our queue -> Twilio queue name (default: same)

and on the departments: `hotlines: [{number: "+862162000001", pbx: twilio}]` (Twilio sends the
dialled number as E.164), `queues: [q-market]` (on every PBX) or `{name: q-market, pbx: twilio}`.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import Field, SecretStr

from .domain.validation import InvalidValue, identifier, phone_number
from .settings_sections import Strict

if TYPE_CHECKING:
    from .domain.directory import Directory
    from .settings import Settings

CONTEXT = "twilio"                       # the "dialplan context" of Twilio hotline calls (call tracking)
PUBLIC_URL = re.compile(r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~\-/]*)?")
PREFIX = re.compile(r"(/[A-Za-z0-9._\-]+)+")
CLIENT = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
ACCOUNT_SID = re.compile(r"AC[0-9a-f]{32}")
SIP = re.compile(r"sip:[A-Za-z0-9_.+\-]+@[A-Za-z0-9.\-]+(:[0-9]{1,5})?")


class TwilioAgent(Strict):
    agent: str                           # the agent's id (agents:)
    client: str | None = None            # a Twilio Client identity: <Dial><Client>
    number: str | None = None            # a phone number (E.164): <Dial><Number>
    sip: str | None = None               # a SIP URI: <Dial><Sip>
    queue: str | None = None             # the queue its agent leg takes callers from (default: ?queue=)

    @property
    def identity(self) -> str:
        """How the agent shows in call records (the interface): client:NAME, the number or the URI."""
        return f"client:{self.client}" if self.client else (self.number or self.sip or "")


class TwilioVoiceSettings(Strict):
    enabled: bool = False
    public_url: str = ""                 # scheme://host[:port][/path] Twilio requests (no trailing /)
    auth_token: SecretStr = SecretStr("")
    account_sid: str = ""                # callbacks over Twilio (REST calls.create); empty: no callbacks
    api_url: str = "https://api.twilio.com"   # the REST API's origin (a regional edge, or a local test server)
    api_timeout: float = Field(10.0, gt=0, le=60)   # seconds one REST request may take
    pbx: str = "twilio"                  # the PBX id of these calls (known to the directory when enabled)
    path_prefix: str = "/twilio"
    host: str = "127.0.0.1"              # the webhook listener (put the reverse proxy in front)
    port: int = Field(8081, ge=0, le=65535)
    agents: list[TwilioAgent] = Field(default_factory=list)
    queues: dict[str, str] = Field(default_factory=dict)   # our queue name -> Twilio queue name
    wait_prompt: str = Field("您的来电正在排队，请稍候，我们将尽快为您接通。", min_length=1)
    wait_pause: int = Field(15, ge=1, le=120)             # seconds of silence between wait prompts

    @property
    def pbx_ids(self) -> set[str]:
        return {self.pbx} if self.enabled else set()

    def contexts(self) -> dict[str, frozenset[str]]:
        return {self.pbx: frozenset({CONTEXT})} if self.enabled else {}

    def add_identities(self, directory: "Directory") -> None:
        """The agents' Twilio identities as interfaces of the Twilio PBX (AgentConnected, Dial)."""
        if self.enabled:
            for a in self.agents:
                directory.pbx_interface_agent[(self.pbx, a.identity)] = a.agent

    def twilio_queue(self, queue: str) -> str:
        return self.queues.get(queue, queue)

    def agent(self, agent_id: str | None) -> TwilioAgent | None:
        return next((a for a in self.agents if a.agent == agent_id), None)

    def agent_by_identity(self, caller: str) -> TwilioAgent | None:
        """The agent whose leg this is: From is client:NAME, the agent's number or its SIP URI."""
        return next((a for a in self.agents if caller and caller in (a.identity, a.sip, a.number)), None)


def check_twilio(settings: "Settings") -> None:
    """Errors name the key: "ivr.twilio.<key>: problem" (load_settings adds the file)."""
    tw = settings.ivr.twilio
    where = "ivr.twilio"
    if not tw.enabled:
        return
    if not PUBLIC_URL.fullmatch(tw.public_url) or tw.public_url.endswith("/"):
        raise ValueError(f"{where}.public_url: {tw.public_url!r} is not a URL like https://host[:port][/path] "
                         "(the address Twilio requests; no trailing slash, no query)")
    if not tw.auth_token.get_secret_value():
        raise ValueError(f"{where}.auth_token: empty; set it to ${{TWILIO_AUTH_TOKEN}} (the account's auth token)")
    if tw.account_sid and not ACCOUNT_SID.fullmatch(tw.account_sid):
        raise ValueError(f"{where}.account_sid: expected AC followed by 32 hex digits (the account's SID), "
                         "e.g. ${TWILIO_ACCOUNT_SID}")
    if not PUBLIC_URL.fullmatch(tw.api_url) or tw.api_url.endswith("/"):
        raise ValueError(f"{where}.api_url: {tw.api_url!r} is not a URL like https://api.twilio.com "
                         "(no trailing slash, no query)")
    try:
        identifier(tw.pbx, "a PBX id")
    except InvalidValue as exc:
        raise ValueError(f"{where}.pbx: {exc}") from None
    if tw.pbx in {p.id for p in settings.pbxes}:
        raise ValueError(f"{where}.pbx: {tw.pbx!r} is also an Asterisk PBX (pbxes:); give Twilio an id of its own")
    if not PREFIX.fullmatch(tw.path_prefix):
        raise ValueError(f"{where}.path_prefix: {tw.path_prefix!r} must look like /twilio (no trailing slash)")
    agents = {a.id for a in settings.agents}
    queues = {q.name for d in settings.departments for q in d.queues if q.pbx in ("*", tw.pbx)}
    seen: dict[str, int] = {}
    for i, a in enumerate(tw.agents):
        key = f"{where}.agents[{i}]"
        if a.agent not in agents:
            raise ValueError(f"{key}.agent: unknown agent {a.agent!r}")
        if sum(x is not None for x in (a.client, a.number, a.sip)) != 1:
            raise ValueError(f"{key}: give exactly one of client, number, sip (how the agent is dialled)")
        if a.client is not None and not CLIENT.fullmatch(a.client):
            raise ValueError(f"{key}.client: {a.client!r}: 1 to 64 of A-Z a-z 0-9 _ . -")
        if a.number is not None:
            try:
                phone_number(a.number)
            except InvalidValue as exc:
                raise ValueError(f"{key}.number: {exc}") from None
        if a.sip is not None and not SIP.fullmatch(a.sip):
            raise ValueError(f"{key}.sip: {a.sip!r} is not a SIP URI like sip:zhang@example.sip.twilio.com")
        if a.queue is not None and a.queue not in queues:
            raise ValueError(f"{key}.queue: {a.queue!r} is not a queue on PBX {tw.pbx!r}")
        if a.identity in seen:
            raise ValueError(f"{key}: {a.identity!r} is also agents[{seen[a.identity]}]")
        seen[a.identity] = i
    for name, twilio_name in tw.queues.items():
        if name not in queues:
            raise ValueError(f"{where}.queues.{name}: not a queue on PBX {tw.pbx!r}")
        if not CLIENT.fullmatch(twilio_name):
            raise ValueError(f"{where}.queues.{name}: {twilio_name!r}: 1 to 64 of A-Z a-z 0-9 _ . -")
    if not any(h.pbx == tw.pbx for d in settings.departments for h in d.hotlines):
        raise ValueError(f"{where}.enabled: no hotline is on PBX {tw.pbx!r}; add one to a department: "
                         f"hotlines: [{{number: \"+8621...\", pbx: {tw.pbx}}}]")
