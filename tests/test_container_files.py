"""What can be checked of the container files without a Docker engine."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def test_every_path_the_dockerfile_copies_exists() -> None:
    text = (REPO / "Dockerfile").read_text()
    copies = re.findall(r"^COPY\s+(.+?)\s+\S+$", text, re.M)
    assert copies
    for line in copies:
        for src in line.split():
            assert (REPO / src).exists(), f"Dockerfile copies {src}, which does not exist"


def test_dockerfile_runs_as_non_root_with_healthcheck_and_volume() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim", text, re.M)
    user = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert user and user[-1] not in ("root", "0")
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert re.search(r'^VOLUME \["/data"\]', text, re.M)


def test_compose_file_parses_with_named_volume_and_env_file() -> None:
    doc = yaml.safe_load((REPO / "compose.yaml").read_text())
    service = doc["services"]["llmproxy"]
    assert service["build"] == "."
    assert any(v.startswith("llmproxy-data:") for v in service["volumes"])
    assert "llmproxy-data" in doc["volumes"]
    assert service["env_file"][0]["path"] == ".env"
    assert (REPO / ".env.example").exists()
    assert service["environment"]["LLMPROXY_HOST"] == "0.0.0.0"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci in readme
