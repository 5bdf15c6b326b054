"""Admin: usage and spend, summed by day, key, user, model and provider over a time range, as JSON
(with totals) or CSV. An admin sees everything; any other caller only the usage of their own keys."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Mapping
from datetime import date, datetime, UTC
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..context import Principal
from ..errors import InvalidRequest, PermissionDenied
from ..store import usage_sql
from ..store.protocols import UsageStore
from .common import caller, gateway, json_response

DEFAULT_GROUP_BY = ("day", "key", "model", "provider")


MAX_TIME = 253402300799.0  # 9999-12-31T23:59:59Z, the last second a date can name
MAX_DAYS = 36600


def parse_time(value: str, name: str) -> float:
    """Unix seconds from unix seconds, a date (its 00:00 UTC) or an ISO 8601 time (UTC unless it says)."""
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not 0 <= seconds <= MAX_TIME:  # NaN fails this too
            raise InvalidRequest(f"{name} must be unix seconds between 0 and {MAX_TIME:.0f}", param=name)
        return seconds
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC).timestamp()
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(
            f"{name} must be a date (2026-11-01), an ISO 8601 time or unix seconds, not {value!r}", param=name
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def time_range(params: Mapping[str, str], now: float | None = None) -> tuple[float | None, float | None]:
    """[since, until) from `since`/`until`, or `days` (today and the days before it, whole UTC days)."""
    since = parse_time(params["since"], "since") if params.get("since") else None
    until = parse_time(params["until"], "until") if params.get("until") else None
    if params.get("days"):
        if since is not None:
            raise InvalidRequest("give either days or since, not both", param="days")
        try:
            days = int(params["days"])
        except ValueError:
            raise InvalidRequest("days must be a whole number", param="days") from None
        if not 1 <= days <= MAX_DAYS:
            raise InvalidRequest(f"days must be between 1 and {MAX_DAYS}", param="days")
        today = (now if now is not None else time.time()) // usage_sql.DAY_S * usage_sql.DAY_S
        since = today - (days - 1) * usage_sql.DAY_S
    if since is not None and until is not None and until <= since:
        raise InvalidRequest("until must be after since", param="until")
    return since, until


def group_by(params: Mapping[str, str]) -> tuple[str, ...]:
    raw = params.get("group_by")
    if raw is None:
        return DEFAULT_GROUP_BY
    groups = tuple(dict.fromkeys(g.strip() for g in raw.split(",") if g.strip()))
    for g in groups:
        if g not in usage_sql.GROUPS:
            raise InvalidRequest(f"cannot group by {g!r}; use any of {', '.join(usage_sql.GROUPS)}", param="group_by")
    return groups


def scope(principal: Principal, key_id: str | None) -> tuple[str | None, str | None]:
    """(key_id, user) filters for this caller: an admin may ask for anything; a user sees the usage
    of their own keys (all of them, or one); a key without a user sees its own usage only."""
    if principal.role == "admin":
        return key_id, None
    if principal.user:
        return key_id, principal.user
    if principal.key_id and key_id in (None, principal.key_id):
        return principal.key_id, None
    raise PermissionDenied("you can only see the usage of your own keys")


async def report(store: UsageStore, params: Mapping[str, str], principal: Principal) -> dict[str, Any]:
    """The usage report that GET /admin/usage and `llmproxy usage` both print."""
    since, until = time_range(params)
    groups = group_by(params)
    key_id, user = scope(principal, params.get("key_id") or None)
    if params.get("user") and principal.role == "admin":
        user = params["user"]
    rows, source = await store.aggregate(group_by=groups, since=since, until=until, key_id=key_id, user=user)
    return {
        "object": "usage",
        "since": _iso(since),
        "until": _iso(until),
        "group_by": list(groups),
        "source": source,
        "data": rows,
        "totals": usage_sql.totals(rows),
    }


def columns(doc: Mapping[str, Any]) -> list[str]:
    """The report's columns: its groups, then the measures."""
    return [usage_sql.OUTPUT_NAMES[g] for g in doc["group_by"]] + list(usage_sql.MEASURES)


def to_csv(doc: Mapping[str, Any]) -> str:
    names = columns(doc)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    for row in doc["data"]:
        writer.writerow([_csv_value(row[n]) for n in names])
    return out.getvalue()


def _csv_value(value: Any) -> Any:
    return f"{value:.8f}" if isinstance(value, float) else value


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def wants_csv(request: Request) -> bool:
    fmt = request.query_params.get("format")
    if fmt is not None:
        if fmt not in ("json", "csv"):
            raise InvalidRequest("format must be json or csv", param="format")
        return fmt == "csv"
    return "text/csv" in request.headers.get("accept", "")


async def usage(request: Request) -> Response:
    principal = await caller(request, role="user")
    as_csv = wants_csv(request)
    doc = await report(gateway(request).usage_reports, request.query_params, principal)
    if as_csv:
        return Response(
            to_csv(doc),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": 'attachment; filename="usage.csv"'},
        )
    return json_response(doc)


ROUTES = [Route("/admin/usage", usage, methods=["GET"])]
