"""`llmproxy users | keys | secrets`: identity and credentials, straight on the data directory's SQLite.

They work on a fresh install with the gateway stopped (that is how the first admin and the first key
are made) and while it runs: the gateway notices a change within a second or two. Secrets are read
from stdin or a prompt, never from the command line (where `ps` would show them); a new key value is
printed once.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

import orjson

from ..admin.keys import PERIODS, create_key, key_fields, rotate_key
from ..auth import ROLES
from ..config import LABELS, STRATEGIES, Settings
from ..errors import GatewayError
from ..passwords import check_strength, hash_password
from ..store.backends import open_stores
from ..store.protocols import KeysStore
from ..vault import Vault, VaultError, VaultKey, key_file_path, load_key, new_key_text, rotate, write_key_file

COMMANDS = ("users", "keys", "secrets")


def add_parsers(sub: Any) -> None:
    users = sub.add_parser("users", help="users who log in to the admin API").add_subparsers(
        dest="action", required=True
    )
    admin = users.add_parser("create-admin", help="create an admin user (password from a prompt or stdin)")
    admin.add_argument("--name", default="admin", help="user name (default admin)")
    _data_dir(admin)

    keys = sub.add_parser("keys", help="virtual API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="create a key; its value is printed once")
    create.add_argument("--name", required=True)
    _key_options(create)
    _data_dir(create)
    listing = keys.add_parser("list", help="list keys (prefixes only)")
    _data_dir(listing)
    update = keys.add_parser("update", help="change a key's name, limits, budget, models or expiry")
    update.add_argument("key_id")
    update.add_argument("--name")
    _key_options(update)
    _data_dir(update)
    revoke = keys.add_parser("revoke", help="revoke a key (a running gateway refuses it within ~2 s)")
    revoke.add_argument("key_id")
    _data_dir(revoke)
    rot = keys.add_parser("rotate", help="give a key a new value; the old one works for a grace period")
    rot.add_argument("key_id")
    rot.add_argument(
        "--grace", type=float, help="seconds the old value keeps working (default [auth] rotation_grace_s)"
    )
    _data_dir(rot)

    secrets = sub.add_parser("secrets", help="provider credentials in the encrypted vault")
    actions = secrets.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="store a provider's API key (read from stdin or a prompt)")
    add.add_argument("provider", help="a configured provider name (openai, anthropic, gemini, ...)")
    _data_dir(add)
    _data_dir(actions.add_parser("list", help="list stored credentials (hints only)"))
    rot_s = actions.add_parser("rotate", help="re-encrypt every credential under a new vault key")
    rot_s.add_argument(
        "--new-key-stdin",
        action="store_true",
        help="read the new key from stdin (default: generate one; with LLMPROXY_SECRET_KEY it is printed once)",
    )
    _data_dir(rot_s)


def run(settings: Settings, args: argparse.Namespace, out: TextIO | None = None, stdin: TextIO | None = None) -> int:
    out, stdin = out or sys.stdout, stdin or sys.stdin
    if getattr(args, "data_dir", None):
        settings = replace(settings, data_dir=Path(args.data_dir))
    handler = _HANDLERS[(args.command, args.action)]
    try:
        result = asyncio.run(_with_db(settings, handler, args, stdin))
    except (GatewayError, VaultError, ValueError) as exc:
        print(f"llmproxy {args.command} {args.action}: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 2
    except LookupError as exc:
        print(f"llmproxy {args.command} {args.action}: no such {args.command[:-1]}: {exc}", file=sys.stderr)
        return 2
    out.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


async def _with_db(settings: Settings, handler: Any, args: argparse.Namespace, stdin: TextIO) -> Any:
    stores = await open_stores(settings)  # the gateway's backend: SQLite, or PostgreSQL when configured
    try:
        return await handler(settings, stores.keys, args, stdin)
    finally:
        await stores.close()


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _read_secret(stdin: TextIO, prompt: str) -> str:
    value = getpass.getpass(prompt) if stdin.isatty() else stdin.readline()
    return value.strip()


async def _create_admin(settings: Settings, db: KeysStore, args: argparse.Namespace, stdin: TextIO) -> Any:
    password = _read_secret(stdin, f"password for {args.name}: ")
    problem = check_strength(password)
    if problem:
        raise ValueError(problem)
    if any(u.name == args.name for u in await db.users()):
        raise ValueError(f"the user '{args.name}' already exists")
    await db.insert_user(_actor(), args.name, await asyncio.to_thread(hash_password, password), "admin")
    return {"name": args.name, "role": "admin", "login": "POST /admin/login"}


async def _public(db: KeysStore, key_id: str) -> dict[str, Any]:
    """The key as the command prints it; it exists, the command has just written it."""
    record = await db.key(key_id)
    assert record is not None
    return record.public()


async def _keys_create(settings: Settings, db: KeysStore, args: argparse.Namespace, stdin: TextIO) -> Any:
    fields = key_fields(_key_body(args), creating=True)
    key_id, value = await create_key(db, _actor(), fields)
    return {**await _public(db, key_id), "key": value}


async def _keys_list(settings: Settings, db: KeysStore, args: argparse.Namespace, stdin: TextIO) -> Any:
    return [r.public() for r in await db.keys()]


async def _keys_update(settings: Settings, db: KeysStore, args: argparse.Namespace, stdin: TextIO) -> Any:
    fields = key_fields(_key_body(args), creating=False)
    await db.update_key(_actor(), args.key_id, fields)
    return await _public(db, args.key_id)


async def _keys_revoke(settings: Settings, db: KeysStore, args: argparse.Namespace, stdin: TextIO) -> Any:
    await db.revoke_key(_actor(), args.key_id)
    return await _public(db, args.key_id)


async def _keys_rotate(settings: Settings, db: KeysStore, args: argparse.Namespace, stdin: TextIO) -> Any:
    grace = settings.auth.rotation_grace_s if args.grace is None else args.grace
    value = await rotate_key(db, _actor(), args.key_id, grace)
    return {**await _public(db, args.key_id), "key": value, "grace_s": grace}


async def _secrets_add(settings: Settings, db: KeysStore, args: argparse.Namespace, stdin: TextIO) -> Any:
    if settings.provider(args.provider) is None:
        raise ValueError(f"no provider '{args.provider}' is configured; add it to llmproxy.toml first")
    value = _read_secret(stdin, f"API key for {args.provider}: ")
    if not value:
        raise ValueError("no value given")
    vault = Vault(load_key(settings, want_id=await db.vault_key_id()), settings)
    await vault.put(db, _actor(), args.provider, value)
    return _secret_rows(settings, await _rows(db, vault))


async def _secrets_list(settings: Settings, db: KeysStore, args: argparse.Namespace, stdin: TextIO) -> Any:
    vault = Vault(load_key(settings, want_id=await db.vault_key_id()), settings)
    return _secret_rows(settings, await _rows(db, vault))


async def _secrets_rotate(settings: Settings, db: KeysStore, args: argparse.Namespace, stdin: TextIO) -> Any:
    old = load_key(settings, want_id=await db.vault_key_id())
    text = _read_secret(stdin, "new vault key: ") if args.new_key_stdin else new_key_text()
    if len(text) < 16:
        raise ValueError("a vault key needs at least 16 characters (32 random bytes are best)")
    new = VaultKey.from_text(text)
    result: dict[str, Any] = {"from_key_id": old.key_id, "to_key_id": new.key_id}
    if settings.auth.secret_key is not None:
        result["credentials"] = await rotate(db, old, new, _actor())
        if not args.new_key_stdin:
            result["new_secret_key"] = text
        result["next"] = "set LLMPROXY_SECRET_KEY to the new key before the gateway's next start"
        return result
    # Key file: the new key is on disk (beside the old one) before any row depends on it, and
    # replaces it only after the commit; load_key() finishes an interrupted rotation.
    path = key_file_path(settings)
    pending = path.with_name(path.name + ".new")
    write_key_file(pending, text)
    result["credentials"] = await rotate(db, old, new, _actor())
    pending.replace(path)
    result["key_file"] = str(path)
    return result


async def _rows(db: KeysStore, vault: Vault) -> list[dict[str, Any]]:
    await vault.load(db)
    return vault.rows


def _secret_rows(settings: Settings, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        p = settings.provider(row["provider"])
        out.append({**row, "shadowed_by_config": bool(p and p.api_key is not None)})
    return out


def _key_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--owner", help="the user who owns the key")
    p.add_argument("--role", choices=ROLES, help="admin keys may use the admin API (default user)")
    p.add_argument("--models", help="comma-separated models it may use ('gpt-4o*' matches a prefix); default all")
    p.add_argument("--rpm", type=int, help="requests per minute (default: [limits] rpm)")
    p.add_argument("--tpm", type=int, help="tokens per minute (default: [limits] tpm)")
    p.add_argument("--budget", type=float, help="spend cap in USD")
    p.add_argument("--budget-period", choices=PERIODS, help="the budget's period (default total)")
    p.add_argument("--expires-in", type=float, help="seconds until the key expires")
    p.add_argument("--metadata", help="a JSON object kept with the key")
    p.add_argument(
        "--strategy",
        choices=(*STRATEGIES, "default"),
        help="how \"auto\" routes this key's requests ('default': the [router] default_strategy)",
    )
    p.add_argument(
        "--complexity",
        choices=(*LABELS, "default"),
        help="the complexity of this key's \"auto\" requests ('default': the classifier decides)",
    )


def _key_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for flag, field in (
        ("name", "name"),
        ("owner", "owner"),
        ("role", "role"),
        ("rpm", "rpm"),
        ("tpm", "tpm"),
        ("budget", "budget_usd"),
        ("budget_period", "budget_period"),
        ("expires_in", "expires_in_s"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            body[field] = value
    if args.models is not None:
        body["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.strategy is not None:
        body["strategy"] = None if args.strategy == "default" else args.strategy
    if args.complexity is not None:
        body["complexity"] = None if args.complexity == "default" else args.complexity
    if args.metadata is not None:
        try:
            body["metadata"] = orjson.loads(args.metadata)
        except orjson.JSONDecodeError:
            raise ValueError("--metadata must be a JSON object") from None
    return body


def _data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="directory of the SQLite file and vault key (default: the configured data_dir)")


_HANDLERS = {
    ("users", "create-admin"): _create_admin,
    ("keys", "create"): _keys_create,
    ("keys", "list"): _keys_list,
    ("keys", "update"): _keys_update,
    ("keys", "revoke"): _keys_revoke,
    ("keys", "rotate"): _keys_rotate,
    ("secrets", "add"): _secrets_add,
    ("secrets", "list"): _secrets_list,
    ("secrets", "rotate"): _secrets_rotate,
}
