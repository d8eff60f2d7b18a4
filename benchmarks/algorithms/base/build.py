"""Build (or reuse) the comparisons' base model: the suite's videos (``suite.py``), then the
phases of ``recipe.yaml`` one after the other, each a vidrl run starting from the model the
previous phase left; the result is cached under ``<cache>/<key>``, where the key hashes the recipe,
``suite.py``, ``vision_warmup.py``, the tiny models' definitions (``vidrl.models.tiny``) and the
vidrl version, so every comparison reuses one base and a changed recipe builds a new one.

The cache entry holds ``model/`` (the base), ``suite/{train,eval}/data.jsonl``, ``base.json``
(the recipe, wall time, and the held-out scores per task and level of the final phase) and each
phase's run files without its weights (``phase-<k>/``: metrics, curves, held-out answers). It is
written to a temporary folder first and renamed, so an interrupted build leaves nothing half done.

usage: python benchmarks/algorithms/base/build.py [--cache DIR]   (default ~/.cache/vidrl/bases)
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
RECIPE = HERE / "recipe.yaml"
DEFAULT_CACHE = Path.home() / ".cache" / "vidrl" / "bases"


def recipe_key() -> str:
    """12 hex digits of the SHA-256 of the recipe, the suite and warm-up sources, the tiny models'
    source (the architecture the recipe names) and vidrl's version."""
    from importlib.metadata import version

    import vidrl.models.tiny

    h = hashlib.sha256(version("vidrl").encode())
    for path in (RECIPE, HERE / "suite.py", HERE / "vision_warmup.py", Path(vidrl.models.tiny.__file__)):
        h.update(Path(path).read_bytes())
    return h.hexdigest()[:12]


def _suite():
    spec = importlib.util.spec_from_file_location("comparison_suite", HERE / "suite.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _phase_config(phase: dict, suite_dir: Path, model: Path | None) -> dict:
    """A phase's run config: the suite's data (train rows of ``phase["tasks"]`` only, if given),
    the previous phase's model, the warm-up plugin."""
    config = json.loads(json.dumps(phase["config"]))
    train = suite_dir / "train" / "data.jsonl"
    if phase.get("tasks"):
        rows = [r for r in train.read_text().splitlines()
                if json.loads(r)["metadata"]["category"].split("/")[0] in phase["tasks"]]  # fmt: skip
        train = train.with_name(f"data-{'-'.join(phase['tasks'])}.jsonl")
        train.write_text("\n".join(rows) + "\n")
    config.setdefault("data", {}).update(train=str(train), eval=str(suite_dir / "eval" / "data.jsonl"))
    config.setdefault("plugins", {})["paths"] = [str(HERE / "vision_warmup.py")]
    if model is not None:
        config.setdefault("model", {})["path"] = str(model)
    return config


def build(cache: Path = DEFAULT_CACHE) -> Path:
    """The cached base's folder (``model/``, ``suite/``, ``base.json``), built if absent."""
    from vidrl import load_config
    from vidrl.engine.pipeline import train

    out = Path(cache) / recipe_key()
    if (out / "base.json").exists():
        return out
    recipe = yaml.safe_load(RECIPE.read_text())
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        work, start = Path(tmp), time.perf_counter()
        s, suite = recipe["suite"], _suite()
        for split in ("train", "eval"):
            suite.write_suite(work / "suite", split, s[split], s["seed"])
        model = None
        for k, phase in enumerate(recipe["phases"]):
            run = work / f"phase-{k}"
            train(*load_config(_phase_config(phase, work / "suite", model)), run)
            model = run / "model"
        scores = json.loads((run / "eval-after.json").read_text())  # the last phase evaluates
        shutil.move(str(model), work / "model")
        for folder in (work / f"phase-{k}" for k in range(len(recipe["phases"]))):
            for sub in folder.iterdir():  # keep each phase's metrics, curves and answers; drop weights
                if sub.is_dir():
                    shutil.rmtree(sub)
        info = {"key": out.name, "recipe": recipe, "seconds": time.perf_counter() - start, "heldout": scores}
        (work / "base.json").write_text(json.dumps(info, indent=1))
        work.rename(out)
        work.mkdir()  # for TemporaryDirectory's clean-up
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    out = build(ap.parse_args().cache)
    info = json.loads((out / "base.json").read_text())
    print(f"base {out} (built in {info['seconds'] / 60:.1f} min); held-out after the last phase:")
    for key, value in sorted(info["heldout"].items()):
        print(f"  {key:45s} {value:.3f}")


if __name__ == "__main__":
    sys.exit(main())
