"""The model registry: which models exist, what they cost, and the file they live in.

    load.py      the immutable Registry and its entries, read from models.json with fallbacks
    schema.py    the strict format of models.json
    versions.py  writing models.json: atomically, backed up, every version kept, diffs, rollback
    merge.py     scraped prices merged into the document, with the checks that hold a bad scrape back

Everything a stage needs (`ModelEntry`, `Registry`, `load_registry`...) is importable from here.
"""

from .load import (
    DEFAULT_CAPABILITIES,
    Capabilities,
    Document,
    LongContext,
    ModelEntry,
    Registry,
    RegistryError,
    backup_path,
    build_registry,
    load_document,
    load_registry,
    parse_document,
    parse_registry,
    registry_from_document,
    shipped_registry,
    warn_unpriced,
)

__all__ = [
    "DEFAULT_CAPABILITIES",
    "Capabilities",
    "Document",
    "LongContext",
    "ModelEntry",
    "Registry",
    "RegistryError",
    "backup_path",
    "build_registry",
    "load_document",
    "load_registry",
    "parse_document",
    "parse_registry",
    "registry_from_document",
    "shipped_registry",
    "warn_unpriced",
]
