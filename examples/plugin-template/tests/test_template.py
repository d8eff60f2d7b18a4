"""Run with the plugin installed (pip install -e .): it is found through its entry point."""

import torch

import vidrl


def test_plugin_is_discovered_and_registers_both_components():
    session = vidrl.Session().load()
    assert session.plugins["template"].distribution == "vidrl-template"
    assert session.registry("advantage").owner("median_baseline") == "template"
    assert session.registry("reward").owner("concise") == "template"


def test_median_baseline_values():
    est = vidrl.Session().load().create("advantage", "median_baseline")
    out = est(torch.tensor([0.0, 1.0, 9.0, 2.0, 2.0]), torch.tensor([0, 0, 0, 1, 1]))
    assert out.advantages.tolist() == [-1.0, 0.0, 8.0, 0.0, 0.0]
    assert out.zero_std.tolist() == [False, True]


def test_concise_reward_values():
    session = vidrl.Session().load()
    reward = session.create(
        "reward", "concise", session.registry("reward").get("concise").Config(max_words=4)
    )
    sample = vidrl.Sample(id="s", question="q", answer="a")
    assert reward(["", "a b", "a b c d e"], [sample] * 3) == [1.0, 0.5, 0.0]
