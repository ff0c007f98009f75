"""The simulated callers (a mixin of PbxSimulator): who calls, with which intention, and what
they answer the IVR.

- Intentions come from a shuffled deck (``DECK``: answered, missed by A, transferred, hung up in
  the IVR, short and long abandons, timed out), so every dozen calls shows the whole mix.
- Caller IDs: mostly mobiles, some Shanghai landlines, a few withheld; some with names. With the
  FastAGI IVR, now and then an answered caller calls the same department again (``REPEAT_SHARE``:
  their case is open, so the IVR dials its owner first: 首问负责).
- Keys (``agi_caller_keys``, for agi_client.AgiCall's GET DATA): at a department menu most press an
  item's digit (the menus the configuration gives that hotline), some press 0, a few a wrong key
  or nothing; the deck's ``ivr_hangup`` callers hang up; after hours most leave a callback request
  (1, a message, #), others wait for the goodbye or hang up; at the survey most press 1, some 2
  or 3, some nothing, a few hang up.
"""
from __future__ import annotations

from ..settings_ivr import flow_for_hotline
from .model import DECK, GIVEN_NAMES, MOBILE_PREFIXES, SURNAMES, UNKNOWN, Agent, Call

SURVEY_MINDS = ("1", "2", "3", "", "hangup")         # satisfied, basic, dissatisfied, silent, hangs up
SURVEY_WEIGHTS = (55, 20, 10, 12, 3)
REPEAT_SHARE = 0.25         # arrivals that are an answered caller calling the same department again


class Callers:
    """Needs PbxSimulator's rng, timing, settings, queues, calls and the IVR state it keeps."""

    def agi_caller_keys(self, call: Call, prompt: str) -> tuple[float, str | None]:
        """(seconds until the answer, the keys: "" none pressed, None: the caller hangs up)."""
        kind, digits = self._prompts_of(call.two.exten).get(prompt, ("menu", ()))
        rng, t = self.rng, self.timing
        heard = self._uniform(t.prompt)
        think = heard + self._uniform(t.key)
        silent = heard + t.key_timeout
        if kind == "survey":
            if call.survey_key is None:
                call.survey_key = rng.choices(SURVEY_MINDS, SURVEY_WEIGHTS)[0]
            if call.survey_key == "hangup":
                return think / 2, None
            return (think, call.survey_key) if call.survey_key else (silent, "")
        if kind == "closed":
            roll = rng.random()
            return (think, "1") if roll < 0.65 else (silent, "") if roll < 0.85 else (think / 2, None)
        if kind == "gap":
            return think, "1" if rng.random() < 0.5 else "2"
        call.menu_answers += 1
        if call.intent == "ivr_hangup" and not call.transferred:
            return think * rng.uniform(0.2, 0.9), None
        if call.transferred or not digits:
            return think, "0"                            # a transferred caller asks for a person
        roll = rng.random()
        if call.menu_answers == 1 and roll < 0.06:
            return silent, ""
        wrong = [d for d in "987654321" if d not in digits]
        if call.menu_answers == 1 and roll < 0.12 and wrong:
            return think, wrong[0]
        if roll < 0.25:
            return think, "0"
        return think, rng.choice(digits)

    def _prompts_of(self, hotline: str) -> dict[str, tuple[str, tuple[str, ...]]]:
        """The sound files the hotline's flow plays -> what the caller hears: a menu (its digits),
        the closed-hours offer, the coverage-gap offer, the survey (from the same configuration)."""
        known = self._prompts.get(hotline)
        if known is None:
            flow = flow_for_hotline(self.settings, hotline, self.pbx)
            known = {}
            if flow is not None:
                p = flow.prompts
                known = {p.closed.file: ("closed", ()), p.gap_callback.file: ("gap", ()), p.survey.file: ("survey", ())}
                menus = [flow.menu]
                while menus:
                    menu = menus.pop()
                    known[menu.prompt.file] = ("menu", tuple(e.digit for e in menu.entries))
                    menus += [e.submenu for e in menu.entries if e.submenu is not None]
            self._prompts[hotline] = known
        return known

    def _answered_by(self, call: Call, agent: Agent, department: str) -> None:
        """Remember an answered caller (the service opens a case of the answering queue's
        department with the agent as its owner)."""
        if self.agi is not None and call.two.cid[0] != "anonymous":
            entry = (call.two.cid, department, agent.id)
            self.answered_callers = [e for e in self.answered_callers if e[:2] != entry[:2]][-49:] + [entry]

    def _repeat_caller(self) -> tuple[tuple[str, str], str] | None:
        """Now and then an answered caller calls the same department again (about the same matter:
        the case is open), picked among those whose case owner is logged in, not paused and
        reachable (maybe on another call), so that the demo shows owner routing (首问负责)."""
        if self.agi is None or not self.answered_callers or self.rng.random() >= REPEAT_SHARE:
            return None
        busy = {c.two.cid[0] for c in self.calls}
        ready = {m.agent.id for q in self.queues.values() for m in q.members
                 if m.logged_in and not m.paused and not m.agent.unreachable}
        candidates = [(cid, d) for cid, d, agent in self.answered_callers if cid[0] not in busy and agent in ready]
        if not candidates:
            return None
        self.repeat_calls += 1
        return self.rng.choice(candidates)

    def _deal(self) -> str:
        if not self._deck:
            self._deck = list(DECK)
            self.rng.shuffle(self._deck)
            if not self._decks:          # the first deck: every kind within eight calls
                rare = [card for card in self._deck if card != "answer"]
                answers = ["answer"] * (len(self._deck) - len(rare))
                self._deck = answers[:1] + rare[:3] + answers[1:2] + rare[3:] + answers[2:]
            self._decks += 1
        return self._deck.pop(0)

    def _caller(self) -> tuple[str, str]:
        """A caller ID: mostly mobiles, some Shanghai landlines, a few withheld; some names."""
        rng = self.rng
        if self._callers and rng.random() < 0.1:
            return rng.choice(self._callers)                # calls again
        roll = rng.random()
        if roll < 0.02:
            return ("anonymous", "Anonymous")
        if roll < 0.17:
            number = f"021{rng.choice('56')}9{rng.randrange(10**6):06d}"
        else:
            number = f"{rng.choice(MOBILE_PREFIXES)}{rng.randrange(10**8):08d}"
        name = rng.choice(SURNAMES) + rng.choice(GIVEN_NAMES) if rng.random() < 0.4 else UNKNOWN
        self._callers = (self._callers + [(number, name)])[-50:]
        return number, name
