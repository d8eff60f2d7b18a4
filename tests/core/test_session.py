"""Plugin loading: entry points, enable/disable, ordering, and errors that name the culprit."""

import importlib.metadata as md

import pytest

import vidrl
from vidrl import PluginError, PluginWarning, RegistryError, Session

GOOD = """
import dataclasses
import vidrl

class Half(vidrl.AdvantageEstimator):
    '''A = R / 2. Shapes: [B] -> [B].'''
    name = "{name}"

    def __call__(self, rewards, group_ids):
        import torch
        return vidrl.Advantages(rewards / 2, torch.zeros(0, dtype=torch.bool), torch.ones(0))

@vidrl.hookimpl{marker}
def register_advantage_estimators(register):
    register(Half)
"""


def _good(name: str = "half", marker: str = "") -> str:
    return GOOD.format(name=name, marker=marker)


def _set_aside(plugin: str) -> str:
    """Load a session in which ``plugin`` fails: it is set aside with a warning, every other plugin
    loads, and a strict session raises the same error. Returns the error message."""
    with pytest.warns(PluginWarning, match=f"VIDRL_DISABLE_PLUGINS={plugin}"):
        s = Session().load()
    assert plugin in s.failed and plugin not in s.plugins
    assert "grpo" in s.registry("advantage")  # the others still load
    with pytest.raises(PluginError) as strict:
        Session(strict=True).load()
    assert str(strict.value) == s.failed[plugin].error
    return s.failed[plugin].error


def test_builtin_plugins_load_through_entry_points():
    s = Session().load()
    info = s.plugins["grpo_family"]
    assert info.distribution == "vidrl" and info.version == vidrl.__version__
    assert info.module == "vidrl.plugins.grpo_family"
    assert info.components["advantage"] == ["grpo", "dr_grpo", "rloo"]
    assert s.registry("advantage").owner("rloo") == "grpo_family"


def test_third_party_distribution_is_discovered(fake_dist):
    fake_dist("vidrl-half", "0.3", {"half": "half_plugin"}, {"half_plugin": _good()})
    s = Session().load()
    assert s.plugins["half"].distribution == "vidrl-half"
    assert s.plugins["half"].version == "0.3"
    est = s.create("advantage", "half")
    assert est(vidrl_tensor([2.0, 4.0]), vidrl_tensor([0, 0])).advantages.tolist() == [1.0, 2.0]


def vidrl_tensor(values):
    import torch

    return torch.tensor(values)


def test_load_is_idempotent(fake_dist):
    fake_dist("vidrl-half", "0.3", {"half": "half_plugin"}, {"half_plugin": _good()})
    s = Session()
    assert s.load() is s.load()
    assert s.registry("advantage").names().count("half") == 1


def test_sessions_are_independent(fake_dist):
    fake_dist("vidrl-half", "0.3", {"half": "half_plugin"}, {"half_plugin": _good()})
    a = Session(disable=["half"]).load()
    b = Session().load()
    assert "half" not in a.registry("advantage") and "half" in b.registry("advantage")


def test_import_failure_names_plugin_and_distribution(fake_dist):
    fake_dist(
        "vidrl-broken",
        "1.2.3",
        {"broken": "broken_plugin"},
        {"broken_plugin": "import no_such_module_xyz\n"},
    )
    msg = _set_aside("broken")
    assert "'broken'" in msg and "vidrl-broken 1.2.3" in msg and "no_such_module_xyz" in msg


def test_raising_hook_names_plugin_distribution_and_hook(fake_dist):
    src = "import vidrl\n@vidrl.hookimpl\ndef register_rewards(register):\n    raise RuntimeError('boom')\n"
    fake_dist("vidrl-boom", "0.1", {"boom": "boom_plugin"}, {"boom_plugin": src})
    msg = _set_aside("boom")
    assert "'boom'" in msg and "vidrl-boom 0.1" in msg and "register_rewards" in msg and "boom" in msg
    with pytest.raises(PluginError) as e:
        Session(strict=True).load()
    assert isinstance(e.value.__cause__, RuntimeError)


def test_raising_event_hook_names_plugin(fake_dist):
    src = "import vidrl\n@vidrl.hookimpl\ndef on_step_end(metrics):\n    raise KeyError('lr')\n"
    fake_dist("vidrl-ev", "0.1", {"ev": "ev_plugin"}, {"ev_plugin": src})
    s = Session().load()
    with pytest.raises(PluginError, match=r"'ev' \(distribution vidrl-ev 0.1\) raised in hook on_step_end"):
        s.hook.on_step_end(state=None, metrics={})


def test_event_hooks_receive_a_subset_of_arguments(fake_dist):
    src = "import vidrl\n@vidrl.hookimpl\ndef on_step_end(metrics):\n    metrics['seen'] = 1.0\n"
    fake_dist("vidrl-ev", "0.1", {"ev": "ev_plugin"}, {"ev_plugin": src})
    metrics: dict = {}
    Session().load().hook.on_step_end(state=object(), metrics=metrics)
    assert metrics == {"seen": 1.0}


def test_unknown_hook_name_is_an_error_with_suggestion(fake_dist):
    src = "import vidrl\n@vidrl.hookimpl\ndef register_reward(register):\n    pass\n"
    fake_dist("vidrl-typo", "0.1", {"typo": "typo_plugin"}, {"typo_plugin": src})
    msg = _set_aside("typo")
    assert "'register_reward'" in msg and "did you mean 'register_rewards'" in msg


def test_duplicate_component_names_both_plugins(fake_dist):
    fake_dist("vidrl-dup", "0.1", {"dup": "dup_plugin"}, {"dup_plugin": _good(name="grpo")})
    with pytest.raises(RegistryError) as e:
        Session().load()
    assert "grpo_family" in str(e.value) and "'dup'" in str(e.value)
    # disabling either side resolves it
    assert Session(disable=["dup"]).load().registry("advantage").owner("grpo") == "grpo_family"
    assert Session(disable=["grpo_family"]).load().registry("advantage").owner("grpo") == "dup"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("register(int)", "expected a subclass of vidrl.AdvantageEstimator"),
        (
            "register(type('X', (vidrl.AdvantageEstimator,), {'__call__': lambda s, r, g: r}))",
            "has no `name`",
        ),
        ("register(type('X', (vidrl.AdvantageEstimator,), {'name': 'x'}))", "abstract methods"),
        (
            "register(type('X', (vidrl.AdvantageEstimator,),"
            " {'name': 'x', 'Config': dict, '__call__': lambda s, r, g: r}))",
            "must be a frozen dataclass",
        ),
    ],
)
def test_invalid_component_classes_are_rejected(fake_dist, body, expected):
    src = f"import vidrl\n@vidrl.hookimpl\ndef register_advantage_estimators(register):\n    {body}\n"
    fake_dist("vidrl-bad", "0.1", {"bad": "bad_plugin"}, {"bad_plugin": src})
    msg = _set_aside("bad")
    assert "'bad'" in msg and expected in msg


def test_enable_and_disable_lists(fake_dist):
    fake_dist("vidrl-half", "0.3", {"half": "half_plugin"}, {"half_plugin": _good()})
    assert set(Session(enable=["half"]).load().plugins) == {"half"}
    builtin = {ep.name for ep in md.entry_points(group="vidrl") if ep.dist.metadata["Name"] == "vidrl"}
    assert {"grpo_family", "kernels", "rewards", "video_backends"} <= builtin
    assert set(Session(disable=["half"]).load().plugins) == builtin


def test_environment_overrides(fake_dist):
    fake_dist("vidrl-half", "0.3", {"half": "half_plugin"}, {"half_plugin": _good()})
    env = {"VIDRL_PLUGINS": "half, grpo_family", "VIDRL_DISABLE_PLUGINS": "grpo_family"}
    # VIDRL_PLUGINS replaces the config's enable list; disables from both sources add up
    s = Session(enable=["grpo_family"], environ=env).load()
    assert set(s.plugins) == {"half"}


@pytest.mark.parametrize("key", ["enable", "disable"])
def test_unknown_plugin_in_lists_lists_installed(key):
    with pytest.raises(PluginError) as e:
        Session(**{key: ["grpo_famly"]}).load()
    assert f"cannot {key} plugin 'grpo_famly'" in str(e.value)
    assert "did you mean 'grpo_family'" in str(e.value)


def test_hook_call_order_is_deterministic_and_honours_tryfirst(fake_dist):
    # plugins register in sorted name order; pluggy calls the last registered first
    fake_dist("vidrl-a", "0.1", {"aaa": "a_plugin"}, {"a_plugin": _good(name="from_a")})
    fake_dist("vidrl-z", "0.1", {"zzz": "z_plugin"}, {"z_plugin": _good(name="from_z")})
    names = Session(disable=["grpo_family", "dgrpo"]).load().registry("advantage").names()
    assert names == ["from_z", "from_a"]


def test_tryfirst_moves_a_plugin_ahead(fake_dist):
    fake_dist(
        "vidrl-a",
        "0.1",
        {"aaa": "a_plugin"},
        {"a_plugin": _good(name="from_a", marker="(tryfirst=True)")},
    )
    fake_dist("vidrl-z", "0.1", {"zzz": "z_plugin"}, {"z_plugin": _good(name="from_z")})
    names = Session(disable=["grpo_family", "dgrpo"]).load().registry("advantage").names()
    assert names == ["from_a", "from_z"]


def test_two_distributions_with_the_same_plugin_name(fake_dist):
    fake_dist("vidrl-one", "0.1", {"same": "one_plugin"}, {"one_plugin": _good(name="one")})
    fake_dist("vidrl-two", "0.1", {"same": "two_plugin"}, {"two_plugin": _good(name="two")})
    with pytest.raises(PluginError, match="two plugins are named 'same'.*vidrl-"):
        Session().load()


def test_in_process_plugin_and_explicit_entry_points():
    class Mod:
        pass

    s = Session(entry_points=[md.EntryPoint("grpo_family", "vidrl.plugins.grpo_family", "vidrl")])
    s.add_plugin(Mod(), "empty")
    s.load()
    assert set(s.plugins) == {"grpo_family", "empty"}
    assert s.plugins["empty"].distribution is None
    with pytest.raises(PluginError, match="after load"):
        s.add_plugin(Mod(), "late")


def test_unknown_kind_lists_kinds():
    with pytest.raises(RegistryError) as e:
        Session().load().registry("rewards")
    assert "did you mean 'reward'" in str(e.value)


def test_a_failed_plugin_leaves_nothing_registered_and_is_named_where_its_component_is_asked_for(fake_dist):
    src = (
        _good(name="half")
        + "\n@vidrl.hookimpl\ndef register_rewards(register):\n"
        + "    raise RuntimeError('no GPU for my reward')\n"
    )
    fake_dist("vidrl-half", "0.3", {"half": "half_plugin"}, {"half_plugin": src})
    with pytest.warns(PluginWarning):
        s = Session().load()
    # the estimator it registered before its reward hook raised is gone with it
    assert "half" not in s.registry("advantage") and s.failed["half"].components == {}
    assert "RuntimeError: no GPU for my reward" in s.failed["half"].traceback
    assert "raise RuntimeError" in s.failed["half"].traceback  # the original frame, not the wrapper's
    with pytest.raises(RegistryError) as e:
        s.create("advantage", "half")
    assert "failed to load" in str(e.value) and "'half'" in str(e.value) and "no GPU" in str(e.value)
    assert s.create("advantage", "grpo").name == "grpo"  # runs that do not use it are not blocked


def test_hook_named_functions_without_hookimpl_warn(fake_dist):
    src = _good(name="half") + "\ndef register_rewards(register):\n    pass\n"
    fake_dist("vidrl-half", "0.3", {"half": "half_plugin"}, {"half_plugin": src})
    with pytest.warns(PluginWarning, match="register_rewards is not decorated with @vidrl.hookimpl"):
        s = Session().load()
    assert s.plugins["half"].warnings == [
        "register_rewards is not decorated with @vidrl.hookimpl: it is ignored"
    ]
    assert "half" in s.registry("advantage")  # the decorated hook still counts


TOOL = """
import vidrl

class Look(vidrl.Tool):
    name = "look"
    parameters = {parameters}

    def __call__(self, arguments, context):
        return vidrl.Observation(text="seen")

@vidrl.hookimpl
def register_tools(register):
    register(Look)
"""


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ("{'type': 'array'}", 'must be a JSON schema of type "object"'),
        ("{'type': 'object', 'properties': {'t': 'number'}}", "argument 't' must be a schema"),
        ("{'type': 'object', 'properties': {'t': {'type': 'float'}}}", "argument 't' has 'type' 'float'"),
        (
            "{'type': 'object', 'properties': {'t': {'type': ['number', 'time']}}}",
            "has 'type' ['number', 'time']",
        ),
        (
            "{'type': 'object', 'properties': {'t': {'type': 'number'}}, 'required': ['s']}",
            "['required'] must list",
        ),
    ],
)
def test_tool_schemas_are_validated_at_registration(fake_dist, parameters, expected):
    fake_dist(
        "vidrl-look", "0.1", {"look": "look_plugin"}, {"look_plugin": TOOL.format(parameters=parameters)}
    )
    msg = _set_aside("look")
    assert "registered an invalid tool" in msg and expected in msg


@pytest.mark.parametrize(
    "schema",
    [
        "{'type': 'object', 'properties': {'t': {'type': 'number'}}, 'required': ['t']}",
        "{'type': 'object', 'properties': {'t': {'description': 'any'}, 'u': {'type': ['string', 'null']}}}",
    ],
)
def test_a_valid_tool_schema_registers(fake_dist, schema):
    fake_dist("vidrl-look", "0.1", {"look": "look_plugin"}, {"look_plugin": TOOL.format(parameters=schema)})
    assert Session(strict=True).load().registry("tool").owner("look") == "look"


def test_declaring_a_deprecated_need_warns(fake_dist):
    src = _good(name="half").replace(
        '    name = "half"\n', '    name = "half"\n    requires = frozenset({vidrl.Need.VIDEO})\n'
    )
    fake_dist("vidrl-half", "0.3", {"half": "half_plugin"}, {"half_plugin": src})
    with pytest.warns(
        PluginWarning, match=r"advantage 'half' declares deprecated needs \['video'\]: never read"
    ):
        s = Session().load()
    assert "half" in s.registry("advantage")  # a warning, not a failure
