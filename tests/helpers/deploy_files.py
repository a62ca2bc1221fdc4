"""Readers for the deployment files under test: Dockerfile stages, compose.yaml and deploy/k8s."""

from __future__ import annotations

import io
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from dockerfile_parse import DockerfileParser

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "compose.yaml"
K8S_DIR = REPO / "deploy" / "k8s"


@dataclass
class Instruction:
    name: str  # upper-case instruction, e.g. "COPY"
    value: str  # everything after the instruction word

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form CMD/ENTRYPOINT/HEALTHCHECK CMD, else None."""
        text = self.value
        if self.name == "HEALTHCHECK":
            words = text.split()
            while words and words[0].startswith("--"):
                words.pop(0)
            if not words or words[0] != "CMD":
                return None
            text = " ".join(words[1:])
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            return None
        return parsed if isinstance(parsed, list) else None


@dataclass
class Stage:
    name: str
    base: str  # as written after FROM, e.g. "${BASE}" or "deps-serve"
    instructions: list[Instruction] = field(default_factory=list)

    def of(self, name: str) -> list[Instruction]:
        return [item for item in self.instructions if item.name == name]


def dockerfile_structure(path: Path = DOCKERFILE) -> list[dict[str, Any]]:
    # fileobj, not path: DockerfileParser never writes to a file object we do not hand it.
    parser = DockerfileParser(fileobj=io.BytesIO(path.read_bytes()), env_replace=False)
    return [item for item in parser.structure if item["instruction"] != "COMMENT"]


def global_args(path: Path = DOCKERFILE) -> dict[str, str]:
    """ARGs declared before the first FROM, with their defaults."""
    args: dict[str, str] = {}
    for item in dockerfile_structure(path):
        if item["instruction"] == "FROM":
            break
        if item["instruction"] == "ARG":
            key, _, default = item["value"].partition("=")
            args[key.strip()] = default.strip()
    return args


def stages(path: Path = DOCKERFILE) -> dict[str, Stage]:
    """Stages by name (unnamed stages by index), in file order."""
    result: dict[str, Stage] = {}
    current: Stage | None = None
    for item in dockerfile_structure(path):
        if item["instruction"] == "FROM":
            words = item["value"].split()
            words = [word for word in words if not word.startswith("--platform")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else str(len(result))
            current = Stage(name=name, base=words[0])
            result[name] = current
        elif current is not None:
            current.instructions.append(Instruction(item["instruction"], item["value"]))
    return result


def lineage(target: str, all_stages: dict[str, Stage]) -> list[Stage]:
    """The target stage and the stages it is built FROM, base first."""
    chain = [all_stages[target]]
    while chain[0].base in all_stages:
        chain.insert(0, all_stages[chain[0].base])
    return chain


def effective(target: str, name: str, all_stages: dict[str, Stage]) -> Instruction | None:
    """The last `name` instruction in effect for the target (inherited through FROM stages)."""
    found = None
    for stage in lineage(target, all_stages):
        for item in stage.of(name):
            found = item
    return found


def image_env(target: str, all_stages: dict[str, Stage]) -> dict[str, str]:
    """ENV of the target, inherited through its FROM stages (KEY=VALUE forms only)."""
    env: dict[str, str] = {}
    for stage in lineage(target, all_stages):
        for item in stage.of("ENV"):
            for word in shlex.split(item.value.replace("\\\n", " ")):
                key, sep, value = word.partition("=")
                if sep:
                    env[key] = value
    return env


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def k8s_documents() -> list[dict[str, Any]]:
    """Every Kubernetes object in deploy/k8s (kustomization.yaml excluded)."""
    documents = []
    for path in sorted(K8S_DIR.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        documents += [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    return documents


def k8s_object(kind: str, name: str | None = None) -> dict[str, Any]:
    """The one object of ``kind`` (named ``name`` when given) in deploy/k8s."""
    matches = [
        doc
        for doc in k8s_documents()
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, (
        f"expected one {kind} {name or ''} in deploy/k8s, found {len(matches)}"
    )
    return matches[0]
