"""`callcenter probe [--hotline N] [--pbx ID]`: place one probe now to each chosen hotline (default:
every published one, on each PBX it is dialled on), record it like a scheduled one (trigger
"manual") and print the results in zh-CN. It opens its own AMI connection to each PBX it needs
and listens only for its probes' answers; the running service (if any) drops the probe's call
from its figures by the probe's caller id. A PBX it cannot reach is recorded as `link_down`.
"""
from __future__ import annotations

import asyncio

from ..ami.client import AmiClient, Endpoint
from ..ami.translate import translate
from ..domain import events as ev
from ..domain.validation import InvalidValue, identifier, phone_number
from ..storage.store import Store
from .plan import targets
from .prober import Prober

RESULTS = {"answered": "接通", "no_answer": "无人接听", "busy": "忙", "congestion": "线路拥塞",
           "unreachable": "号码不可达", "link_down": "与交换机断开", "no_response": "交换机无响应", "failed": "呼叫失败"}


class ProbeUsageError(ValueError):
    pass


def chosen(settings, hotline: str | None, pbx: str | None) -> list:
    """The targets asked for; bad or unknown values are a clear error naming the option."""
    if not settings.probes.caller_id:
        raise ProbeUsageError("probes.caller_id: not configured; a probe must present a caller id of its own")
    if not settings.pbxes:
        raise ProbeUsageError("pbxes: no PBX configured; a probe needs one")
    if pbx is not None:
        try:
            identifier(pbx, "a PBX id")
        except InvalidValue as exc:
            raise ProbeUsageError(f"--pbx: {exc}") from None
        if pbx not in {p.id for p in settings.pbxes}:
            raise ProbeUsageError(f"--pbx: unknown PBX {pbx!r} (configured: "
                                  f"{', '.join(p.id for p in settings.pbxes) or 'none'})")
    if hotline is not None:
        try:
            phone_number(hotline)
        except InvalidValue as exc:
            raise ProbeUsageError(f"--hotline: {exc}") from None
    settings = settings.model_copy(update={"probes": settings.probes.model_copy(update={"hotlines": None})})
    out = [x for x in targets(settings) if hotline in (None, x.hotline) and pbx in (None, x.pbx)]
    if not out:
        raise ProbeUsageError(f"--hotline: {hotline} is not a published hotline" + (f" on PBX {pbx}" if pbx else "")
                              if hotline else "no published hotline to probe" + (f" on PBX {pbx}" if pbx else ""))
    return out


async def run_probe(settings, db_url: str, hotline: str | None = None, pbx: str | None = None, clock=None) -> str:
    todo = chosen(settings, hotline, pbx)
    store = Store(db_url, clock)
    clients: dict[str, AmiClient] = {}
    prober = Prober(settings, store, store.clock, clients)

    def sink(pbx_id: str, items: list, received) -> None:
        for item in items:
            event = item if isinstance(item, ev.Event) else translate(pbx_id, item, received)
            if event is not None:
                prober.on_event(event)
    try:
        current, head = await store.schema_status()
        if current != head:
            raise ProbeUsageError(f"--db {db_url}: schema revision {current}, this version needs {head}; start "
                                  "`callcenter serve` once on it to upgrade, then probe again")
        endpoints = {p.id: p for p in settings.pbxes}
        for pbx_id in sorted({x.pbx for x in todo}):
            e = endpoints[pbx_id]
            client = clients[pbx_id] = AmiClient(Endpoint(
                e.id, e.host, e.port, e.username, e.secret.get_secret_value(), e.connect_timeout, e.action_timeout,
                e.ping_interval, e.reconnect_min, e.reconnect_max), sink, store.clock)
            client.start()
            try:
                await asyncio.wait_for(client.connected.wait(), e.connect_timeout + 1)
            except asyncio.TimeoutError:
                pass                                     # recorded as link_down
        lines = []
        names = {d.id: d.name for d in settings.departments}
        for target in todo:
            row = await prober.probe(target, None, "manual")
            what = RESULTS.get(row["result"], row["result"])
            detail = f"，用时 {row['answer_seconds']:.2f} 秒" if row["result"] == "answered" else \
                (f"（{row['reason']}）" if row["reason"] else "")
            lines.append(f"{target.hotline}（{names.get(target.department, target.department)}，{target.pbx}）：{what}{detail}")
        return "\n".join(lines)
    finally:
        for client in clients.values():
            await client.stop()
        await store.close()
