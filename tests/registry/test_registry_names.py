"""Registry names: path traversal and odd model, alias and file names; clear not-found errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry import IntegrityError, InvalidNameError, NotFoundError, Registry, RegistryError
from tests.helpers.registry_data import toy_params


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "models")


BAD_NAMES = ["", ".", "..", "../evil", "a/b", "/abs", "Digits", "a..b", "-x", "x" * 65, "a b"]


@pytest.mark.parametrize("name", [*BAD_NAMES, "nul\x00"])
def test_path_traversal_and_odd_model_names_are_rejected(tmp_path: Path, name: str) -> None:
    root = tmp_path / "models"
    registry = Registry(root)
    with pytest.raises(InvalidNameError, match="invalid model name"):
        registry.publish(name, toy_params(), {})
    for call in (registry.load, registry.list_versions, registry.aliases, registry.state_token):
        with pytest.raises(InvalidNameError):
            call(name)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("alias", [*BAD_NAMES, "latest", "7", "007"])
def test_bad_aliases_are_rejected(registry: Registry, alias: str) -> None:
    registry.publish("digits", toy_params(), {})
    with pytest.raises(InvalidNameError, match="invalid alias"):
        registry.set_alias("digits", alias, 1)
    assert registry.aliases("digits") == {}
    assert sorted(p.name for p in registry.root.iterdir()) == ["digits"]


@pytest.mark.parametrize("file_name", ["../x", "sub/x.png", "manifest.json", ".hidden", ""])
def test_bad_extra_file_names_are_rejected(registry: Registry, file_name: str) -> None:
    with pytest.raises(InvalidNameError):
        registry.publish("digits", toy_params(), {}, extra_files={file_name: b"x"})
    assert registry.list_models() == []


def test_unknown_model_version_and_alias_give_clear_errors(registry: Registry) -> None:
    with pytest.raises(NotFoundError, match="model 'digits' not found"):
        registry.load("digits")
    registry.publish("digits", toy_params(), {})
    with pytest.raises(NotFoundError, match=r"no version 9 .*versions: 1\)"):
        registry.load("digits", 9)
    with pytest.raises(NotFoundError, match=r"no alias 'staging' \(aliases: none\)"):
        registry.load("digits", "staging")
    with pytest.raises(NotFoundError, match=r"model 'other' not found .*models: digits\)"):
        registry.get("other", 1)
    # The error types fit the CLI's generic handling and a caller's `except LookupError`.
    assert issubclass(NotFoundError, LookupError) and issubclass(IntegrityError, RegistryError)
