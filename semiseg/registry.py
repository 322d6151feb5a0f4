"""A small name → factory registry, in the spirit of timm's model registry."""

from __future__ import annotations

import fnmatch
from typing import Any, Callable, Generic, TypeVar

from semiseg.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories; ``@registry.register("name", **facts)`` adds one.

    ``facts`` are what a plugin declares about itself for :mod:`semiseg.catalog` (e.g. an encoder's
    ``head``); the registry's keyword arguments name the allowed facts and their defaults.
    """

    def __init__(self, kind: str, **fact_defaults: Any) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._facts: dict[str, dict[str, Any]] = {}
        self._defaults = fact_defaults

    def register(self, name: str, **facts: Any) -> Callable[[T], T]:
        unknown = set(facts) - set(self._defaults)
        if unknown:
            raise ValueError(f"{self.kind} {name!r}: unknown facts {sorted(unknown)}; valid: {sorted(self._defaults)}")

        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            self._facts[name] = {**self._defaults, **facts}
            return obj

        return add

    def get(self, name: str) -> T:
        if name not in self._items:
            raise ConfigError(f"unknown {self.kind} {name!r}; valid: {', '.join(self.names())}")
        return self._items[name]

    def facts(self, name: str) -> dict[str, Any]:
        """What the plugin ``name`` declared at registration (the registry's defaults for the rest)."""
        self.get(name)
        return dict(self._facts[name])

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a glob pattern (e.g. ``'uni*'``), in registration order."""
        if pattern == "*":
            return list(self._items)
        return [n for n in self._items if fnmatch.fnmatch(n, pattern)]

    def __contains__(self, name: object) -> bool:
        return name in self._items
