"""Provider credentials encrypted at rest (AES-256-GCM), the vault key, and its rotation.

The key is LLMPROXY_SECRET_KEY or, without it, a key file (default <data_dir>/secret.key) made on
first start with 0600 permissions; either goes through HKDF, so any string of enough entropy works.
Each ciphertext is bound to its provider name (associated data), so rows cannot be swapped.

Rotation (`llmproxy secrets rotate`) re-encrypts every row in one transaction. With a key file the
new key is written beside the old one first (`secret.key.new`) and renamed over it after the commit,
so a crash at any point leaves a key that opens every row; a running gateway notices the change and
re-reads the file. With LLMPROXY_SECRET_KEY a running gateway keeps the values it already holds
(and refuses to store new ones) until it restarts with the new key.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .config import Secret, Settings
from .store.protocols import KeysStore

log = logging.getLogger("llmproxy.vault")
_NONCE = 12


class VaultError(Exception):
    """A credential cannot be stored or read; the message says what to do, never the value."""


@dataclass(frozen=True, slots=True)
class VaultKey:
    raw: bytes  # 32 bytes, after HKDF
    key_id: str  # a fingerprint, safe to store and show

    @classmethod
    def from_text(cls, text: str) -> VaultKey:
        raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"llmproxy vault v1").derive(
            text.strip().encode()
        )
        return cls(raw, hashlib.sha256(b"llmproxy key id:" + raw).hexdigest()[:16])

    def __repr__(self) -> str:
        return f"VaultKey({self.key_id})"

    def derive(self, purpose: bytes) -> bytes:
        """A separate key for another use (the login token signature), so neither reveals the other."""
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(self.raw)

    def encrypt(self, provider: str, plaintext: str) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + AESGCM(self.raw).encrypt(nonce, plaintext.encode(), _aad(provider))

    def decrypt(self, provider: str, blob: bytes) -> str:
        try:
            return AESGCM(self.raw).decrypt(blob[:_NONCE], blob[_NONCE:], _aad(provider)).decode()
        except (InvalidTag, ValueError):
            raise VaultError(f"the credential of '{provider}' does not decrypt with vault key {self.key_id}") from None


def new_key_text() -> str:
    return secrets.token_urlsafe(32)


def key_file_path(settings: Settings) -> Path:
    return settings.auth.secret_key_file or settings.data_dir / "secret.key"


def load_key(settings: Settings, *, want_id: str | None = None, create: bool = True) -> VaultKey:
    """The vault key. From a key file, a pending `.new` file (a rotation that stopped after its
    commit) is promoted when the database's key id says it is the one in use."""
    if settings.auth.secret_key is not None:
        return VaultKey.from_text(settings.auth.secret_key.value)
    path = key_file_path(settings)
    pending = path.with_name(path.name + ".new")
    if want_id is not None and pending.exists():
        candidate = VaultKey.from_text(pending.read_text())
        if candidate.key_id == want_id:
            os.replace(pending, path)
            return candidate
    if not path.exists():
        if not create:
            raise VaultError(f"no vault key: set LLMPROXY_SECRET_KEY or create {path}")
        if _create_key_file(path, new_key_text()):
            log.info("created the vault key file", extra={"path": str(path)})
    return VaultKey.from_text(path.read_text())


def _create_key_file(path: Path, text: str) -> bool:
    """Write a new key file unless one appears meanwhile: workers started together on a new data
    directory must all end up with the same key. Written aside, then linked into place (which fails
    if the name exists), so nobody reads a half-written file. True when this call made it."""
    aside = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    write_key_file(aside, text)
    try:
        os.link(aside, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(aside)


def write_key_file(path: Path, text: str) -> None:
    """Write a key file readable by its owner only (0600 from creation, never a looser moment)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    os.chmod(path, 0o600)


def hint(value: str) -> str:
    """The most of a credential anyone is shown."""
    return f"…{value[-4:]}" if len(value) >= 16 else "…"


class Vault:
    """Decrypted provider credentials in memory, and how they reach the settings."""

    def __init__(self, key: VaultKey, settings: Settings) -> None:
        self.key = key
        self._settings = settings
        self._plain: dict[str, tuple[int, Secret]] = {}
        self._applied: dict[str, Secret] = {}
        self.rows: list[dict[str, Any]] = []

    async def load(self, db: KeysStore) -> None:
        """Decrypt what the database holds. A row this process cannot open keeps its old value when
        it is the same version (the key was rotated under us); otherwise it is logged and skipped."""
        want = await db.vault_key_id()
        if want is not None and want != self.key.key_id and self._settings.auth.secret_key is None:
            try:
                self.key = load_key(self._settings, want_id=want, create=False)
            except (OSError, VaultError) as exc:
                log.error("cannot re-read the vault key file: %s", exc)
        plain: dict[str, tuple[int, Secret]] = {}
        rows: list[dict[str, Any]] = []
        for row in await db.credentials():
            rows.append(
                {
                    "provider": row.provider,
                    "hint": row.hint,
                    "version": row.version,
                    "created_at": row.created_at,
                    "updated_at": row.updated_at,
                }
            )
            held = self._plain.get(row.provider)
            if held is not None and held[0] == row.version:
                plain[row.provider] = held
                continue
            if row.vault_key_id != self.key.key_id:
                log.error(
                    "the credential of '%s' is under vault key %s, this gateway holds %s; restart it with "
                    "the current LLMPROXY_SECRET_KEY",
                    row.provider,
                    row.vault_key_id,
                    self.key.key_id,
                )
                continue
            try:
                plain[row.provider] = (row.version, Secret(self.key.decrypt(row.provider, row.ciphertext)))
            except VaultError as exc:
                log.error("%s", exc)
        self._plain = plain
        self.rows = rows

    def apply(self, settings: Settings) -> Settings:
        """Settings whose providers without a configured key carry the vault's. A key from the
        environment or llmproxy.toml wins over the vault's."""
        providers, applied, changed = [], {}, False
        for p in settings.providers:
            ours = self._applied.get(p.name)
            if p.api_key is not None and p.api_key is not ours:
                providers.append(p)
                continue
            held = self._plain.get(p.name)
            want = held[1] if held else None
            if want is not None:
                applied[p.name] = want
            if want is not p.api_key:
                p, changed = replace(p, api_key=want), True
            providers.append(p)
        self._applied = applied
        return replace(settings, providers=tuple(providers)) if changed else settings

    def source(self, settings: Settings, provider: str) -> str | None:
        """Where a provider's effective key comes from: "config" (environment or file), "vault" or None."""
        p = settings.provider(provider)
        if p is None or p.api_key is None:
            return None
        return "vault" if p.api_key is self._applied.get(provider) else "config"

    async def put(self, db: KeysStore, actor: str, provider: str, value: str) -> None:
        try:
            await db.put_credential(actor, provider, self.key.encrypt(provider, value), self.key.key_id, hint(value))
        except PermissionError as exc:
            raise VaultError(
                f"the vault key was rotated (now {exc}); restart the gateway with the new key "
                "before storing credentials"
            ) from None


async def rotate(db: KeysStore, old: VaultKey, new: VaultKey, actor: str) -> int:
    """Re-encrypt every credential from `old` to `new` in one transaction; returns how many."""
    batch = []
    for row in await db.credentials():
        if row.vault_key_id != old.key_id:
            raise VaultError(
                f"the credential of '{row.provider}' is under vault key {row.vault_key_id}, "
                f"not the current key {old.key_id}; nothing was changed"
            )
        batch.append((row.provider, new.encrypt(row.provider, old.decrypt(row.provider, row.ciphertext)), row.version))
    await db.reencrypt(actor, old.key_id, new.key_id, batch)
    return len(batch)


def _aad(provider: str) -> bytes:
    return b"llmproxy provider credential:" + provider.encode()
