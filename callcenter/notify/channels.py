"""Delivery channels behind one interface: ``await channel.send(recipient, subject, body)`` (the
panel's channel, callcenter/notify/panel.py, is re-exported here).

A channel raises when it could not hand the message over; the `Notifier` records the error and
retries later. ``recipient`` is whatever the channel addresses: an agent id or ``head:<dept>``
for the panel, an E.164 number for SMS, an address for e-mail. Blocking clients (twilio's,
smtplib) run in the loop's thread executor so the event loop never waits on the network.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import re
import smtplib
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol, runtime_checkable

from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from ..domain.validation import mask_number
from .panel import PanelChannel

log = logging.getLogger(__name__)

_TWILIO_HOST = re.compile(r"^https://[A-Za-z0-9.-]*twilio\.com(?=/|$)")


@runtime_checkable
class Channel(Protocol):
    async def send(self, recipient: str, subject: str, body: str) -> None: ...


# --- panel ------------------------------------------------------------------------------------
# PanelChannel lives in callcenter/notify/panel.py (stored, pushed live, shown and acknowledged).


# --- SMS through Twilio -----------------------------------------------------------------------

class RebasedHttpClient(TwilioHttpClient):
    """twilio's own HTTP client, with ``https://*.twilio.com`` replaced by ``base_url``
    (a local test server, or a proxy in front of the API)."""

    def __init__(self, base_url: str, **kw):
        super().__init__(**kw)
        self.base_url = base_url.rstrip("/")

    def request(self, method, url, *args, **kw):
        return super().request(method, _TWILIO_HOST.sub(self.base_url, url, count=1), *args, **kw)


class SmsRejected(Exception):
    """Twilio accepted the request but reports the message as failed."""


class TwilioSms:
    """SMS through the Messages resource of the real twilio client."""

    def __init__(self, account_sid: str, auth_token: str, from_number: str,
                 base_url: str | None = None, timeout: float = 15.0):
        self.from_number = from_number
        http = RebasedHttpClient(base_url, timeout=timeout) if base_url else TwilioHttpClient(timeout=timeout)
        self.client = Client(account_sid, auth_token, http_client=http)

    @classmethod
    def from_settings(cls, sms) -> "TwilioSms | None":
        """From `TwilioSettings`; None when SMS is not configured."""
        if not sms.enabled:
            return None
        return cls(sms.account_sid, sms.auth_token.get_secret_value(), sms.from_number, sms.base_url)

    async def send(self, recipient: str, subject: str, body: str) -> None:
        loop = asyncio.get_running_loop()
        message = await loop.run_in_executor(None, functools.partial(
            self.client.messages.create, to=recipient, from_=self.from_number, body=body))
        if message.status in ("failed", "undelivered"):
            raise SmsRejected(f"twilio message {message.sid} {message.status}: "
                              f"{message.error_code} {message.error_message}")
        log.info("sms %s to %s: %s", message.sid, mask_number(recipient), message.status)


# --- e-mail through SMTP ----------------------------------------------------------------------

class SmtpEmail:
    """Plain-text UTF-8 e-mail through one SMTP server (optionally STARTTLS and login)."""

    def __init__(self, host: str, port: int, sender: str, username: str = "", password: str = "",
                 starttls: bool = False, timeout: float = 15.0):
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password, self.starttls = username, password, starttls
        self.timeout = timeout

    @classmethod
    def from_settings(cls, email) -> "SmtpEmail | None":
        """From `SmtpSettings`; None when e-mail is not configured."""
        if not email.enabled:
            return None
        return cls(email.host, email.port, email.sender, email.username,
                   email.password.get_secret_value(), email.starttls)

    def message(self, recipient: str, subject: str, body: str) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = recipient
        msg["Subject"] = subject
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        msg.set_content(body, charset="utf-8")
        return msg

    def _send(self, msg: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username:
                smtp.login(self.username, self.password)
            smtp.send_message(msg)

    async def send_message(self, msg: EmailMessage) -> None:
        """`msg` (from `message`, perhaps with attachments) sent in the loop's thread executor."""
        await asyncio.get_running_loop().run_in_executor(None, self._send, msg)

    async def send(self, recipient: str, subject: str, body: str) -> None:
        await self.send_message(self.message(recipient, subject, body))
        log.info("e-mail to %s: %s", recipient, subject)


def build_channels(notify_settings, panel: PanelChannel | None = None) -> dict[str, Channel]:
    """The configured channels by name: ``panel`` always, ``sms`` and ``email`` when set up."""
    channels: dict[str, Channel] = {"panel": panel or PanelChannel()}
    sms = TwilioSms.from_settings(notify_settings.sms)
    if sms:
        channels["sms"] = sms
    email = SmtpEmail.from_settings(notify_settings.email)
    if email:
        channels["email"] = email
    return channels
