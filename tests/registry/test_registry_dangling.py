"""A version directory deleted by hand: the registry names the dangling alias and recovers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from registry import NotFoundError, Registry
from tests.helpers.registry_data import toy_params


@pytest.fixture
def dangling(tmp_path: Path) -> Registry:
    """production: 1 -> 2 -> 3, staging: 2; then version 3's directory is removed by hand."""
    registry = Registry(tmp_path / "models")
    for seed in range(3):
        registry.publish("digits", toy_params(seed), {"loss": "cross_entropy"})
    for version in (1, 2, 3):
        registry.set_alias("digits", "production", version)
    registry.set_alias("digits", "staging", 2)
    shutil.rmtree(registry.root / "digits" / "3")
    return registry


def test_dangling_aliases_are_listed(dangling: Registry):
    assert dangling.dangling_aliases("digits") == {"production": 3}
    assert dangling.aliases("digits") == {"production": 3, "staging": 2}
    with pytest.raises(NotFoundError, match=r"dangling alias.*digits models rollback"):
        dangling.resolve("digits")


def test_rollback_from_a_dangling_alias(dangling: Registry):
    assert dangling.rollback("digits") == 2
    assert dangling.load("digits").version == 2
    assert dangling.dangling_aliases("digits") == {}
    assert dangling.alias_history("digits", "production") == [1]


def test_rollback_skips_previous_versions_that_were_deleted_too(dangling: Registry):
    shutil.rmtree(dangling.root / "digits" / "2")  # production's last previous target
    assert dangling.rollback("digits") == 1
    assert dangling.alias_history("digits", "production") == []
    with pytest.raises(NotFoundError, match="promote VERSION --alias production"):
        dangling.rollback("digits")


def test_promote_from_a_dangling_alias(dangling: Registry):
    assert dangling.set_alias("digits", "production", 1) == 3
    assert dangling.resolve("digits") == 1


def test_gc_keeps_the_newest_existing_rollback_target(dangling: Registry):
    dangling.set_alias("digits", "staging", 1)  # 2 is now only production's rollback target
    assert dangling.gc("digits", keep=1) == []
    assert dangling.rollback("digits") == 2
