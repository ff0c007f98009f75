"""Request models: every body and query string the API accepts, as pydantic v2 models.

Values are checked with the shared rules of callcenter/domain/validation.py (phone numbers,
identifiers, one-line text, notes; a caller's number then put in canonical form,
callcenter/domain/numbers.py); unknown fields are refused, enums are enums, dates lie in
2000-01-01..2099-12-31. `body(Model, data)` and `query(Model, request.query)` turn the first
problem into an `ApiError` 400 naming the field: ``{"error": code, "message": "field: problem",
"field": name}`` (query strings also carry ``"parameter"``). A model's own rule may raise
`PydanticCustomError(code, message)`; its code becomes the answer's ``error``.

Who acts is never a field: it is the authenticated identity (callcenter/web/security.py).
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from multidict import MultiMapping
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from ..domain import numbers, validation
from ..domain.cases import CaseStatus, Disposition
from .errors import ApiError

MAX_LIMIT = 5000
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)
MAX_PAUSE_REASON = 100                     # it goes to the PBX (QueuePause Reason)


def _rule(check, *args, **kwargs):
    def run(value):
        try:
            if isinstance(value, str):
                value.encode("utf-8")              # a lone surrogate (\ud800 in JSON) is no text
            return check(value, *args, **kwargs)
        except UnicodeEncodeError:
            raise PydanticCustomError("invalid", "not valid Unicode text") from None
        except validation.InvalidValue as exc:
            raise PydanticCustomError("invalid", str(exc)) from None
    return BeforeValidator(run)


def _bad(message: str):
    raise PydanticCustomError("invalid", message)


def _day(value):
    if not isinstance(value, str):
        raise PydanticCustomError("invalid", "expected a date YYYY-MM-DD")
    try:
        day = date.fromisoformat(value) if len(value) == 10 else None
    except ValueError:
        day = None
    if day is None:
        raise PydanticCustomError("invalid", "expected a date YYYY-MM-DD, got {value!r}", {"value": value[:40]})
    if not FIRST_DAY <= day <= LAST_DAY:
        raise PydanticCustomError("invalid", f"expected a date from {FIRST_DAY} to {LAST_DAY}")
    return day


def _limit(value):
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 6:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_LIMIT:
        return value
    raise PydanticCustomError("invalid", f"expected an integer from 1 to {MAX_LIMIT}")


def _enum(values: tuple[str, ...], code: str = "invalid"):
    def run(value):
        if value not in values:
            shown = repr(value)[:60] if isinstance(value, str) else type(value).__name__
            raise PydanticCustomError(code, f"expected one of {', '.join(values)}, got {shown}")
        return value
    return BeforeValidator(run)


def _caller(value, in_query: bool = False):
    """A caller's number: checked as any phone number, then in canonical form (numbers.py), as the
    PBX adapters store it: +8613800000001 and 008613800000001 find 13800000001's calls, cases and
    tasks. In a query string an unencoded leading + arrives as a space (form encoding): read as +."""
    if in_query and isinstance(value, str) and value[:1] == " " and value[1:2].isdigit():
        value = "+" + value[1:]
    return validation.phone_number(numbers.canonical(validation.phone_number(value)))


def _caller_or_empty(value, in_query: bool = False):
    return "" if value == "" else _caller(value, in_query)


Phone = Annotated[str, _rule(validation.phone_number)]
Caller = Annotated[str, _rule(_caller)]                     # a caller's number (a body field)
CallerQuery = Annotated[str, _rule(_caller, in_query=True)]   # a caller's number (a query parameter)
OptionalCaller = Annotated[str, _rule(_caller_or_empty, in_query=True)]    # empty: a withheld number
Ident = Annotated[str, _rule(validation.identifier)]
NullableIdent = Annotated[str | None, _rule(lambda v: None if v is None else validation.identifier(v))]
Line = Annotated[str, _rule(validation.single_line, 200)]
LongLine = Annotated[str, _rule(validation.single_line, 500)]
PauseReason = Annotated[str, _rule(validation.single_line, MAX_PAUSE_REASON, allow_empty=True)]
Note = Annotated[str, _rule(validation.note_text)]
Reason = Annotated[str, _rule(validation.note_text, 500)]
Day = Annotated[date, BeforeValidator(_day)]
Limit = Annotated[int, BeforeValidator(_limit)]
Version = Annotated[int, BeforeValidator(lambda v: v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**31
                                          else _bad("expected a version number (an integer)"))]
Password = Annotated[str, _rule(validation.single_line, 1024)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def version_of(change) -> dict:
    """`version=` for a service call when the request names one: the change then applies only to
    that version of the case or task (else 409 version_conflict)."""
    return {} if change.version is None else {"version": change.version}


# --- query strings ----------------------------------------------------------------------------

class DayQuery(Model):
    date: Day = None

    def bounds(self, tz: ZoneInfo, today: date) -> tuple[datetime, datetime]:
        start = datetime.combine(self.date or today, time(0), tz)
        return start, start + timedelta(days=1)


class TaskList(DayQuery):
    status: Annotated[str, _enum(("open", "closed"))] = None
    department: Ident = None
    assignee: Ident = None                # an agent id, or "pool"
    caller: CallerQuery = None
    overdue: Annotated[str, _enum(("true", "false"))] = None
    limit: Limit = None


class CaseList(DayQuery):
    status: Annotated[str, _enum(tuple(s.value for s in CaseStatus))] = None
    department: Ident = None
    owner: Ident = None
    caller: CallerQuery = None
    limit: Limit = None


class RouteQuery(Model):
    caller: OptionalCaller = ""
    hotline: Phone = None
    department: Ident = None
    pbx: Ident = None

    @model_validator(mode="after")
    def _one_of(self) -> "RouteQuery":
        if self.hotline is None and self.department is None:
            raise PydanticCustomError("missing_parameter", "give hotline (the number dialled) or department",
                                      {"field": "hotline"})
        if self.hotline is not None and self.department is not None:
            raise PydanticCustomError("conflicting_parameters", "give hotline or department, not both",
                                      {"field": "department"})
        return self


class DepartmentQuery(Model):
    department: Ident = None


class CoverageQuery(DayQuery):
    department: Ident = None


# --- bodies -----------------------------------------------------------------------------------

class Login(Model):
    user: Ident
    password: Password


class TaskChange(Model):
    """Close (closure, optional note), reassign (assignee; null sends it to the pool; optional
    reason, kept in the history), or note."""
    closure: Ident = None
    assignee: NullableIdent = None
    reason: Reason = None                        # with assignee only
    note: Note = None
    version: Version = None                      # compare-and-set: the task's version as last read

    @model_validator(mode="after")
    def _one_thing(self) -> "TaskChange":
        given = self.model_fields_set - {"version"}
        if "reason" in given and "assignee" not in given:
            raise PydanticCustomError("conflicting_fields", "reason goes with assignee (a reassignment)",
                                      {"field": "reason"})
        given = given - {"reason"}
        if "assignee" in given and given - {"assignee"}:
            raise PydanticCustomError("conflicting_fields", "assignee cannot be combined with closure or note; "
                                      "send them in separate requests", {"field": "assignee"})
        if not given:
            raise PydanticCustomError("missing_field", "nothing to do: give closure, assignee or note",
                                      {"field": "closure"})
        if self.closure is None and "assignee" not in given and not (self.note or "").strip():
            raise PydanticCustomError("invalid", "note: expected a non-empty note", {"field": "note"})
        return self

    @property
    def reassign(self) -> bool:
        return "assignee" in self.model_fields_set


class Empty(Model):
    """A body with nothing in it: the agent who calls back is the one signed in."""


class CallbackRequest(Model):
    caller: Caller
    hotline: Phone = None
    department: Ident = None
    pbx: Ident = None
    ref: Line = None


DISPOSITION_ONLY = {"work_order": Disposition.ESCALATED_12345, "directed_to": Disposition.OUT_OF_SCOPE}


class WrapUp(Model):
    disposition: Annotated[str, _enum(tuple(d.value for d in Disposition), "unknown_disposition")]
    item: LongLine = None
    work_order: Annotated[str, _rule(validation.single_line, 64)] = None
    directed_to: Line = None
    note: Note = ""
    version: Version = None                      # changing a disposition: the case's version as last read

    @model_validator(mode="after")
    def _pairs(self) -> "WrapUp":
        for name, only in DISPOSITION_ONLY.items():
            if getattr(self, name) is not None and self.disposition != only:
                raise PydanticCustomError("conflicting_fields", f"{name} goes only with disposition {only.value}",
                                          {"field": name})
            if self.disposition == only and getattr(self, name) is None:
                raise PydanticCustomError("missing_field", f"{name}: required for {only.value}", {"field": name})
        return self


class CaseChange(Model):
    """Reassign (owner, with a reason; heads only) or close (status resolved, optional note)."""
    owner: Ident = None
    reason: Reason = None
    status: Annotated[str, _enum(("resolved",))] = None
    note: Note = ""
    version: Version = None                      # compare-and-set: the case's version as last read

    @model_validator(mode="after")
    def _one_thing(self) -> "CaseChange":
        given = self.model_fields_set
        if self.owner is not None and self.status is not None:
            raise PydanticCustomError("conflicting_fields", "owner and status cannot be combined; send them "
                                      "in separate requests", {"field": "status"})
        if self.owner is not None:
            if "note" in given:
                raise PydanticCustomError("conflicting_fields", "note goes with status; a reassignment takes a reason",
                                          {"field": "note"})
            if not (self.reason or "").strip():
                raise PydanticCustomError("missing_field", "reason: required (why the case changes hands)",
                                          {"field": "reason"})
        elif self.status is not None:
            if self.reason is not None:
                raise PydanticCustomError("conflicting_fields", "reason goes with owner; closing takes a note",
                                          {"field": "reason"})
        else:
            raise PydanticCustomError("missing_field", "nothing to do: give owner (with reason) or status",
                                      {"field": "owner"})
        return self


class Override(Model):
    reason: Reason = None


class AgentRequest(Model):
    """A pause, unpause, logout, login, ready or extend: ``{"reason"?, "override"?: {"reason"}}``;
    the head who overrides the guard is the one signed in."""
    reason: PauseReason = ""
    override: Override = None

    @model_validator(mode="after")
    def _override_reason(self) -> "AgentRequest":
        if self.override is not None and not (self.override.reason or "").strip():
            raise PydanticCustomError("reason_required", "an override needs a reason (override.reason)",
                                      {"field": "override.reason"})
        return self


# --- parsing ----------------------------------------------------------------------------------

def body(model: type[Model], data) -> Model:
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _refusal(exc, "field", model) from None


def query(model: type[Model], params: MultiMapping[str]) -> Model:
    for name in params:
        if len(params.getall(name)) > 1:
            raise ApiError(400, "invalid_parameter", f"{name}: given more than once", parameter=name, field=name)
    try:
        return model.model_validate(dict(params))
    except ValidationError as exc:
        raise _refusal(exc, "parameter", model) from None


def path(name: str, value: str) -> str:
    """A path segment that names an agent, PBX or call: an identifier, else 400."""
    try:
        return validation.identifier(value)
    except validation.InvalidValue as exc:
        raise ApiError(400, "invalid_parameter", f"{name}: {exc}", parameter=name, field=name) from None


def _refusal(exc: ValidationError, kind: str, model: type[Model]) -> ApiError:
    errors = exc.errors(include_url=False, include_input=False)
    extra = sorted(".".join(map(str, e["loc"])) for e in errors if e["type"] == "extra_forbidden")
    allowed = ", ".join(model.model_fields)
    if extra:
        code = "unknown_parameters" if kind == "parameter" else "unknown_fields"
        what = "query parameter(s)" if kind == "parameter" else "field(s)"
        return ApiError(400, code, f"unknown {what}: {', '.join(extra)}; allowed: {allowed}",
                        **{kind + "s": extra, "field": extra[0]})
    first = errors[0]
    name = ".".join(str(part) for part in first["loc"])
    message = first["msg"]
    if first["type"] == "missing":
        code = "missing_parameter" if kind == "parameter" else "missing_field"
        return ApiError(400, code, f"{name}: required", **_names(kind, name))
    code = first["type"] if first["type"] in CUSTOM_CODES else (
        "invalid_parameter" if kind == "parameter" else "invalid_field")
    if not name:                                   # a rule of the whole model names its field
        field = (first.get("ctx") or {}).get("field")
        return ApiError(400, code, message, **(_names(kind, field) if field else {}))
    return ApiError(400, code, f"{name}: {message}", **_names(kind, name))


def _names(kind: str, name: str) -> dict:
    return {"field": name, "parameter": name} if kind == "parameter" else {"field": name}


CUSTOM_CODES = {"missing_parameter", "conflicting_parameters", "conflicting_fields", "missing_field",
                "unknown_disposition", "reason_required"}
