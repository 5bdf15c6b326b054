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
    "entry": {
        "entry": {
            "app",
            "cli",
            "endpoint",
            "disconnects",
            "__main__",
            "ui",
            "guard",
            "serving",
            "response_head",
            "openapi",
            "openapi_schemas",
            "messages_endpoint",
            "openai_endpoint",
            "responses_endpoint",
        }
    },
    "composition": {"composition": {"pipeline", "admin", "scheduler", "access", "cascade", "doors"}},
    "stages": {
        "auth": {"auth"},
        "ratelimit": {"ratelimit", "ratelimit_shared"},
        "cache": {"cache", "cache_key", "cache_memory", "cache_replay", "cache_rule", "cache_tiers"},
        "classifier": {"classifier"},
        "router": {"router"},
        "providers": {"providers", "execute"},
        "usage": {"usage"},
        "metrics": {"metrics"},
        "validation": {"validation"},
        "logs": {"logs"},
        "answer_checks": {"answer_checks"},
    },
    "state": {
        "registry": {"registry"},
        "store": {"store"},
        "vault": {"vault", "passwords"},
        "breakers": {"breakers"},
        "shared": {"shared"},
    },
    "basics": {
        "basics": {
            "errors",
            "background",
            "config",
            "settings",
            "config_keys",
            "context",
            "current",
            "idfilter",
            "running",
            "__init__",
        }
    },
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
                if not parts:  # "from . import x" at the package root
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
                problems.append(
                    f"{path.relative_to(REPO)} imports llmproxy.{target} "
                    f"({ORDER[rank]}/{family} -> {ORDER[t_rank]}/{t_family})"
                )
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


def test_the_package_imports_nothing_from_the_repository_around_it() -> None:
    """training/, bench/, tests/ and the dashboard's sources use llmproxy, never the other way round:
    the installed package stands alone."""
    outside = {"training", "bench", "tests"}
    for path in modules():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module]
                if isinstance(node, ast.ImportFrom) and node.module and not node.level
                else []
            )
            for name in names:
                assert name.split(".")[0] not in outside, f"{path.relative_to(REPO)} imports {name}"


def test_every_package_is_placed() -> None:
    """Each package and module of llmproxy sits in one layer (place() raises for a new one)."""
    tops = {p.relative_to(REPO / "llmproxy").parts[0].removesuffix(".py") for p in modules()}
    placed = {name for families in LAYERS.values() for names in families.values() for name in names}
    assert tops <= placed, f"not in LAYERS: {sorted(tops - placed)}"
    assert not placed - tops, f"LAYERS names modules that are gone: {sorted(placed - tops)}"


def test_only_config_reads_the_environment() -> None:
    for path in modules():
        if path.relative_to(REPO / "llmproxy").as_posix() in ("config.py", "cli/__init__.py"):
            continue
        text = path.read_text()
        assert "os.environ" not in text and "getenv" not in text, f"{path} reads the environment"


# Modules that only hold data: the classifier's cue words, the OpenAPI body schemas, the settings
# tree and the config file's layout. They import nothing of llmproxy, so reading them pulls in no code.
DATA_MODULES = ("classifier/cues.py", "openapi_schemas.py", "settings.py", "config_keys.py")


def test_data_modules_import_nothing_of_ours() -> None:
    for name in DATA_MODULES:
        path = REPO / "llmproxy" / name
        assert not imports(path), f"llmproxy/{name} imports llmproxy.{imports(path)}"


def submodule_imports(path: Path) -> set[str]:
    """The sibling modules of `path`'s package that `path` imports (relative imports one level up)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= {node.module.split(".")[0]} if node.module else {alias.name for alias in node.names}
    return found


# Inside registry/: the format knows nothing else, the loader knows only the format, and the two
# writers (versions, merge) build on the loader; the loader never knows who writes the file.
REGISTRY_MAY_IMPORT = {
    "schema": set(),
    "load": {"schema"},
    "versions": {"load", "schema"},
    "merge": {"load", "schema"},
    "__init__": {"load"},
}


def test_registry_package_points_one_way() -> None:
    package = REPO / "llmproxy" / "registry"
    found = {p.stem for p in package.glob("*.py")}
    assert found == set(REGISTRY_MAY_IMPORT), f"registry/ holds {sorted(found)}: add the new module here"
    for path in sorted(package.glob("*.py")):
        extra = submodule_imports(path) - REGISTRY_MAY_IMPORT[path.stem]
        assert not extra, f"registry/{path.name} imports {sorted(extra)}"


def test_store_protocols_and_records_know_no_backend() -> None:
    """What a PostgreSQL backend implements must not depend on the SQLite one."""
    for name in ("protocols.py", "records.py"):
        path = REPO / "llmproxy" / "store" / name
        text = imports_text(path)
        assert "aiosqlite" not in text and "sqlite" not in text and "_sql" not in text, f"store/{name}: {text}"


def test_shared_state_knows_no_stage() -> None:
    """shared/ (Redis) serves the stages through narrow hooks; it imports only basics and itself."""
    for path in sorted((REPO / "llmproxy" / "shared").glob("*.py")):
        assert set(imports(path)) <= {"config", "context", "idfilter", "shared"}, f"shared/{path.name}: {imports(path)}"


def test_admin_holds_no_sql() -> None:
    """Queries live in the store of their component; admin/ only asks it."""
    for path in sorted((REPO / "llmproxy" / "admin").glob("*.py")):
        text = path.read_text()
        for word in ("SELECT ", "INSERT ", "UPDATE ", "DELETE FROM", ".execute("):
            assert word not in text, f"admin/{path.name} has SQL ({word.strip()})"


def test_only_the_store_knows_the_database_drivers_and_only_backends_picks_one() -> None:
    """asyncpg and aiosqlite stay inside store/; above it, modules reach a backend only through
    store/backends.open_stores and the Protocols, so no stage knows which database answers."""
    backend_modules = (
        "pg_keys",
        "pg_usage",
        "pg_responses",
        "postgres",
        "pg_sql",
        "sqlite",
        "usage_sql",
        "keys_sql",
        "responses_sql",
    )
    for path in modules():
        rel = path.relative_to(REPO / "llmproxy")
        text = imports_text(path)
        if rel.parts[0] == "store":
            continue
        assert "asyncpg" not in text, f"{rel} imports asyncpg: PostgreSQL belongs in store/"
        for name in ("pg_keys", "pg_usage", "pg_responses", "postgres", "pg_sql", "responses_sql"):
            assert f"store.{name}" not in text, f"{rel} imports store.{name}: ask store/backends.open_stores"
    store = REPO / "llmproxy" / "store"
    for name in ("pg_keys", "pg_usage", "pg_responses", "pg_sql"):
        assert "aiosqlite" not in imports_text(store / f"{name}.py"), f"store/{name}.py imports aiosqlite"
    assert {p.stem for p in store.glob("*.py")} >= set(backend_modules)
