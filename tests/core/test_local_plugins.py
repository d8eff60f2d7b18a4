"""Plugins users bring unpackaged: a Python file (``plugins.paths``, ``--plugin FILE``) or an
importable module (``plugins.modules``) of components, loaded like an entry-point plugin, with
the same errors when they fail."""

import sys

import pytest
import yaml

import vidrl
from vidrl import Session, load_config
from vidrl.cli import main
from vidrl.config import to_plain
from vidrl.errors import ConfigError, PluginError

REWARDS = '''
import vidrl

class Shout(vidrl.Reward):
    """1 for a response in capitals."""
    name = "shout"

    def __call__(self, responses, samples):
        return [float(r.isupper()) for r in responses]

@vidrl.hookimpl
def register_rewards(register):
    register(Shout)
'''


UNKNOWN_HOOK = "import vidrl\n@vidrl.hookimpl\ndef register_nothing(register): pass"


@pytest.fixture
def rewards_file(tmp_path):
    path = tmp_path / "plugins" / "my_rewards.py"
    path.parent.mkdir()
    path.write_text(REWARDS)
    return path


def test_a_file_of_components_loads_as_a_plugin_named_by_its_stem(rewards_file):
    session = Session(paths=[str(rewards_file)]).load()
    reward = session.create("reward", "shout")
    assert reward(["YES", "no"], [None, None]) == [1.0, 0.0]
    info = session.plugins["my_rewards"]
    assert info.components["reward"] == ["shout"] and info.label == f"'my_rewards' (file {rewards_file})"
    assert session.registry("reward").entry("shout").plugin == "my_rewards"


def test_a_file_plugins_classes_pickle(rewards_file):
    import pickle

    session = Session(paths=[str(rewards_file)]).load()
    cls = session.registry("reward").get("shout")
    assert pickle.loads(pickle.dumps(cls)) is cls and type(pickle.loads(pickle.dumps(cls()))) is cls


def test_an_importable_module_loads_as_a_plugin(rewards_file, monkeypatch):
    monkeypatch.syspath_prepend(str(rewards_file.parent))
    monkeypatch.delitem(sys.modules, "my_rewards", raising=False)
    session = Session(modules=["my_rewards"]).load()
    assert session.plugins["my_rewards"].origin == "module my_rewards"
    assert "shout" in session.registry("reward").names()


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("raise RuntimeError('no GPU')", r"'broken' \(file .*broken.py\) failed to import: RuntimeError"),
        (UNKNOWN_HOOK, "unknown hook 'register_nothing'"),
        (None, r"plugin 'broken' \(file .*broken.py\): no such Python file"),
    ],
)  # fmt: skip
def test_a_broken_file_is_set_aside_like_an_entry_point_plugin(tmp_path, body, match):
    path = tmp_path / "broken.py"
    if body is not None:
        path.write_text(body)
    with pytest.warns(vidrl.PluginWarning, match=match):
        session = Session(paths=[str(path)]).load()
    assert "broken" in session.failed and "grpo" in session.registry("advantage").names()
    with pytest.raises(PluginError, match=match):
        Session(paths=[str(path)], strict=True).load()


def test_a_name_taken_by_an_installed_plugin_is_refused(tmp_path):
    path = tmp_path / "rewards.py"  # the built-in plugin of that name
    path.write_text(REWARDS)
    with pytest.raises(PluginError, match=r"two plugins are named 'rewards'"):
        Session(paths=[str(path)]).load()


def _config(tmp_path, **plugins):
    raw = {"plugins": plugins, "model": {"path": "m"}, "advantage": "grpo", "loss": "ppo_clip",
           "rewards": ["shout"], "stages": [{"name": "rl"}]}  # fmt: skip
    path = tmp_path / "configs" / "run.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(raw))
    return path


def test_config_paths_resolve_against_the_config_folder_and_are_kept_absolute(tmp_path, rewards_file):
    path = _config(tmp_path, paths=["../plugins/my_rewards.py"])
    config, session = load_config(path)
    assert config.plugins.paths == (str(rewards_file),) and "shout" in session.registry("reward").names()
    config2, _ = load_config(to_plain(config))
    assert config2.plugins.paths == (str(rewards_file),)  # a run directory's config.yaml resumes as it is


def test_without_the_plugin_the_config_names_the_missing_reward(tmp_path, rewards_file, monkeypatch):
    with pytest.raises(ConfigError, match="shout"):
        load_config(_config(tmp_path))
    monkeypatch.chdir(rewards_file.parent)
    config, _ = load_config(_config(tmp_path), plugin_paths=["my_rewards.py"])  # --plugin: the working folder
    assert config.plugins.paths == (str(rewards_file),)


def test_the_command_line_takes_plugin_files(tmp_path, rewards_file, capsys):
    path = _config(tmp_path)
    assert main(["validate", str(path), "--plugin", str(rewards_file)]) == 0
    assert main(["list", "reward", "--plugin", str(rewards_file)]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and "shout  (plugin my_rewards)" in out
    assert main(["plugins", "--plugin", str(rewards_file)]) == 0
    assert f"my_rewards  [file {rewards_file}]" in capsys.readouterr().out
