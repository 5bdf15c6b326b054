"""Provider adapters, registered in one place: provider kind -> adapter module."""

from __future__ import annotations

from . import anthropic, gemini, openai
from .base import Adapter

ADAPTERS: dict[str, Adapter] = {
    "openai": openai,
    "openai-compatible": openai,
    "anthropic": anthropic,
    "gemini": gemini,
}
