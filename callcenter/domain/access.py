"""Who may do what, on which department and agent: the pure authorisation rules (issue 10).

An `Identity` is the authenticated person (or the PBX's dialplan) behind a request: a role, the
departments a head answers for, the agent id an agent (or a head who also takes calls) is bound to.
A `Scope` is what the configuration says about the thing acted on: its department(s) and the agent
it belongs to (a task's assignee, a case's owner, the agent whose presence changes). The functions
here answer yes or no; the web layer turns a no into 403. Standard library only.

Roles:
  agent   their own tasks, cases, wrap-ups, callbacks and presence (pause, unpause, logout)
  head    everything in their departments: reads, reassignment, acting on tasks, guard override
  office  reads every department (caller numbers masked) and acts on the service office's pool
  admin   manages users (CLI); no call data
  pbx     the dialplan's owner-route lookups only
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Role(str, Enum):
    AGENT = "agent"
    HEAD = "head"
    OFFICE = "office"
    ADMIN = "admin"
    PBX = "pbx"


ROLES = tuple(r.value for r in Role)


class Policy(str, Enum):
    """What a route needs, before the view looks at the thing it touches."""
    ANONYMOUS = "anonymous"          # health, log-in
    ANY = "any"                      # any signed-in person (not the PBX): me, log-out
    ROUTE = "route"                  # the dialplan's owner route: pbx, office, heads
    WORK = "work"                    # call data (tasks, cases, wrap-ups): agent, head, office
    SUPERVISE = "supervise"          # coverage reads: head, office


POLICY_ROLES: dict[Policy, frozenset[Role]] = {
    Policy.ANONYMOUS: frozenset(Role),
    Policy.ANY: frozenset({Role.AGENT, Role.HEAD, Role.OFFICE, Role.ADMIN}),
    Policy.ROUTE: frozenset({Role.PBX, Role.HEAD, Role.OFFICE}),
    Policy.WORK: frozenset({Role.AGENT, Role.HEAD, Role.OFFICE}),
    Policy.SUPERVISE: frozenset({Role.HEAD, Role.OFFICE}),
}


@dataclass(frozen=True)
class Identity:
    user: str
    role: Role
    departments: frozenset[str] = field(default_factory=frozenset)
    agent: str | None = None
    via: str = "token"               # token or session

    def to_dict(self) -> dict:
        return {"user": self.user, "role": self.role.value, "departments": sorted(self.departments),
                "agent": self.agent, "via": self.via}


class RoleError(ValueError):
    """A user definition that cannot be stored (wrong combination of role, departments, agent)."""


def check_user(role: str, departments: list[str], agent: str | None) -> Role:
    """The shape a user must have: an agent is bound to an agent id; a head has departments; the
    other roles have neither departments nor (but for a head or office who also takes calls) an agent."""
    try:
        r = Role(role)
    except ValueError:
        raise RoleError(f"unknown role {role!r}; one of {', '.join(ROLES)}") from None
    if r is Role.AGENT and not agent:
        raise RoleError("an agent user needs --agent (the configured agent id)")
    if r is Role.HEAD and not departments:
        raise RoleError("a head needs at least one --department")
    if r is not Role.HEAD and departments:
        raise RoleError(f"--department is for heads, not for role {r.value}")
    if r in (Role.ADMIN, Role.PBX) and agent:
        raise RoleError(f"--agent is not for role {r.value}")
    return r


def allowed(identity: Identity | None, policy: Policy) -> bool:
    if policy is Policy.ANONYMOUS:
        return True
    return identity is not None and identity.role in POLICY_ROLES[policy]


def reads_department(identity: Identity, department: str | None) -> bool:
    """May see everything of the department (its lists, its coverage)."""
    if identity.role is Role.OFFICE:
        return True
    return identity.role is Role.HEAD and department in identity.departments


def manages_department(identity: Identity, department: str | None, office_department: str | None) -> bool:
    """May act on the department's work: reassign, close or note its tasks. The office acts on
    the service office's pool only."""
    if identity.role is Role.HEAD:
        return department in identity.departments
    return identity.role is Role.OFFICE and department is not None and department == office_department


def is_self(identity: Identity, agent: str | None) -> bool:
    return identity.agent is not None and agent == identity.agent


def reads_item(identity: Identity, department: str | None, agent: str | None) -> bool:
    """May read one task or case: an agent their own (assignee/owner), heads and office by department."""
    return is_self(identity, agent) if identity.role is Role.AGENT else reads_department(identity, department)


def acts_on_item(identity: Identity, department: str | None, agent: str | None, office_department: str | None) -> bool:
    """May change one task (close, note) or act for one agent: one's own, or the department's."""
    return is_self(identity, agent) or manages_department(identity, department, office_department)


def acts_for_agent(identity: Identity, agent: str, agent_departments: frozenset[str]) -> bool:
    """May pause, unpause or log out `agent` (whose posts are in `agent_departments`): the agent
    themself, or a head of one of those departments."""
    if is_self(identity, agent):
        return True
    return identity.role is Role.HEAD and bool(agent_departments & identity.departments)


def reads_agent(identity: Identity, agent: str, agent_departments: frozenset[str]) -> bool:
    """May see an agent's pending wrap-ups."""
    return identity.role is Role.OFFICE or acts_for_agent(identity, agent, agent_departments)


def overrides_guard(identity: Identity, department: str) -> bool:
    """May override the A/B guard for a post of `department`: only its head."""
    return identity.role is Role.HEAD and department in identity.departments


def reassigns(identity: Identity, department: str) -> bool:
    """May move a case to another owner: only the department's head."""
    return identity.role is Role.HEAD and department in identity.departments


def sees_number(identity: Identity, department: str | None, agent: str | None) -> bool:
    """Whether a caller's number is shown in full: to the agent the record belongs to (assignee,
    owner, answering agent) and to the heads of its department; masked for everyone else (the
    office, an agent looking at someone else's record)."""
    return is_self(identity, agent) or (identity.role is Role.HEAD and department in identity.departments)
