"""ServedModels: the served models, hot-reloaded from the registry and swapped atomically.

The default model is one immutable `ServedModel` (version + Predictor) behind a single
reference: a request reads it once and finishes on that version even if a poll swaps in a newer
one meanwhile. A background thread polls `Registry.state_token` (cheap) and, when it changes,
resolves the served alias (production, else latest) and loads, verifies and warms up the new
version (service/serving/warmup.py) before swapping. A version that fails verification or warm-up
is refused, logged and counted; the old one keeps serving. The same poll picks up the alias's
canary and shadow (registry/traffic.py), loaded and warmed the same way, and publishes all three
as one immutable `Routing`. Versions pinned by requests are loaded on demand into a small LRU
cache.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from registry import (
    IntegrityError,
    InvalidNameError,
    NotFoundError,
    Registry,
    RegistryError,
    StoreConfigurationError,
    StoreUnavailableError,
)
from registry.traffic import AliasState, Split
from service.observability.metrics import ServiceMetrics
from service.serving.errors import (
    InvalidInput,
    ModelNotReady,
    ModelUnusable,
    NotFound,
    without_location,
)
from service.serving.loading import LoadedVersions, ServedModel, load_version
from service.serving.priority import lower_thread_priority
from service.serving.reachability import StoreReachability
from service.serving.routing import Routing
from service.serving.warmup import WarmupError, warmup_batches

__all__ = ["ServedModel", "ServedModels"]

logger = logging.getLogger("service.serving.served")


class ServedModels:
    """Serves `name` at `alias` (default production, else latest) plus pinned versions."""

    def __init__(
        self,
        registry: Registry,
        name: str,
        *,
        alias: str = "production",
        poll_interval_s: float = 2.0,
        cache_size: int = 4,
        metrics: ServiceMetrics | None = None,
        warmup: tuple[int, ...] = warmup_batches(1024),
    ) -> None:
        self.registry = registry
        self.name = name
        self.alias = alias
        self.poll_interval_s = poll_interval_s
        self.metrics = metrics
        self.warmup = warmup  # batch sizes every version is run at before it may serve
        self._routing: Routing | None = None
        self._rng = random.Random()  # canary coin flips for requests without a routing key
        self._aliases: dict[str, int] = {}
        self._token: str | None = None
        self._refused: set[int] = set()
        self._cache = LoadedVersions(cache_size)  # versions pinned by requests
        self._load_lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self.polls = 0  # registry polls completed by the poller (a change lands within two)
        self._loader = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="model-loader", initializer=lower_thread_priority
        )
        self._store = StoreReachability(name, metrics.registry_reachable if metrics else None)
        # Called with the new default model after every swap (the server flips health to SERVING).
        self.on_swap: list[Callable[[ServedModel], None]] = []

    @property
    def current(self) -> ServedModel | None:
        """The default model, or None before the first successful load."""
        routing = self._routing
        return None if routing is None else routing.production

    @property
    def routing(self) -> Routing | None:
        """Production, canary and shadow as one consistent set (None before the first load)."""
        return self._routing

    def start(self) -> None:
        """Load the default model now (if there is one) and start polling for new versions.

        An unreachable object store does not stop the start: polling catches up once it is back.
        A store that refuses the configuration (wrong or missing credentials, no such bucket)
        does: StoreConfigurationError, since waiting would not fix it.
        """
        self.poll_once(log_errors=False)
        if self._poller is None and self.poll_interval_s > 0:
            self._poller = threading.Thread(target=self._poll, name="model-poller", daemon=True)
            self._poller.start()

    def stop(self) -> None:
        self._stop.set()
        self._loader.shutdown(wait=False, cancel_futures=True)
        if self._poller is not None:
            self._poller.join(timeout=10)
            self._poller = None

    def get(
        self, version: int | None = None, alias: str | None = None, routing_key: str | None = None
    ) -> ServedModel:
        """The model for a request: pinned version, alias, or (neither) production or the canary.

        An unpinned request goes to the canary for its percent of requests: always the same side
        for the same ``routing_key``, at random without one.
        """
        routing = self._routing
        if version is None and not alias:
            if routing is None:
                raise ModelNotReady(f"no version of model {self.name!r} is loaded yet")
            return routing.pick(routing_key, self._rng)
        current = None if routing is None else routing.production
        if version is None:
            version = self.resolve_alias(str(alias))
        if current is not None and current.version == version:
            return current
        return self._pinned(int(version))

    def shadow_of(self, served: ServedModel) -> ServedModel | None:
        """The shadow to run after an unpinned request answered by ``served`` (if sampled)."""
        routing = self._routing
        return None if routing is None else routing.shadow_of(served, self._rng)

    def refresh(self) -> bool:
        """One poll: swap in the version the alias now points to. True if the model changed.

        The canary and shadow of the alias are (re)loaded on the same poll. The state token is
        only recorded once a change has been fully handled (swapped, refused or found to need
        nothing), so a transient failure (e.g. an I/O error) is retried next poll.
        """
        token = self.registry.state_token(self.name)
        self._set_reachable(True)
        if token == self._token:
            return False
        try:
            target = self._resolve_default()
            self._aliases = self.registry.aliases(self.name)
            record = self.registry.alias_record(self.name, self.alias)
        except NotFoundError as err:
            current = self.current
            if current is None:
                logger.warning("no model to serve yet: %s", err)
            else:  # e.g. the alias's version was deleted by hand: the loaded copy still works
                logger.warning("keeps serving %r version %s from memory: %s", self.name,
                               current.version, err)  # fmt: skip
            self._token = token
            return False
        previous = self.current
        production = self._production(target, previous)
        if production is None:
            self._token = token
            return False
        state = AliasState.of(record) if record is not None else None
        canary = self._extra(state.canary if state else None, production, "canary")
        shadow = self._extra(state.shadow if state else None, production, "shadow")
        self._routing = Routing(  # the atomic swap: one reference assignment
            production,
            canary,
            state.canary.percent if canary and state and state.canary else 0.0,
            shadow,
            state.shadow.percent if shadow and state and state.shadow else 0.0,
        )
        self._token = token
        if production is previous:
            return False
        if self.metrics is not None:
            if previous is not None:
                self.metrics.reloads.inc()
            self.metrics.set_served(self.name, target)
        logger.info("serving %r version %s (was %s)", self.name, target,
                    previous.version if previous else None)  # fmt: skip
        for listener in self.on_swap:
            listener(production)
        return True

    def _production(self, target: int, current: ServedModel | None) -> ServedModel | None:
        """The model to serve as production: ``target`` loaded, or ``current`` if refused."""
        if current is not None and current.version == target:
            return current
        if target in self._refused:
            return current
        served = self.loaded(target) or self._try_load(target, "production")
        return current if served is None else served

    def _extra(self, split: Split | None, production: ServedModel, role: str) -> ServedModel | None:
        """The loaded canary or shadow of ``split`` (None if unset, production or refused)."""
        if split is None or split.version == production.version or split.version in self._refused:
            return None
        return self.loaded(split.version) or self._try_load(split.version, role)

    def _try_load(self, version: int, role: str) -> ServedModel | None:
        """Load, verify and warm up ``version``; None (refused for good) if it is unusable."""
        try:
            # On the niced loader thread: load, hashing and warm-up yield the CPU to the answers,
            # while this poller (not niced) still applies routing changes on time.
            served = self._loader.submit(self._load, version).result()
        except (IntegrityError, ValueError) as err:  # permanent: versions are immutable
            self._refused.add(version)
            self._count_failure(err)
            current = self.current
            logger.error("refused version %s of %r as %s, keeping %s: %s", version, self.name,
                         role, current.version if current else None, err)  # fmt: skip
            return None
        except Exception as err:
            self._count_failure(err)
            raise  # the poller logs it and tries again at the next poll
        self._remember(served)
        return served

    def _count_failure(self, err: Exception) -> None:
        if self.metrics is not None:
            self.metrics.reload_failures.inc()
            if isinstance(err, WarmupError):
                self.metrics.warmup_failures.inc()

    def in_memory(
        self, version: int | None = None, alias: str | None = None, routing_key: str | None = None
    ) -> ServedModel | None:
        """`get` without touching the registry: the model if it is in memory, else None.

        ModelNotReady when the default model is asked for before the first load. The event loop
        calls this first and runs `get` (which may read and verify files) in a worker thread
        only when it returns None.
        """
        if version is None and not alias:
            return self.get(routing_key=routing_key)
        if version is None:
            version = self._aliases.get(str(alias))
            if version is None:
                return None
        return self.loaded(int(version))

    def loaded(self, version: int) -> ServedModel | None:
        """The in-memory model of `version`, if this server has it loaded."""
        current = self.current
        if current is not None and current.version == version:
            return current
        return self._cache.get(version)

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            self.poll_once()
            self.polls += 1

    def poll_once(self, *, log_errors: bool = True) -> None:
        """refresh(), turning an unreachable store into a log line and the reachable metric."""
        try:
            self.refresh()
        except StoreConfigurationError as err:
            if not log_errors:  # at start-up: a configuration to fix, not an outage to wait out
                raise
            self._set_reachable(False, err)
        except StoreUnavailableError as err:
            self._set_reachable(False, err)
        except Exception:  # a broken registry must never kill the poller
            if not log_errors:
                raise
            logger.exception("model poll failed; retrying in %ss", self.poll_interval_s)

    def _set_reachable(self, reachable: bool, err: Exception | None = None) -> None:
        current = self.current
        self._store.update(reachable, current.version if current else None, err)

    def _resolve_default(self) -> int:
        if self.alias == "production":
            return self.registry.resolve(self.name, None)  # production, else latest
        return self.registry.resolve(self.name, self.alias)

    def resolve_alias(self, alias: str) -> int:
        """Version an alias (or "latest") points to; NotFound / InvalidInput otherwise."""
        if alias in self._aliases:
            return self._aliases[alias]
        try:
            return self.registry.resolve(self.name, alias)
        except InvalidNameError as err:
            raise InvalidInput(self._public(err)) from None
        except NotFoundError as err:
            raise NotFound(self._public(err)) from None

    def _public(self, err: Exception) -> str:
        """The message of a registry error without the registry's root (sent to clients)."""
        return without_location(str(err), self.registry.location)

    def _pinned(self, version: int) -> ServedModel:
        cached = self._cache.get(version)
        if cached is not None:
            return cached
        with self._load_lock:  # one load at a time: concurrent misses wait, then hit the cache
            cached = self.loaded(version)
            if cached is not None:
                return cached
            try:
                served = self._load(version)
            except NotFoundError as err:
                raise NotFound(self._public(err)) from None
            except (RegistryError, ValueError) as err:
                logger.error("version %s of %r is unusable: %s", version, self.name, err)
                raise ModelUnusable(f"version {version} failed verification") from None
            self._remember(served)
            return served

    def _load(self, version: int) -> ServedModel:
        return load_version(self.registry, self.name, version, self.warmup)

    def _remember(self, served: ServedModel) -> None:
        self._cache.remember(served)
