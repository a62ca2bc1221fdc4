"""A version directory deleted by hand: its aliases show as dangling and every recovery works."""

from __future__ import annotations

import json
import shutil

import pytest

from registry import NotFoundError, Registry
from tests.registry.test_registry_cli import Digits, digits, registry, template  # noqa: F401


@pytest.fixture
def dangling(registry: Registry) -> Registry:  # noqa: F811
    """production: 1 -> 2 -> 3, then version 3's directory is removed behind the registry."""
    for version in (1, 2, 3):
        registry.set_alias("digits", "production", version)
    registry.set_alias("digits", "staging", 2)
    shutil.rmtree(registry.root / "digits" / "3")
    return registry


def test_list_shows_the_dangling_alias_in_text_and_json(dangling: Registry, digits: Digits):  # noqa: F811
    code, out, err = digits("models", "--registry", dangling.root, "list")
    assert (code, err) == (0, "")
    assert "production -> 3: DANGLING, version 3 no longer exists" in out
    assert "digits models rollback --alias production" in out
    assert "staging -> 2: DANGLING" not in out
    code, out, _ = digits("models", "--registry", dangling.root, "list", "--json")
    document = json.loads(out)
    assert document["dangling_aliases"] == {"production": 3}
    assert document["aliases"] == {"production": 3, "staging": 2}


def test_show_names_the_dangling_alias(dangling: Registry, digits: Digits):  # noqa: F811
    code, out, _ = digits("models", "--registry", dangling.root, "show", "2")
    assert code == 0 and "production -> 3 (deleted)" in out
    code, out, _ = digits("models", "--registry", dangling.root, "show", "2", "--json")
    assert json.loads(out)["dangling_aliases"] == {"production": 3}
    code, _, err = digits("models", "--registry", dangling.root, "show")  # default: production
    assert code == 1 and "dangling alias" in err and "digits models rollback" in err


def test_rollback_from_a_dangling_alias(dangling: Registry, digits: Digits):  # noqa: F811
    code, out, err = digits("models", "--registry", dangling.root, "rollback", "--json")
    assert code == 0, err
    assert json.loads(out) == {"alias": "production", "previous": 3, "version": 2}
    assert dangling.load("digits").version == 2
    assert dangling.dangling_aliases("digits") == {}


def test_rollback_skips_previous_versions_that_were_deleted_too(dangling: Registry):
    shutil.rmtree(dangling.root / "digits" / "2")  # production's last previous target
    assert dangling.rollback("digits") == 1
    assert dangling.alias_history("digits", "production") == []
    with pytest.raises(NotFoundError, match="promote VERSION --alias production"):
        dangling.rollback("digits")


def test_promote_from_a_dangling_alias(dangling: Registry, digits: Digits):  # noqa: F811
    code, out, _ = digits("models", "--registry", dangling.root, "promote", "1")
    assert (code, out) == (0, "digits@production: 3 -> 1\n")
    assert dangling.resolve("digits") == 1


def test_gc_works_and_keeps_the_rollback_target(dangling: Registry, digits: Digits):  # noqa: F811
    dangling.set_alias("digits", "staging", 1)  # 2 is now only production's rollback target
    code, out, err = digits("models", "--registry", dangling.root, "gc", "--keep", "1", "--json")
    assert code == 0, err
    assert json.loads(out) == {"deleted": [], "kept": [1, 2]}
    assert dangling.rollback("digits") == 2
