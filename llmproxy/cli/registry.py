"""`llmproxy registry status | versions | diff A [B] | rollback V | update`: the registry files, from
the command line. Works on the files directly (under the same lock as the gateway); a running
gateway sharing them swaps the new version in within `registry.watch_interval_s`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

import orjson

from ..config import Settings
from ..registry import RegistryError, load_document, load_registry
from ..registry.versions import diff_documents, list_versions, read_version
from ..scheduler import RegistryBusy, RegistryUpdater
from ..store.backends import open_stores


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "registry",
        help="the model registry: versions, diff, rollback, update from pricing pages",
        description="Inspect and change registry/models.json. Every change is a new version; "
        "running gateways pick it up by themselves.",
    )
    p.add_argument("--path", help="models.json to work on (default: the configured registry.path)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    cmd = p.add_subparsers(dest="registry_command", required=True)
    cmd.add_parser("status", help="version, each provider's last scrape, models without a price")
    cmd.add_parser("versions", help="list the versions kept under versions/")
    diff = cmd.add_parser("diff", help="models added and removed, prices changed, from version A to B")
    diff.add_argument("a", type=int)
    diff.add_argument("b", type=int, nargs="?", help="default: the current version")
    back = cmd.add_parser("rollback", help="make version V current again (written as a new version)")
    back.add_argument("version", type=int)
    update = cmd.add_parser("update", help="scrape the providers' pricing pages now and write a new version")
    update.add_argument(
        "--force", action="store_true", help="apply scrapes held back for losing models or moving prices too much"
    )
    update.add_argument(
        "--provider", action="append", dest="providers", help="only this provider (repeatable; default: all)"
    )


def run(settings: Settings, args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout  # looked up now, not at import, so a redirected stdout is honoured
    if args.path:
        settings = replace(settings, registry_path=Path(args.path))
    path = Path(settings.registry_path)
    try:
        result = _dispatch(settings, path, args)
    except RegistryBusy as exc:
        print(f"llmproxy registry: {exc}; try again in a moment", file=sys.stderr)
        return 1
    except RegistryError as exc:
        print(f"llmproxy registry: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"llmproxy registry: {exc}", file=sys.stderr)
        return 1
    if args.json:
        out.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        out.write(_text(args.registry_command, result))
    return 0


def _dispatch(settings: Settings, path: Path, args: argparse.Namespace) -> dict[str, Any]:
    command = args.registry_command
    if command == "status":
        registry = load_registry(path)
        return {
            "version": registry.version,
            "generated_at": registry.generated_at,
            "path": registry.path,
            "models": len(registry.models),
            "providers": dict(registry.providers),
            "unpriced": list(registry.unpriced),
            "stale": [m.id for m in registry.models if m.stale],
        }
    if command == "versions":
        current, _ = load_document(path)
        return {"current": current["version"], "versions": [v.as_dict() for v in list_versions(path)]}
    if command == "diff":
        b = args.b if args.b is not None else load_document(path)[0]["version"]
        return diff_documents(read_version(path, args.a), read_version(path, b))
    return asyncio.run(_write(settings, args))


async def _write(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """A refresh or rollback, published to the deployment's database when one is configured."""
    stores = await open_stores(settings) if settings.database.url is not None else None
    try:
        updater = RegistryUpdater(settings, history=stores.registry if stores is not None else None)
        if args.registry_command == "rollback":
            written, changes = await updater.rollback(args.version)
            return {"version": written["version"], "rolled_back_to": args.version, "diff": changes}
        report = await updater.refresh(force=args.force, providers=args.providers)
        return report.as_dict()
    finally:
        if stores is not None:
            await stores.close()


def _text(command: str, result: dict[str, Any]) -> str:
    lines: list[str] = []
    if command == "status":
        lines.append(
            f"version {result['version']} ({result['generated_at']}), {result['models']} models, {result['path']}"
        )
        for name, status in result["providers"].items():
            lines.append(
                f"  {name:<10} {status.get('status', '?'):<7} last success {status.get('last_success') or '-'}"
                f"  {status.get('message') or ''}"
            )
        if result["unpriced"]:
            lines.append("WITHOUT A PRICE (cost reported as unknown): " + ", ".join(result["unpriced"]))
        if result["stale"]:
            lines.append(f"stale prices (last scrape failed or held back): {len(result['stale'])} models")
    elif command == "versions":
        lines.append(f"{'version':>7}  {'generated_at':<20}  {'models':>6}  {'+':>3} {'-':>3} {'~':>3}  reason")
        for v in result["versions"]:
            mark = "*" if v["version"] == result["current"] else " "
            lines.append(
                f"{v['version']:>6}{mark}  {v['generated_at']:<20}  {v['models']:>6}  {v['added']:>3} "
                f"{v['removed']:>3} {v['changed']:>3}  {v['reason'] or ''}"
            )
    else:
        if command == "rollback":
            lines.append(f"rolled back to version {result['rolled_back_to']}: now version {result['version']}")
        elif command == "update":
            lines.append(f"version {result['previous_version']} -> {result['version']}")
            for name, outcome in result["providers"].items():
                lines.append(f"  {name:<10} {outcome['status']:<6} {outcome['message']}")
                lines += [f"      - {p}" for p in outcome["problems"]]
            lines += [
                f"  drift under override: {d['id']}.{d['field']} page {d['page_was']} -> {d['page_now']}, "
                f"override {d['override']}"
                for d in result["drift"]
            ]
        lines += _diff_lines(result.get("diff", result))
    return "\n".join(lines) + "\n"


def _diff_lines(diff: dict[str, Any]) -> list[str]:
    lines = [
        f"diff {diff.get('from_version')} -> {diff.get('to_version')}: {len(diff['added'])} added, "
        f"{len(diff['removed'])} removed, {len(diff['changed'])} price changes"
    ]
    lines += [f"  + {model_id}" for model_id in diff["added"]]
    lines += [f"  - {model_id}" for model_id in diff["removed"]]
    lines += [f"  ~ {c['id']}.{c['field']}: {c['old']} -> {c['new']}" for c in diff["changed"]]
    return lines
