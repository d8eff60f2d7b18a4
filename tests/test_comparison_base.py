"""benchmarks/algorithms/base: the vision warm-up's per-token colour targets against a
straight-line per-pixel reference, and the comparison suite's rows (fixed by seed, disjoint
splits, answers that match the drawn scenes)."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BASE = Path(__file__).parents[1] / "benchmarks" / "algorithms" / "base"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"comparison_{name}", BASE / f"{name}.py")
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


warmup, suite = _load("vision_warmup"), _load("suite")


def _reference_targets(pixels, mean, std, merge, radius, min_pixels):
    """One merged token at a time, one pixel at a time."""
    from vidrl.data.synth import COLOURS, DISTRACTOR

    palette = [*COLOURS.values(), DISTRACTOR]
    out = []
    for token in pixels.double().view(-1, merge * merge, 3, pixels.shape[1] // 3):
        counts = [0] * len(palette)
        for row in token:
            rgb = (row * torch.tensor(std, dtype=torch.float64)[:, None] + torch.tensor(mean)[:, None]) * 255
            for px in rgb.T:
                for k, colour in enumerate(palette):
                    counts[k] += float(torch.dist(px, torch.tensor(colour, dtype=torch.float64))) < radius
        out.append([float(c >= min_pixels) for c in counts])
    return torch.tensor(out)


@pytest.mark.parametrize("merge, patch_dim, tokens, least", [(2, 3 * 2 * 4 * 4, 3, 6), (1, 3 * 5, 8, 2)])
def test_colour_targets_match_a_per_pixel_reference(merge, patch_dim, tokens, least):
    """Patches of palette colours, near-misses and noise; odd patch sizes; both merge sizes."""
    from vidrl.data.synth import COLOURS, DISTRACTOR

    g = torch.Generator().manual_seed(merge)
    mean, std = [0.48, 0.46, 0.41], [0.27, 0.26, 0.28]
    palette = torch.tensor([*COLOURS.values(), DISTRACTOR, (24, 24, 24)], dtype=torch.float64)
    n_px = patch_dim // 3
    weights = torch.tensor([1.0] * (len(palette) - 1) + [12.0])  # mostly background
    pick = torch.multinomial(weights, tokens * merge * merge * n_px, True, generator=g).view(-1, n_px)
    rgb = palette[pick] + torch.randn(pick.shape + (3,), generator=g, dtype=torch.float64) * 40
    normalised = (rgb / 255 - torch.tensor(mean)) / torch.tensor(std)  # [N, n_px, 3]
    pixels = normalised.permute(0, 2, 1).reshape(len(pick), patch_dim).float()
    got = warmup.colour_targets(pixels, mean, std, merge, radius=60.0, min_pixels=least)
    want = _reference_targets(pixels, mean, std, merge, 60.0, least)
    assert got.shape == (tokens, len(COLOURS) + 1)
    assert torch.equal(got, want.float())
    assert 0 < got.mean() < 1  # both outcomes occur


def test_the_suite_is_fixed_by_seed_and_its_splits_are_disjoint(tmp_path):
    a = suite.write_suite(tmp_path / "a", "train", 8, seed=3)
    b = suite.write_suite(tmp_path / "b", "train", 8, seed=3)
    held = suite.write_suite(tmp_path / "a", "eval", 8, seed=3)
    rows = [json.loads(x) for x in a.read_text().splitlines()]
    assert rows == [json.loads(x) for x in b.read_text().splitlines()]
    objects = lambda p: [json.dumps(json.loads(x)["metadata"]["objects"]) for x in p.read_text().splitlines()]  # noqa: E731
    assert not set(objects(a)) & set(objects(held))
    assert [r["metadata"]["category"] for r in rows[:5]] == ["colour/L0", "first/L0", "count/L0", "when/L0",
                                                             "colour/L1"]  # fmt: skip


@pytest.mark.parametrize("task", suite.TASKS)
@pytest.mark.parametrize("level", suite.LEVELS)
def test_each_answer_follows_from_the_scene(task, level):
    for i in range(20):
        scene, fields = suite.scene_for(task, level, np.random.default_rng([task.__len__(), level, i]))
        squares = scene.squares
        assert all(0 <= s.start < s.end <= suite.DURATION for s in (*squares, *scene.distractors))
        first = min(squares, key=lambda s: s.start)
        if task == "colour":
            assert len(squares) == 1 and fields["answer"] == "ABCD"[suite.COLOURS.index(first.colour)]
        elif task == "first":
            assert len({s.start for s in squares}) == len(squares) == (3 if level == 2 else 2)
            assert fields["answer"] == "ABCD"[suite.COLOURS.index(first.colour)]
        elif task == "count":
            assert fields["answer"] == str(len(squares)) and len({s.colour for s in squares}) == len(squares)
        else:
            named = next(s for s in squares if s.colour in fields["question"])
            assert fields["span"] == [named.start, named.end]
        assert len({s.colour for s in squares}) == len(squares)


def test_the_recipe_phases_are_valid_run_configs(tmp_path):
    """Each phase of recipe.yaml, as the builder completes it, loads as a run config whose stages
    exist (the warm-up from its local plugin file); a phase's ``tasks`` keep those train rows only."""
    import yaml

    from vidrl import load_config

    build = _load("build")
    recipe = yaml.safe_load(build.RECIPE.read_text())
    for split in ("train", "eval"):
        suite.write_suite(tmp_path / "suite", split, 8)
    model = None
    for phase in recipe["phases"]:
        config, session = load_config(build._phase_config(phase, tmp_path / "suite", model))
        for stage in config.stages:
            assert stage.name in session.registry("stage")
        rows = [json.loads(x) for x in Path(config.data.train).read_text().splitlines()]
        tasks = {r["metadata"]["category"].split("/")[0] for r in rows}
        assert tasks == set(phase.get("tasks") or suite.TASKS)
        assert config.model.path == (None if model is None else str(model))
        model = tmp_path / "previous" / "model"
    assert len(build.recipe_key()) == 12


def test_the_base_is_built_once_then_reused_and_a_new_recipe_is_a_new_key(tmp_path, monkeypatch):
    """A two-phase recipe of a few steps: the cache holds the model, the suite, the scores and
    each phase's files without weights, and no temporary folder; a second build trains nothing."""
    import yaml

    import vidrl.engine.pipeline

    build = _load("build")
    data = {"fps": 1.0, "max_frames": 4, "budget": {"max_pixels": 3136, "min_pixels": 784}}
    quiet = {"before": False, "between_stages": False, "batch_size": 4, "max_new_tokens": 4}
    warm = {"name": "vision_warmup", "options": {"steps": 2, "batch_size": 2}}
    sft = {"name": "sft", "options": {"steps": 2, "batch_size": 2, "micro_batch_size": 2}}
    recipe = {"suite": {"train": 8, "eval": 4, "seed": 0}, "phases": [
        {"tasks": ["colour"], "config": {"model": {"tiny_arch": "qwen2_5_vl"}, "data": data, "stages": [warm],
                                         "eval": {**quiet, "after": False}, "log": {"progress": False}}},
        {"config": {"data": data, "eval": quiet, "log": {"progress": False}, "stages": [sft]}},
    ]}  # fmt: skip
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    monkeypatch.setattr(build, "RECIPE", path)
    out = build.build(tmp_path / "cache")
    info = json.loads((out / "base.json").read_text())
    assert out.name == info["key"] == build.recipe_key()
    assert (out / "model" / "config.json").exists() and (out / "suite" / "eval" / "data.jsonl").exists()
    assert info["heldout"]["n"] == 4 and "accuracy/category/colour/L0" in info["heldout"]
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [out.name]
    assert (out / "phase-1" / "metrics.jsonl").exists()
    assert not [p for k in (0, 1) for p in (out / f"phase-{k}").iterdir() if p.is_dir()]
    monkeypatch.setattr(vidrl.engine.pipeline, "train", lambda *a, **k: pytest.fail("built again"))
    assert build.build(tmp_path / "cache") == out
    path.write_text(yaml.safe_dump({**recipe, "suite": {**recipe["suite"], "seed": 1}}))
    assert build.recipe_key() != out.name


def test_bad_suite_and_warm_up_settings_name_the_value_and_the_choices(tmp_path):
    with pytest.raises(ValueError, match=r"level 3; choices: \[0, 1, 2\]"):
        suite.scene_for("colour", 3, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"task 'size'; choices: \['colour'"):
        suite.scene_for("size", 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"split 'test'; choices: \['train', 'eval'\]"):
        suite.write_suite(tmp_path, "test", 1)
    with pytest.raises(ValueError, match="radius > 0; got .*radius=0"):
        warmup.VisionWarmup.Config(radius=0)
    with pytest.raises(ValueError, match="steps=0"):
        warmup.VisionWarmup.Config(steps=0)
