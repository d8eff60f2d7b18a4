"""The session: one plugin manager, its loaded plugins and the component registries they filled.

Nothing here is a module global: every engine run, CLI command and test builds its own Session.
Loading is explicit (``Session.load``), idempotent, and may be limited by enable/disable lists
from the config and the environment (``VIDRL_PLUGINS``, ``VIDRL_DISABLE_PLUGINS``).

A plugin that fails (its import raises, a registration hook raises, it implements an unknown hook
or registers an invalid component) is set aside: its components are removed, it is listed in
``Session.failed`` with the error and the original traceback, a ``PluginWarning`` says so, and
every other plugin loads. Only a run that names one of its components stops, with an error that
names the failed plugin. ``Session(strict=True)`` raises the first failure instead. A component
name registered by two plugins stays a hard error (which one is meant is ambiguous).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib.metadata as md
import os
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy

from vidrl.errors import PluginError, RegistryError, choices_hint
from vidrl.ops import dispatch
from vidrl.plugin import hookspecs, local
from vidrl.plugin.components import DEPRECATED_NEEDS, KINDS, Component, NoOptions, check_component_class
from vidrl.plugin.registry import Registry

ENTRY_POINT_GROUP = "vidrl"
ENV_ENABLE = "VIDRL_PLUGINS"
ENV_DISABLE = "VIDRL_DISABLE_PLUGINS"

_CURRENT_PLUGIN: contextvars.ContextVar[PluginInfo | None] = contextvars.ContextVar(
    "vidrl_current_plugin", default=None
)


@dataclass
class PluginInfo:
    """A loaded plugin: its name (the entry-point name), where it comes from, what it registered."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    components: dict[str, list[str]] = field(default_factory=dict)
    #: why it failed to load (None: it loaded) and the original exception's traceback
    error: str | None = None
    traceback: str | None = None
    #: problems that did not stop it, e.g. a hook-named function without ``@vidrl.hookimpl``
    warnings: list[str] = field(default_factory=list)
    #: ``module <name>`` or ``file <path>`` for a plugin brought by the config or ``--plugin``
    origin: str | None = None

    @property
    def label(self) -> str:
        """``'name' (distribution dist 1.0)`` for error messages."""
        if self.origin is not None:
            return f"{self.name!r} ({self.origin})"
        if self.distribution is None:
            return f"{self.name!r} (no distribution: registered in-process)"
        return f"{self.name!r} (distribution {self.distribution} {self.version})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "module": self.module,
            "distribution": self.distribution,
            "version": self.version,
            "components": {k: list(v) for k, v in self.components.items() if v},
            **({"error": self.error} if self.error else {}),
            **({"warnings": list(self.warnings)} if self.warnings else {}),
        }


class PluginWarning(UserWarning):
    """A plugin failed to load and was set aside, or one of its functions is ignored."""


def parse_name_list(value: str | None) -> tuple[str, ...] | None:
    """``"a, b,,c"`` → ``("a", "b", "c")``; None or unset → None."""
    if value is None:
        return None
    return tuple(n.strip() for n in value.split(",") if n.strip())


class Session:
    """Plugin manager plus typed registries (one per kind in ``vidrl.plugin.components.KINDS``).

    ``enable``: if given, only these plugins load (``VIDRL_PLUGINS`` overrides it when set).
    ``disable``: these never load (merged with ``VIDRL_DISABLE_PLUGINS``).
    ``entry_points``: the candidates; default: installed entry points of group ``vidrl``.
    ``modules``, ``paths``: plugins a user brings unpackaged, importable modules and ``.py``
    files (``vidrl.plugin.local``), loaded like entry points.
    ``strict``: a plugin that fails raises ``PluginError`` instead of being set aside.
    """

    def __init__(
        self,
        *,
        enable: Iterable[str] | None = None,
        disable: Iterable[str] = (),
        environ: Mapping[str, str] | None = None,
        entry_points: Iterable[md.EntryPoint] | None = None,
        strict: bool = False,
        modules: Iterable[str] = (),
        paths: Iterable[str] = (),
    ):
        environ = os.environ if environ is None else environ
        env_enable = parse_name_list(environ.get(ENV_ENABLE))
        self.enable = (
            env_enable if env_enable is not None else (tuple(enable) if enable is not None else None)
        )
        self.disable = tuple(disable) + (parse_name_list(environ.get(ENV_DISABLE)) or ())
        self._entry_points = entry_points
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.registries: dict[str, Registry[type[Component]]] = {k: Registry(k) for k in KINDS}
        self.plugins: dict[str, PluginInfo] = {}
        #: plugins set aside because they failed to load, by name (see the module docstring)
        self.failed: dict[str, PluginInfo] = {}
        self.strict = strict
        self._extra: list[tuple[PluginInfo, object]] = []
        self._local = local.loaders(modules, paths)
        self._loaded = False

    @property
    def hook(self) -> Any:
        """The event hooks, e.g. ``session.hook.on_step_end(state=s, metrics=m)``."""
        return self.pm.hook

    def add_plugin(self, obj: object, name: str) -> None:
        """Add an in-process plugin (an object or module with hookimpls) before ``load``."""
        if self._loaded:
            raise PluginError(f"add_plugin({name!r}) after load(): add plugins before loading")
        self._extra.append((PluginInfo(name=name, module=getattr(obj, "__name__", repr(obj))), obj))

    def load(self) -> Session:
        """Import the enabled plugins, then fire every registration hook, one plugin at a time
        (in hook-call order) so that a failing plugin is set aside alone. Idempotent."""
        if self._loaded:
            return self
        candidates = self._candidates()
        self._check_names(candidates)
        for name in sorted(candidates):  # sorted: the same order on every machine and rank
            info, loader = candidates[name]
            if self._wanted(name):
                self._guarded(info, lambda info=info, loader=loader: self._register(info, loader()))
        for kind in KINDS.values():
            self._fire_registration(kind.name)
        self._note_failures()
        dispatch.install({e.name: e.obj() for e in self.registries["kernel"].entries()})
        self._loaded = True
        return self

    @contextlib.contextmanager
    def subscribed(self, listener: object, name: str) -> Iterator[None]:
        """Within the block, ``listener``'s ``@vidrl.hookimpl`` methods receive the event hooks
        like a plugin's (e.g. a loop stage recording its RL phase's ``on_rollouts_scored``). Only
        event hooks: a registration hook in a listener is an error, as is an unknown hook."""
        if not self._loaded:
            raise PluginError(f"subscribed({name!r}) before load(): load the session first")
        if name in self.plugins or self.pm.has_plugin(name):
            raise PluginError(f"subscribed({name!r}): that name is taken by a plugin or listener")
        info = PluginInfo(name=name, module=type(listener).__module__)
        try:
            self._register(info, listener)
            callers = self.pm.get_hookcallers(listener) or ()
            registering = [c.name for c in callers if c.name.startswith("register_")]
            if registering:
                raise PluginError(f"listener {name!r} implements registration hook(s) {registering}; "
                                  "listeners receive event hooks only")  # fmt: skip
            yield
        finally:
            if self.pm.is_registered(listener):
                self.pm.unregister(listener)
            self.plugins.pop(name, None)

    def registry(self, kind: str) -> Registry[type[Component]]:
        """The registry of a kind (see ``vidrl.plugin.components.KINDS``)."""
        if kind not in self.registries:
            raise RegistryError(f"unknown component kind {kind!r}; {choices_hint(kind, KINDS)}")
        return self.registries[kind]

    def create(self, kind: str, name: str, config: Any = None) -> Component:
        """Instantiate component ``name`` of ``kind`` with its ``Config`` (default options if None
        or ``NoOptions``, what a ``ComponentSpec`` written without options holds)."""
        entry = self.registry(kind).entry(name)
        component = entry.obj(None if isinstance(config, NoOptions) else config)
        component.plugin = entry.plugin  # errors about it name its plugin (``vidrl.engine.checks``)
        return component

    # -- loading internals -------------------------------------------------------------------

    def _candidates(self) -> dict[str, tuple[PluginInfo, Callable[[], object]]]:
        eps = self._entry_points
        if eps is None:
            eps = md.entry_points(group=ENTRY_POINT_GROUP)
        found: dict[str, tuple[PluginInfo, Callable[[], object]]] = {}
        for ep in eps:
            dist = getattr(ep, "dist", None)
            info = PluginInfo(
                name=ep.name,
                module=ep.value,
                distribution=dist.metadata["Name"] if dist is not None else None,
                version=dist.version if dist is not None else None,
            )
            if ep.name in found:
                prev = found[ep.name][0]
                if (prev.module, prev.distribution) == (info.module, info.distribution):
                    continue  # the same distribution seen twice on sys.path
                raise PluginError(f"two plugins are named {ep.name!r}: {prev.label} and {info.label}")
            found[ep.name] = (info, functools.partial(_import_entry_point, ep, info))
        extra = [(info, functools.partial(lambda o: o, obj)) for info, obj in self._extra]
        extra += [(PluginInfo(name=n, module=where.split(" ", 1)[1], origin=where), load)
                  for n, where, load in self._local]  # fmt: skip
        for info, load in extra:
            if info.name in found:
                raise PluginError(
                    f"two plugins are named {info.name!r}: {found[info.name][0].label} and {info.label}"
                )
            found[info.name] = (info, load)
        return found

    def _check_names(self, candidates: Mapping[str, object]) -> None:
        for source, names in (("enable", self.enable or ()), ("disable", self.disable)):
            for n in names:
                if n not in candidates:
                    raise PluginError(
                        f"cannot {source} plugin {n!r}: not installed; {choices_hint(n, candidates)}"
                    )

    def _wanted(self, name: str) -> bool:
        return (self.enable is None or name in self.enable) and name not in self.disable

    def _fire_registration(self, kind_name: str) -> None:
        """One registration hook, each loaded plugin's implementation in pluggy's call order (last
        registered first, ``tryfirst``/``trylast`` honoured), each guarded on its own."""
        register = self._register_callback(kind_name)
        for impl in reversed(getattr(self.pm.hook, KINDS[kind_name].hook).get_hookimpls()):
            info = self.plugins.get(impl.plugin_name)
            wraps = impl.hookwrapper or getattr(impl, "wrapper", False)  # wrap nothing at registration
            if info is not None and not wraps:  # None: set aside by an earlier hook
                args = [register for _ in impl.argnames]  # the only argument is ``register``
                self._guarded(info, lambda impl=impl, args=args: impl.function(*args))

    def _guarded(self, info: PluginInfo, fn: Callable[[], object]) -> None:
        """Run one plugin's loading step; a ``PluginError`` sets the plugin aside (or, strict, raises)."""
        try:
            fn()
        except PluginError as e:
            if self.strict:
                raise
            self._set_aside(info, e)

    def _set_aside(self, info: PluginInfo, error: PluginError) -> None:
        if self.pm.has_plugin(info.name):
            self.pm.unregister(name=info.name)
        for registry in self.registries.values():
            registry.remove_plugin(info.name)
        self.plugins.pop(info.name, None)
        cause = error.__cause__ or error
        info.error, info.components = str(error), {}
        info.traceback = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
        self.failed[info.name] = info
        warnings.warn(f"{error}; {disable_hint(info.name)}", PluginWarning, stacklevel=4)

    def _note_failures(self) -> None:
        """Unknown-name errors of every kind name the plugins that failed (they may own the name)."""
        if self.failed:
            names = ", ".join(f"{n!r} ({i.error})" for n, i in sorted(self.failed.items()))
            note = f"; plugin(s) that failed to load, which may provide it: {names}"
            for registry in self.registries.values():
                registry.note = note

    def _register(self, info: PluginInfo, obj: object) -> None:
        hooks = [n for n in dir(hookspecs) if n.startswith(("register_", "on_"))]
        for name in hooks:
            if callable(getattr(obj, name, None)) and self.pm.parse_hookimpl_opts(obj, name) is None:
                info.warnings.append(f"{name} is not decorated with @vidrl.hookimpl: it is ignored")
                warnings.warn(f"plugin {info.label}: {info.warnings[-1]}", PluginWarning, stacklevel=5)
        try:
            self.pm.register(obj, name=info.name)
        except pluggy.PluginValidationError as e:
            raise PluginError(f"plugin {info.label} is invalid: {e}") from e
        for caller in self.pm.get_hookcallers(obj) or ():
            if caller.spec is None:
                hint = choices_hint(caller.name, hooks)
                raise PluginError(f"plugin {info.label} implements unknown hook {caller.name!r}; {hint}")
            for impl in caller.get_hookimpls():
                if impl.plugin is obj and not (impl.hookwrapper or getattr(impl, "wrapper", False)):
                    impl.function = _attributed(impl.function, info, caller.name)
        info.components = {k: [] for k in KINDS}
        self.plugins[info.name] = info

    def _register_callback(self, kind_name: str) -> Callable[[type], None]:
        kind = KINDS[kind_name]

        def register(cls: type) -> None:
            info = _CURRENT_PLUGIN.get()
            if info is None:
                raise PluginError(f"register() for {kind.name} called outside a registration hook")
            problem = check_component_class(kind, cls)
            if problem:
                raise PluginError(f"plugin {info.label} registered an invalid {kind.name}: {problem}")
            self.registries[kind.name].register(cls.name, cls, plugin=info.name)
            stale = sorted(n.value for n in DEPRECATED_NEEDS & set(getattr(cls, "requires", ())))
            if stale:
                info.warnings.append(
                    f"{kind.name} {cls.name!r} declares deprecated needs {stale}: never read"
                )
                warnings.warn(f"plugin {info.label}: {info.warnings[-1]}", PluginWarning, stacklevel=2)
            info.components[kind.name].append(cls.name)

        return register


def disable_hint(name: str) -> str:
    """How to turn a plugin off."""
    return f"to run without it: VIDRL_DISABLE_PLUGINS={name} (or plugins: {{disable: [{name}]}} in a config)"


def _import_entry_point(ep: md.EntryPoint, info: PluginInfo) -> object:
    try:
        return ep.load()
    except Exception as e:
        raise PluginError(
            f"plugin {info.label} failed to import {ep.value!r}: {type(e).__name__}: {e}"
        ) from e


def _attributed(fn: Callable[..., Any], info: PluginInfo, hook_name: str) -> Callable[..., Any]:
    """Wrap a hook implementation so errors name its plugin, and ``register`` knows the caller."""

    @functools.wraps(fn)
    def call(*args: Any) -> Any:
        token = _CURRENT_PLUGIN.set(info)
        try:
            return fn(*args)
        except (PluginError, RegistryError):
            raise  # already names the plugin(s) at fault
        except Exception as e:
            raise PluginError(
                f"plugin {info.label} raised in hook {hook_name}: {type(e).__name__}: {e}"
            ) from e
        finally:
            _CURRENT_PLUGIN.reset(token)

    return call
