"""The command line: every command's --help, output, and error exits without tracebacks."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vidrl.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ["train", "eval", "estimate", "plugins", "check-plugin", "list", "validate", "data", "bench"]


@pytest.mark.parametrize("command", [[], *([c] for c in COMMANDS), ["data", "synth"], ["data", "check"]])
def test_help_on_every_command(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([*command, "--help"])
    assert e.value.code == 0
    assert "usage: vidrl" in capsys.readouterr().out


def test_parser_knows_every_documented_command():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert sorted(sub.choices) == sorted(COMMANDS)


def test_plugins_json(capsys):
    assert main(["plugins", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (builtin,) = [p for p in out["plugins"] if p["name"] == "grpo_family"]
    assert builtin["distribution"] == "vidrl"
    assert builtin["components"] == {"advantage": ["grpo", "dr_grpo", "rloo"], "loss": ["ppo_clip"]}
    (kernels,) = [p for p in out["plugins"] if p["name"] == "kernels"]
    assert kernels["components"] == {
        "kernel": ["token_logprobs", "linear_token_logprobs", "group_advantages"]
    }
    assert set(out["primitives"]) == {"token_logprobs", "linear_token_logprobs", "group_advantages"}


def test_plugins_table(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "grpo_family  [vidrl 0.1.0]" in out and "advantage: grpo, dr_grpo, rloo" in out
    if not torch.cuda.is_available():
        assert "token_logprobs: TokenLogprobs on cuda (unavailable here: no CUDA device)" in out


def test_list_kind_shows_owner_doc_and_options(capsys):
    assert main(["list", "advantage"]) == 0
    out = capsys.readouterr().out
    assert "rloo  (plugin grpo_family)" in out
    assert "scale_std=True, std='unbiased', eps=1e-06, singleton='zero'" in out


def test_list_unknown_kind(capsys):
    assert main(["list", "losses"]) == 2
    err = capsys.readouterr().err
    assert "unknown kind 'losses'" in err and "did you mean 'loss'" in err


def test_validate_reports_every_error(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("seed: x\nadvantage: {name: grpo, options: {eps: -1}}\nloss: {name: ppo}\n")
    assert main(["validate", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "3 configuration error(s)" in err
    assert "seed: expected int" in err and "eps must be >= 0" in err and "unknown loss 'ppo'" in err


def test_validate_with_overrides_and_show(capsys):
    path = ROOT / "examples" / "configs" / "grpo.yaml"
    assert main(["validate", str(path), "--set", "advantage.options.eps=1e-3", "--show"]) == 0
    assert "eps: 0.001" in capsys.readouterr().out


def test_validate_missing_file(capsys):
    assert main(["validate", "nope.yaml"]) == 1
    assert "'nope.yaml' does not exist" in capsys.readouterr().err


def test_train_refuses_a_config_with_no_stages(tmp_path, capsys):
    cfg = tmp_path / "empty.yaml"
    cfg.write_text("seed: 1\n")
    assert main(["train", str(cfg), "--output-dir", str(tmp_path / "run")]) == 1
    assert "a run needs at least one stage" in capsys.readouterr().err


def test_train_names_what_an_rl_stage_lacks(tmp_path, capsys):
    cfg = tmp_path / "rl.yaml"
    cfg.write_text("stages: [rl]\nadvantage: grpo\n")
    assert main(["train", str(cfg), "--output-dir", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "stages.0 (rl): loss: required by the rl stage" in err and "rewards: required" in err


def test_resume_without_a_checkpoint_is_an_error(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text("stages: [sft]\n")
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_console_script_is_installed():
    out = subprocess.run([Path(sys.executable).parent / "vidrl", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "vidrl 0.1.0"


def test_bench_command_picks_the_suite_for_the_device():
    from vidrl.cli import bench_command, source_root

    root = source_root()
    gpu = bench_command(root, "kernels", cuda=True, quick=True)
    assert gpu[1:] == [str(root / "benchmarks" / "gpu_harness.py"), "--quick"]
    cpu = bench_command(root, "kernels", cuda=False, quick=False)
    assert str(root / "benchmarks" / "test_cpu_logprobs.py") in cpu
    assert any(a.endswith("kernels-cpu.json") for a in cpu)
    video = bench_command(root, "video", cuda=True, quick=False)
    assert str(root / "benchmarks" / "test_cpu_video.py") in video
    assert all(Path(a).exists() for a in (gpu[1], cpu[3], video[3]))


def test_bench_step_runs_the_phase_benchmark():
    from vidrl.cli import bench_command, source_root

    root = source_root()
    cmd = bench_command(root, "step", cuda=False, quick=False)
    assert cmd[1:] == [
        str(root / "benchmarks" / "step_phases.py"),
        "--out",
        str(root / "benchmarks" / "results" / "cpu"),
    ]


BROKEN = "import vidrl\nimport no_such_module_xyz\n"


def test_plugins_lists_a_failed_plugin_and_other_commands_still_run(fake_dist, tmp_path, capsys):
    fake_dist("vidrl-broken", "1.0", {"broken": "broken_plugin"}, {"broken_plugin": BROKEN})
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "1 plugin(s) failed to load" in out and "broken  FAILED:" in out and "no_such_module_xyz" in out
    assert "VIDRL_DISABLE_PLUGINS=broken" in out and "grpo_family" in out
    assert main(["plugins", "--json"]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)["plugins"]}
    assert "no_such_module_xyz" in listed["broken"]["error"] and "error" not in listed["grpo_family"]
    # a config that does not use it is valid, with one warning line naming it
    cfg = tmp_path / "c.yaml"
    cfg.write_text("advantage: grpo\n")
    assert main(["validate", str(cfg)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("vidrl: warning: plugin 'broken'") and "VIDRL_DISABLE_PLUGINS=broken" in err
    # one that names a component it might have provided names it as the likely cause
    cfg.write_text("advantage: half\n")
    assert main(["validate", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "unknown advantage 'half'" in err and "failed to load, which may provide it: 'broken'" in err


def test_traceback_flag_and_vidrl_debug_show_the_original_traceback(fake_dist, monkeypatch, capsys):
    fake_dist("vidrl-broken", "1.0", {"broken": "broken_plugin"}, {"broken_plugin": BROKEN})
    assert main(["plugins"]) == 0
    assert "Traceback (most recent call last)" not in capsys.readouterr().out
    assert main(["plugins", "--traceback"]) == 0
    out = capsys.readouterr().out
    assert "Traceback (most recent call last)" in out and "import no_such_module_xyz" in out
    assert main(["list", "losses"]) == 2
    assert "Traceback" not in capsys.readouterr().err
    monkeypatch.setenv("VIDRL_DEBUG", "1")
    assert main(["list", "losses"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "unknown kind 'losses'" in err


SHORT = """
import vidrl

class Short(vidrl.Reward):
    name = "short"

    def __call__(self, responses, samples):
        return [1.0] * (len(responses) - 1)

class Fine(vidrl.Reward):
    name = "fine"

    def __call__(self, responses, samples):
        return [float(len(r) > 3) for r in responses]

@vidrl.hookimpl
def register_rewards(register):
    register(Short)
    register(Fine)
"""


def test_check_plugin_runs_the_conformance_suites(fake_dist, capsys):
    fake_dist("vidrl-short", "0.1", {"short": "short_plugin"}, {"short_plugin": SHORT})
    assert main(["check-plugin", "short"]) == 1
    out = capsys.readouterr().out
    assert "reward short: FAIL: reward 'short' (plugin 'short'): returned 3 scores for 4 responses" in out
    assert "reward fine: ok" in out and "short: 1 component(s) fail" in out
    assert main(["check-plugin", "grpo_family"]) == 0
    assert "grpo_family: all components conform" in capsys.readouterr().out
    assert main(["check-plugin", "shrt"]) == 2
    assert "did you mean 'short'" in capsys.readouterr().err
