"""Exception types. Every vidrl error says what was wrong, the offending value and the valid choices."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class VidrlError(Exception):
    """Base class of every error vidrl raises on purpose."""


class RegistryError(VidrlError):
    """A component name is unknown, or registered twice."""


class PluginError(VidrlError):
    """A plugin failed to import, or one of its hooks raised."""


class ConfigError(VidrlError):
    """A configuration is invalid. ``errors`` holds every problem found, one line each."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        lines = "\n".join(f"  - {e}" for e in self.errors)
        super().__init__(f"{len(self.errors)} configuration error(s):\n{lines}")


def choices_hint(value: str, valid: Iterable[str]) -> str:
    """``"valid choices: a, b, c (did you mean 'b'?)"`` for an unknown ``value``."""
    valid = sorted(valid)
    if not valid:
        return "there are no valid choices (nothing is registered)"
    hint = f"valid choices: {', '.join(valid)}"
    value = str(value)
    # a prefix relation ('eps' for 'epsilon') beats edit similarity, which would pick 'singleton'
    close = [
        v for v in valid if len(min(v, value, key=len)) >= 3 and (v.startswith(value) or value.startswith(v))
    ]
    close = close or difflib.get_close_matches(value, valid, n=1, cutoff=0.6)
    if close:
        hint += f" (did you mean {close[0]!r}?)"
    return hint


class ComponentError(VidrlError):
    """A component returned something outside its contract (wrong type, shape, range, or a
    non-finite value); the message names the component, its plugin and what was expected."""
