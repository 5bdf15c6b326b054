"""`llmproxy usage`: the usage report of GET /admin/usage as a table (or CSV, or JSON), read from
the local database or from a running gateway (--url)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import orjson

from ..admin.usage import columns, report, to_csv
from ..config import Settings
from ..context import Principal
from ..errors import GatewayError

_OPERATOR = Principal(kind="master", key_id=None, role="admin")  # whoever can read the file sees it all


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "usage",
        help="usage and spend by day, key, model and provider",
        description="Usage and spend summed by day, key, model and provider. Times are UTC; "
        "since is inclusive, until exclusive.",
    )
    p.add_argument("--since", help="start: a date (2026-11-01), an ISO 8601 time or unix seconds")
    p.add_argument("--until", help="end (exclusive), same forms as --since")
    p.add_argument("--days", help="today and the N-1 days before it (instead of --since)")
    p.add_argument(
        "--group-by",
        default="day,key,model,provider",
        help="comma-separated: day, key, user, model, provider (default: day,key,model,provider)",
    )
    p.add_argument("--key", dest="key_id", help="only this key id")
    p.add_argument("--user", help="only this user")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="print CSV")
    fmt.add_argument("--json", action="store_true", help="print the API's JSON")
    p.add_argument("--url", help="ask a running gateway (its /admin/usage) instead of reading the local database")
    p.add_argument("--api-key", help="key for --url (default: $LLMPROXY_MASTER_KEY)")
    p.add_argument("--data-dir", help="directory of the local database (default: the configured data_dir)")


def run(settings: Settings, args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    params = {
        name: value
        for name, value in (
            ("since", args.since),
            ("until", args.until),
            ("days", args.days),
            ("group_by", args.group_by),
            ("key_id", args.key_id),
            ("user", args.user),
        )
        if value
    }
    try:
        if args.url:
            doc = _fetch(args.url, params, args.api_key or (settings.master_key.value if settings.master_key else None))
        else:
            data_dir = args.data_dir or settings.data_dir
            doc = asyncio.run(_local(settings, data_dir, params))
    except GatewayError as exc:
        print(f"llmproxy usage: {exc.message}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as exc:
        print(f"llmproxy usage: {exc}", file=sys.stderr)
        return 1
    if args.csv:
        out.write(to_csv(doc))
    elif args.json:
        out.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        out.write(table(doc))
    return 0


async def _local(settings: Settings, data_dir: Any, params: Mapping[str, str]) -> dict[str, Any]:
    from dataclasses import replace
    from pathlib import Path

    from ..store.backends import open_stores
    from ..store.sqlite import SQLiteStore
    from ..store.usage_sql import SQLiteUsageStore

    if settings.database.url is not None:  # the shared database the gateways write to
        stores = await open_stores(replace(settings, data_dir=Path(data_dir)))
        try:
            return await report(stores.usage, params, _OPERATOR)
        finally:
            await stores.close()
    path = Path(data_dir) / "llmproxy.db"
    if not path.is_file():
        raise RuntimeError(
            f"no usage database at {path}; run the gateway first, pass --data-dir, or ask one with --url"
        )
    store = await SQLiteStore.open(path)
    try:
        return await report(SQLiteUsageStore.over(store.db), params, _OPERATOR)
    finally:
        await store.close()


def _fetch(url: str, params: Mapping[str, str], api_key: str | None) -> dict[str, Any]:
    import httpx

    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        resp = httpx.get(url.rstrip("/") + "/admin/usage", params=dict(params), headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        raise RuntimeError(f"could not reach {url}: {exc}") from None
    try:
        doc = resp.json()
    except ValueError:
        raise RuntimeError(f"{url} answered {resp.status_code} without JSON") from None
    if resp.status_code != 200 or not isinstance(doc, dict):
        message = (doc.get("error") or {}).get("message") if isinstance(doc, dict) else None
        raise RuntimeError(f"{url} answered {resp.status_code}: {message or resp.text[:200]}")
    return doc


def table(doc: Mapping[str, Any]) -> str:
    """The report as an aligned text table with a TOTAL line."""
    names = columns(doc)
    groups = len(doc["group_by"])
    rows = [[_cell(name, row[name]) for name in names] for row in doc["data"]]
    total = [_cell(name, doc["totals"][name]) if i >= groups else "" for i, name in enumerate(names)]
    if groups:
        total[0] = "TOTAL"
    header = [n.replace("_tokens", "").replace("_usd", " $") for n in names]
    widths = [max(len(header[i]), *(len(r[i]) for r in [*rows, total])) for i in range(len(names))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < groups else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    span = f"{doc.get('since') or 'the beginning'} to {doc.get('until') or 'now'}"
    out = [f"usage from {span} (UTC)", line(header), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    if rows:
        out.append(line(["-" * w for w in widths]))
    out.append(line(total))
    return "\n".join(out) + "\n"


def _cell(name: str, value: Any) -> str:
    if name.endswith("_usd"):
        return f"{value:.6f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value) if value not in (None, "") else "-"
