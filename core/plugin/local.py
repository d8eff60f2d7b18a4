"""Plugins a user brings without packaging them: importable modules (``plugins.modules``) and
Python files (``plugins.paths``, ``--plugin FILE``), each a module of ``@vidrl.hookimpl``
functions like an entry-point plugin's, loaded by the ``Session`` with the same errors. A file's
plugin is named after its stem (``my_rewards.py`` → ``my_rewards``), a module's after its dotted
name."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType

from vidrl.errors import PluginError

#: the package name under which plugin files are imported (``sys.modules`` keys)
FILE_PACKAGE = "vidrl_local_plugins"


def plugin_name(spec: str, is_path: bool) -> str:
    """The plugin name of a module name or a file path."""
    return Path(spec).stem if is_path else spec


def loaders(modules: Iterable[str], paths: Iterable[str]) -> list[tuple[str, str, Callable[[], object]]]:
    """(plugin name, where it comes from, import function) for each module and file."""
    out = [(plugin_name(m, False), f"module {m}", lambda m=m: _import_module(m)) for m in modules]
    out += [(plugin_name(p, True), f"file {p}", lambda p=p: _import_file(Path(p))) for p in paths]
    return out


def _import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except Exception as e:
        raise PluginError(f"plugin {name!r} (module {name}) failed to import: {type(e).__name__}: {e}") from e


def _import_file(path: Path) -> ModuleType:
    """Import ``path`` as ``vidrl_local_plugins.<stem>`` (so its classes pickle and print well)."""
    who = f"plugin {path.stem!r} (file {path})"
    if path.suffix != ".py" or not path.is_file():
        raise PluginError(
            f"{who}: no such Python file" + ("" if path.suffix == ".py" else " (need a .py file)")
        )
    key = f"{FILE_PACKAGE}.{path.stem}"
    if key in sys.modules and getattr(sys.modules[key], "__file__", None) == str(path):
        return sys.modules[key]
    if FILE_PACKAGE not in sys.modules:  # the parent package, so that pickle finds the file's classes
        package = ModuleType(FILE_PACKAGE)
        package.__path__ = []
        sys.modules[FILE_PACKAGE] = package
    spec = importlib.util.spec_from_file_location(key, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[key]
        raise PluginError(f"{who} failed to import: {type(e).__name__}: {e}") from e
    return module
