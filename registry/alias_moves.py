"""The alias half of `Registry`: read alias records, and move aliases (verified, compare-and-set).

Every move is one compare-and-swap of the alias record (registry/promotion.py): a file lock on a
directory, ``If-Match`` on S3, so concurrent promoters lose no update and the history stays whole.
"""

from __future__ import annotations

from typing import Any

from registry import aliases as alias_records
from registry.errors import (
    IntegrityError,
    NotFoundError,
    validate_alias,
    validate_model_name,
)
from registry.promotion import (
    UNCONDITIONAL,
    Change,
    Expected,
    move_alias,
    promotion,
    update_record,
)
from registry.storage import Storage
from registry.traffic import default_actor
from registry.versions import ModelVersion

DEFAULT_ALIAS = "production"


class AliasMoves:
    """Alias reads and moves; `Registry` supplies storage, version listing and verification."""

    storage: Storage

    def _existing_versions(self, name: str) -> list[int]:
        raise NotImplementedError  # Registry's

    def verify(self, name: str, ref: int | str | None = None) -> ModelVersion:
        raise NotImplementedError  # Registry's

    def resolve(self, name: str, ref: int | str | None = None) -> int:
        raise NotImplementedError  # Registry's

    def aliases(self, name: str) -> dict[str, int]:
        """Alias name -> version number."""
        self._existing_versions(name)
        return {a: int(r["version"]) for a, r in self.storage.read_aliases(name).items()}

    def alias_record(self, name: str, alias: str) -> dict[str, Any] | None:
        """The alias's full record (version, history, canary, shadow, events), or None."""
        found = self.storage.read_alias(validate_model_name(name), validate_alias(alias))
        return None if found is None else found[0]

    def alias_records(self, name: str) -> dict[str, dict[str, Any]]:
        """Every alias's full record, keyed by alias name."""
        return self.storage.read_aliases(validate_model_name(name))

    def update_alias(self, name: str, alias: str, change: Change) -> dict[str, Any]:
        """Apply ``change`` (old record or None -> new record) as one compare-and-swap.

        Every alias change goes through here or `promote`/`rollback` (registry/promotion.py).
        Returns the record as written (as it was, when ``change`` returned None).
        """
        validate_alias(alias)
        self._existing_versions(name)  # NotFoundError for an unknown model
        written: list[dict[str, Any] | None] = []

        def keep(record: dict[str, Any] | None) -> dict[str, Any] | None:
            new = change(record)
            written[:] = [new if new is not None else record]
            return new

        update_record(self.storage, name, alias, keep)
        found = written[0] if written else None
        if found is None:
            raise NotFoundError(f"model {name!r} has no alias {alias!r}")
        return found

    def has_version(self, name: str, version: int) -> bool:
        """True when ``version`` of ``name`` is committed (no verification)."""
        return version in self.storage.version_numbers(validate_model_name(name))

    def dangling_aliases(self, name: str) -> dict[str, int]:
        """Alias name -> version number, for aliases whose version no longer exists.

        A version directory removed by hand leaves its aliases pointing nowhere; they are
        listed here so every view can show them, and rollback/promote/gc still work.
        """
        existing = set(self._existing_versions(name))
        return {alias: v for alias, v in self.aliases(name).items() if v not in existing}

    def alias_history(self, name: str, alias: str) -> list[int]:
        """Previous targets of ``alias``, oldest first (the last one is where rollback goes)."""
        found = self.storage.read_alias(validate_model_name(name), validate_alias(alias))
        if found is None:
            raise NotFoundError(f"model {name!r} has no alias {alias!r}")
        return list(found[0]["history"])

    def promote(
        self,
        name: str,
        version: int | str,
        alias: str = DEFAULT_ALIAS,
        *,
        expected: Expected = UNCONDITIONAL,
        actor: str | None = None,
        reason: str = "",
        verify: bool = True,
    ) -> int | None:
        """Point ``alias`` at ``version`` (number or any reference); return the previous target.

        The target is verified first (every file's sha256 and the tensors, as ``load``): a
        corrupt version raises IntegrityError and the alias does not move. ``verify=False``
        skips that (tests that need an alias on a corrupt version).

        With ``expected`` the move is a compare-and-set: it happens only if the alias still
        points at that version (None: only if the alias does not exist yet), else ConflictError.
        Concurrent promoters never lose an update: each move is a compare-and-swap on the
        alias's ETag, retried on a lost race, and the history records every previous target.
        The move is logged in the alias's events with ``actor`` (default user@host) and
        ``reason``.
        """
        validate_alias(alias)
        target = self.resolve(name, version)
        if verify:
            self._verify_target(name, alias, target)
        move = promotion(name, alias, target, expected)
        who = {"actor": actor or default_actor(), "reason": reason}
        return move_alias(self.storage, name, alias, move, kind="promote", **who)

    def set_alias(
        self, name: str, alias: str, version: int | str, *, actor: str | None = None,
        reason: str = "", verify: bool = True,
    ) -> int | None:  # fmt: skip
        """Point ``alias`` at ``version`` unconditionally (``promote`` without ``expected``)."""
        return self.promote(name, version, alias, actor=actor, reason=reason, verify=verify)

    def rollback(
        self, name: str, alias: str = DEFAULT_ALIAS, *, actor: str | None = None, reason: str = ""
    ) -> int:
        """Move ``alias`` back to its previous target and return that version.

        The previous target is verified first: a corrupt one raises IntegrityError, no move.
        """
        validate_alias(alias)
        existing = set(self._existing_versions(name))
        moved: list[int] = []
        verified: set[int] = set()

        def back(record: dict[str, Any] | None) -> tuple[int, list[int]]:
            # Skips versions deleted by hand, so a dangling alias can be rolled back too.
            step = alias_records.stepped_back(record, alias, name, existing)
            moved[:] = [step[0]]
            if step[0] not in verified:  # once, even if the compare-and-swap retries
                self._verify_target(name, alias, step[0], action="roll back")
                verified.add(step[0])
            return step

        try:
            who = {"actor": actor or default_actor(), "reason": reason}
            move_alias(self.storage, name, alias, back, kind="rollback", **who)
        except NotFoundError as err:
            if not moved:
                raise
            raise NotFoundError(
                f"cannot roll back {alias!r} of model {name!r}: previous version {moved[0]} "
                "was deleted"
            ) from err
        return moved[0]

    def _verify_target(self, name: str, alias: str, version: int, action: str = "promote") -> None:
        """IntegrityError naming the refused move when ``version`` fails verification."""
        try:
            self.verify(name, version)
        except IntegrityError as err:
            raise IntegrityError(
                f"refusing to {action} {alias!r} of model {name!r} to version {version}, "
                f"which failed verification: {err}"
            ) from None
