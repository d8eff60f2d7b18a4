"""Config: YAML into frozen dataclasses, every error at once, overrides, plugin selection."""

from pathlib import Path

import pytest

import vidrl
from vidrl import ComponentSpec, ConfigError, RewardSpec, RunConfig, load_config
from vidrl.config import apply_overrides, parse_yaml, read_yaml, to_plain

ROOT = Path(__file__).resolve().parents[2]


def _errors(raw) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_config(raw)
    return e.value.errors


def test_valid_config_resolves_options_into_the_component_config():
    cfg, session = load_config(
        {"seed": 3, "advantage": {"name": "grpo", "options": {"eps": 1e-4, "std": "biased"}}}
    )
    assert isinstance(cfg, RunConfig) and cfg.seed == 3
    opts = cfg.advantage.options
    assert type(opts) is session.registry("advantage").get("grpo").Config
    assert (opts.eps, opts.std, opts.scale_std) == (1e-4, "biased", True)


def test_bare_name_means_default_options():
    cfg, session = load_config({"advantage": "rloo"})
    assert cfg.advantage == ComponentSpec("rloo", session.registry("advantage").get("rloo").Config())


def test_every_error_is_reported_at_once_with_paths_and_choices():
    errors = _errors(
        {
            "sed": 1,
            "seed": "one",
            "advantage": {
                "name": "grpo",
                "options": {"epsilon": 0.1, "std": "unbiassed", "scale_std": 1},
            },
            "rewards": [{"name": "nope"}],
            "stages": "rl",
        }
    )
    text = "\n".join(errors)
    assert "sed: unknown key" in text and "did you mean 'seed'" in text
    assert "seed: expected int, got str 'one'" in text
    assert "advantage.options.epsilon: unknown key" in text and "did you mean 'eps'" in text
    assert "advantage.options.std: invalid value 'unbiassed'" in text and "biased, unbiased" in text
    assert "advantage.options.scale_std: expected bool, got int 1" in text
    assert "rewards[0].name: unknown reward 'nope'" in text
    assert "stages: expected a list of stage components" in text
    assert len(errors) == 7


def test_unknown_component_name_lists_registered_with_suggestion():
    (err,) = _errors({"advantage": {"name": "gpro"}})
    assert err.startswith("advantage.name: unknown advantage 'gpro'")
    assert "dr_grpo, grpo, rloo" in err and "did you mean 'grpo'" in err


def test_missing_component_name():
    (err,) = _errors({"advantage": {"options": {}}})
    assert "advantage.name: is missing" in err and "grpo" in err


def test_config_post_init_errors_are_collected():
    (err,) = _errors({"advantage": {"name": "grpo", "options": {"eps": -1.0}}})
    assert "advantage.options" in err and "eps must be >= 0, got -1.0" in err


def test_component_option_errors_name_the_owning_plugin():
    (err,) = _errors({"advantage": {"name": "grpo", "options": {"std": "sample"}}})
    assert err.startswith("advantage.options.std: invalid value 'sample'")
    assert err.endswith("[advantage 'grpo' of plugin 'grpo_family']")
    # a loop stage's inner component is named by its own plugin, once
    errs = _errors(
        {"stages": [{"name": "veripo", "options": {"dpo": {"name": "dpo", "options": {"beta": "x"}}}}]}
    )
    assert any(e.endswith("[stage 'dpo' of plugin 'dpo']") for e in errs), errs
    assert not any("] [" in e for e in errs), errs


def test_range_checks_are_reported_with_type_errors_in_one_pass():
    errs = _errors({"advantage": {"name": "grpo", "options": {"eps": -1.0, "std": 3}}})
    assert len(errs) == 2, errs
    assert errs[0].startswith("advantage.options.std: invalid value 3")
    assert "eps must be >= 0, got -1.0" in errs[1]


def test_turn_budgets_are_one_section_checked_before_the_run():
    errs = _errors({"turns": {"max_turn_tokens": 64, "max_total_tokens": 32}})
    assert (
        errs[0].startswith("turns: invalid TurnsConfig") and "max_turn_tokens <= max_total_tokens" in errs[0]
    )
    assert "frame strip counts must be >= 0" in _errors({"turns": {"frame_strips": -1}})[0]
    cfg, _ = load_config({"turns": {"max_turns": 1}})
    assert cfg.turns.limits == vidrl.TurnLimits(1, 1024, 7168)


def test_keys_that_moved_to_turns_say_where_they_went():
    errs = _errors(
        {
            "eval": {"max_turns": 1, "max_total_tokens": 300},
            "log": {"frame_strips": 1},
            "stages": [{"name": "rl", "options": {"max_turn_tokens": 64}}],
        }
    )
    why = "(one budget for all tool roll-outs)"
    assert errs == [
        f"eval.max_turns: moved to turns.max_turns {why}",
        f"eval.max_total_tokens: moved to turns.max_total_tokens {why}",
        f"log.frame_strips: moved to turns.frame_strips {why}",
        f"stages[0].options.max_turn_tokens: moved to turns.max_turn_tokens {why}",
    ]


def test_validation_catches_what_the_engine_would_refuse():
    rl = {"name": "rl", "options": {"group_size": 4, "micro_batch_size": 6}}
    errs = _errors(
        {
            "stages": [rl],
            "advantage": "grpo",
            "loss": "reg_grpo",
            "rewards": ["format"],
            "augmenters": ["difficulty_aug"],
            "tools": ["get_video_clip_frame"],
        }
    )
    assert errs[0].startswith("stages.0 (rl): augmenters and tools cannot be combined yet")
    assert errs[1] == (
        "stages.0 (rl): micro_batch_size (6) must be a multiple of group_size (4): "
        "loss 'reg_grpo' normalises over each group"
    )
    assert len(errs) == 2
    assert _errors({"stages": ["rl"]}) == [
        f"stages.0 (rl): {k}: required by the rl stage" for k in ("advantage", "loss", "rewards")
    ]


def test_float_fields_accept_ints_but_not_bools():
    cfg, _ = load_config({"advantage": {"name": "grpo", "options": {"eps": 0}}})
    assert cfg.advantage.options.eps == 0.0 and isinstance(cfg.advantage.options.eps, float)
    (err,) = _errors({"advantage": {"name": "grpo", "options": {"eps": True}}})
    assert "expected float, got bool True" in err


def test_plugins_section_selects_plugins():
    (err,) = _errors({"plugins": {"disable": ["grpo_family"]}, "advantage": "grpo"})
    assert "unknown advantage 'grpo'; valid choices: dgrpo" in err
    (err,) = _errors({"plugins": {"disable": ["grpo_family", "dgrpo"]}, "advantage": "grpo"})
    assert "unknown advantage 'grpo'" in err and "nothing is registered" in err


def test_bad_plugins_section_is_reported_before_loading():
    (err,) = _errors({"plugins": {"enable": "grpo_family"}})
    assert err == "plugins.enable: expected a list, got str 'grpo_family'"


def test_overrides_set_nested_values_list_items_and_new_keys():
    raw = {"advantage": {"name": "grpo"}, "rewards": [{"name": "a"}, {"name": "b"}]}
    out = apply_overrides(raw, ["advantage.options.eps=1e-4", "rewards.1.weight=2", "seed=7"])
    assert out["advantage"]["options"]["eps"] == 1e-4
    assert out["rewards"][1]["weight"] == 2 and out["seed"] == 7
    assert "options" not in raw["advantage"]  # the input is not modified


def test_bad_overrides_are_all_reported():
    with pytest.raises(ConfigError) as e:
        apply_overrides({"seed": 1, "rewards": []}, ["seed", "rewards.3.weight=1", "seed.x=1"])
    assert len(e.value.errors) == 3
    assert "expected key=value" in e.value.errors[0]
    assert "'3' is not an index of a list of 0" in e.value.errors[1]
    assert "cannot set 'x' inside a int value" in e.value.errors[2]


def test_yaml_floats_without_a_dot_are_floats():
    assert parse_yaml("a: 1e-6\nb: -2E+3\nc: 1.5\nd: '1e-6'") == {
        "a": 1e-6,
        "b": -2000.0,
        "c": 1.5,
        "d": "1e-6",
    }


def test_yaml_is_loaded_safely(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("seed: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        read_yaml(p)


def test_read_yaml_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_yaml(tmp_path / "none.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping, got list"):
        read_yaml(tmp_path / "list.yaml")
    (tmp_path / "empty.yaml").write_text("")
    assert read_yaml(tmp_path / "empty.yaml") == {}


def test_resolved_config_round_trips_through_plain_data():
    cfg, _ = load_config({"advantage": {"name": "grpo", "options": {"eps": 1e-4}}, "seed": 5})
    again, _ = load_config(to_plain(cfg))
    assert again == cfg


def test_reward_spec_weight():
    cfg, _ = load_config({})
    assert cfg.rewards == () and RewardSpec("x").weight == 1.0


@pytest.mark.parametrize("path", sorted((ROOT / "examples" / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_example_configs_are_valid(path):
    cfg, _ = load_config(path)
    assert isinstance(cfg, RunConfig)


def test_embedded_demo_config_is_valid():
    cfg, _ = load_config(ROOT / "core" / "demo.yaml")
    assert cfg.advantage.name == "grpo"


def test_a_stage_that_has_a_moved_key_of_its_own_keeps_it():
    from dataclasses import dataclass

    class Turny(vidrl.Stage):
        name = "turny"

        @dataclass(frozen=True)
        class Config:
            max_turns: int = 1

        def run(self, context):
            pass

    class P:
        @vidrl.hookimpl
        def register_stages(self, register):
            register(Turny)

    cfg, _ = load_config(
        {"stages": [{"name": "turny", "options": {"max_turns": 3}}]}, extra_plugins=[(P(), "p")]
    )
    assert cfg.stages[0].options.max_turns == 3


def test_a_range_check_run_with_defaults_says_so():
    errs = _errors({"data": {"min_frames": "three", "max_frames": 1}})
    assert errs[0].startswith("data.min_frames: expected int")
    assert "invalid DataConfig (with the defaults of invalid min_frames)" in errs[1]
