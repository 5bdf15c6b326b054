"""The dependency rules of ARCHITECTURE.md, checked on the import statements of every module.

Layers, top to bottom: entry -> composition -> stages -> state -> basics. A module imports only
from its own layer or lower ones; stages never import each other (they talk through the
RequestContext); scrapers know nothing of llmproxy; adapters never see Starlette or the store;
only config.py reads the environment (the entry hands os.environ to it).
"""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAYERS: dict[str, dict[str, set[str]]] = {
    # layer -> family -> top-level module names of llmproxy (a package counts as one family)
    "entry": {"entry": {"app", "cli", "endpoint", "disconnects", "cli_admin", "registry_cli", "usage_cli", "__main__",
                        "ui", "guard", "serving", "openapi", "messages_endpoint"}},
    "composition": {"composition": {"pipeline", "admin", "scheduler", "access", "cascade", "doors"}},
    "stages": {"auth": {"auth"}, "ratelimit": {"ratelimit"}, "cache": {"cache", "cache_replay"},
               "classifier": {"classifier"}, "router": {"router"},
               "providers": {"providers", "execute"}, "usage": {"usage"}, "metrics": {"metrics"},
               "validation": {"validation"}, "logs": {"logs"}, "answer_checks": {"answer_checks"}},
    "state": {"registry": {"registry", "registry_schema", "registry_versions", "registry_merge"},
              "store": {"store"}, "vault": {"vault", "passwords"}, "health": {"health"}},
    "basics": {"basics": {"errors", "config", "context", "__init__"}},
}
ORDER = list(LAYERS)


def place(top: str) -> tuple[int, str]:
    for rank, layer in enumerate(ORDER):
        for family, names in LAYERS[layer].items():
            if top in names:
                return rank, family
    raise AssertionError(f"llmproxy.{top} is in no layer: add it to LAYERS in {Path(__file__).name}")


def imports(path: Path) -> list[str]:
    """Top-level llmproxy module names that `path` imports at run time (TYPE_CHECKING ones skipped)."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for n in ast.walk(node)}
    rel = path.relative_to(REPO / "llmproxy").parts
    package = list(rel[:-1])
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                parts = base + (node.module.split(".") if node.module else [])
                if not parts:   # "from . import x" at the package root
                    parts = [alias.name for alias in node.names]
                    found.extend(parts)
                    continue
                found.append(parts[0])
            elif node.module and node.module.startswith("llmproxy."):
                found.append(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found += [a.name.split(".")[1] for a in node.names if a.name.startswith("llmproxy.")]
    return found


def modules() -> list[Path]:
    return sorted(p for p in (REPO / "llmproxy").rglob("*.py"))


def test_dependencies_point_down_and_stages_do_not_import_each_other() -> None:
    problems = []
    for path in modules():
        top = path.relative_to(REPO / "llmproxy").parts[0].removesuffix(".py")
        rank, family = place(top)
        for target in imports(path):
            if target in ("__version__",):
                continue
            t_rank, t_family = place(target)
            if t_rank < rank or (ORDER[rank] == "stages" and t_rank == rank and t_family != family):
                problems.append(f"{path.relative_to(REPO)} imports llmproxy.{target} "
                                f"({ORDER[rank]}/{family} -> {ORDER[t_rank]}/{t_family})")
    assert not problems, "\n".join(problems)


def test_scrapers_know_nothing_of_llmproxy() -> None:
    for path in sorted((REPO / "scrapers").rglob("*.py")):
        assert "llmproxy" not in imports_text(path), path


def test_adapters_never_see_starlette_the_store_or_each_other() -> None:
    adapters = {"openai", "anthropic", "gemini"}
    for path in sorted((REPO / "llmproxy" / "providers").glob("*.py")):
        text = path.read_text()
        assert "starlette" not in text and "store" not in imports_text(path), path
        if path.stem in adapters:
            others = adapters - {path.stem}
            tree = ast.parse(text)
            names = {alias.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for alias in n.names}
            modules_ = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
            assert not (names | modules_) & others, f"{path.name} imports another adapter"
        if path.stem != "base":
            assert "aiohttp" not in text, f"{path.name}: only providers/base.py knows the HTTP client"


def imports_text(path: Path) -> str:
    tree = ast.parse(path.read_text())
    return " ".join(ast.unparse(n) for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)))


def test_only_config_reads_the_environment() -> None:
    for path in modules():
        if path.name in ("config.py", "cli.py"):
            continue
        text = path.read_text()
        assert "os.environ" not in text and "getenv" not in text, f"{path} reads the environment"
