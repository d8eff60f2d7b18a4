"""A generic, typed name → component registry, filled once at start-up by registration hooks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from vidrl.errors import RegistryError, choices_hint

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered component: its name, the object, and the plugin that registered it."""

    name: str
    obj: T
    plugin: str


class Registry(Generic[T]):
    """Components of one kind (``"advantage"``, ``"reward"``, ...) by unique name.

    Registering a name twice is an error that names both plugins; looking up an unknown name is an
    error that lists the valid names with a did-you-mean. Iteration is in registration order.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        #: appended to unknown-name errors (the session names plugins that failed to load here)
        self.note = ""

    def register(self, name: str, obj: T, plugin: str) -> None:
        if not isinstance(name, str) or not name:
            raise RegistryError(
                f"{self.kind} from plugin {plugin!r}: name must be a non-empty str, got {name!r}"
            )
        if name in self._entries:
            first = self._entries[name].plugin
            raise RegistryError(
                f"{self.kind} {name!r} is registered twice: by plugin {first!r} and by plugin "
                f"{plugin!r}; disable one of them (config plugins.disable or VIDRL_DISABLE_PLUGINS)"
            )
        self._entries[name] = Entry(name, obj, plugin)

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise RegistryError(
                f"unknown {self.kind} {name!r}; {choices_hint(name, self._entries)}{self.note}"
            ) from None

    def remove_plugin(self, plugin: str) -> list[str]:
        """Drop every entry ``plugin`` registered (a plugin that failed half-way); returns their names."""
        gone = [n for n, e in self._entries.items() if e.plugin == plugin]
        for n in gone:
            del self._entries[n]
        return gone

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def owner(self, name: str) -> str:
        """The name of the plugin that registered ``name``."""
        return self.entry(name).plugin

    def names(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> list[Entry[T]]:
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
