"""The `llmproxy` command: parses the command line, loads the settings once and hands them to the
subcommand's module (serve, usage, registry, and users/keys/secrets in admin)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ..config import ConfigError, load_settings
from . import admin, registry, serve, usage


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmproxy", description="OpenAI-compatible LLM gateway")
    parser.add_argument("--config", help="path to llmproxy.toml (default: $LLMPROXY_CONFIG or ./llmproxy.toml)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve.add_parser(sub)
    usage.add_parser(sub)
    registry.add_parser(sub)
    admin.add_parsers(sub)
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config, os.environ)
    except ConfigError as exc:
        print(f"llmproxy: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return serve.run(settings, args)
    if args.command == "usage":
        return usage.run(settings, args)
    if args.command == "registry":
        return registry.run(settings, args)
    if args.command in admin.COMMANDS:
        return admin.run(settings, args)
    return 2
