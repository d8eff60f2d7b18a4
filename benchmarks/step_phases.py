"""Time and peak memory of one RL step of the tiny demo model, split by phase (rollout, score,
logprob, update), over several steps after a warm-up step.

Peak memory per phase: on CUDA ``torch.cuda.max_memory_allocated`` reset before each phase (GPU
tensors only); on the CPU the process's peak resident set (VmHWM), reset before each phase
through /proc/self/clear_refs, minus the resident set at the phase's start (so: what the phase
added at its peak). glibc keeps freed memory, so the CPU memory figures come from a second
process with MALLOC_MMAP_THRESHOLD_=65536 (large blocks returned to the system on free), and the
times from a first, ordinary one (the mmap setting doubles the time). Writes step-phases.json and
step-phases.md under --out.

usage: python benchmarks/step_phases.py [--steps 5] [--out benchmarks/results/cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch

import vidrl
from vidrl.engine.step import Phases

PHASES = ("rollout", "score", "logprob", "update")


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


class MemoryPhases(Phases):
    """Phases that also record each phase's peak extra memory in MiB."""

    def __init__(self, cuda: bool):
        super().__init__()
        self.cuda, self.peak_mib = cuda, {}

    @contextmanager
    def __call__(self, name):
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            start = torch.cuda.memory_allocated()
        else:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            start = _rss_kib("VmRSS") * 1024
        with super().__call__(name):
            yield
            if self.cuda:
                torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() if self.cuda else _rss_kib("VmHWM") * 1024
        self.peak_mib[name] = max(0, peak - start) / 2**20


def _setup(tmp: Path, config: vidrl.RunConfig, session: vidrl.Session):
    ctx = vidrl.RunContext(config, session, tmp)
    ctx.state.stage = "rl"
    stage = session.create("stage", "rl", config.stages[0].options)
    c, policy, algo = stage.config, ctx.policy(), ctx.algorithm()
    opt, sched = ctx.optimizer(c.optim, 100)
    backend = vidrl.HFGenerate().attach(policy.base)
    learner = vidrl.Learner(policy.model, opt, sched, backend, policy.eos_id, None, ctx.world)
    sampling = vidrl.Sampling(c.temperature, c.top_p, c.max_new_tokens)
    opts = vidrl.StepOptions(
        c.group_size, c.micro_batch_size, c.num_iterations, c.optim.max_grad_norm, sampling
    )
    return learner, algo, policy.tokenizer, ctx.feed("train", c.prompts_per_step), opts


def run(steps: int) -> dict:
    from importlib import resources

    from vidrl.config import parse_yaml

    raw = parse_yaml(resources.files("vidrl").joinpath("demo.yaml").read_text())
    rl = next(s for s in raw["stages"] if s["name"] == "rl")
    raw.update(stages=[rl], log={"progress": False})
    config, session = vidrl.load_config(raw)
    cuda = torch.cuda.is_available()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        learner, algo, tok, feed, opts = _setup(Path(tmp), config, session)
        for i in range(steps + 1):
            samples, batch = feed.next()
            phases = MemoryPhases(cuda)
            metrics, _ = vidrl.rl_step(learner, algo, tok, batch, samples, opts, phases=phases)
            if i:  # the first step warms up allocators and caches
                rows.append({"seconds": dict(phases.seconds), "peak_mib": dict(phases.peak_mib),
                             "response_tokens": metrics["response_length/mean"]})  # fmt: skip
    device = torch.cuda.get_device_name() if cuda else f"CPU ({platform.processor() or platform.machine()})"
    median = {
        what: {p: statistics.median(r[what].get(p, 0.0) for r in rows) for p in PHASES}  # may not run
        for what in ("seconds", "peak_mib")
    }
    shape = {k: rl["options"].get(k) for k in ("prompts_per_step", "group_size", "max_new_tokens")}
    return {"device": device, "threads": torch.get_num_threads(), "steps": steps, "shape": shape,
            "data": raw["data"], "median": median, "runs": rows}  # fmt: skip


def markdown(result: dict) -> str:
    sec, mem = result["median"]["seconds"], result["median"]["peak_mib"]
    total = sum(sec.values())
    lines = [
        f"# RL step by phase — {result['device']}, {result['threads']} threads",
        "",
        f"Tiny demo model (`vidrl train` config), {result['shape']}, median of {result['steps']} steps "
        "after one warm-up step. Peak memory: what the phase added at its peak "
        "(CPU: resident set; CUDA: allocated tensors).",
        "",
        "| phase | time (s) | share | peak extra memory (MiB) |",
        "|---|---|---|---|",
    ]
    lines += [f"| {p} | {sec[p]:.3f} | {sec[p] / total:.0%} | {mem[p]:.1f} |" for p in PHASES]
    lines += [f"| **step** | **{total:.3f}** | 100% | |", ""]
    return "\n".join(lines)


def _cpu_memory_pass(steps: int) -> dict[str, float]:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "memory.json"
        cmd = [sys.executable, __file__, "--steps", str(steps), "--memory-json", str(out)]
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "cpu")
    ap.add_argument("--memory-json", type=Path, help=argparse.SUPPRESS)  # the CPU memory pass
    args = ap.parse_args()
    result = run(args.steps)
    if args.memory_json:
        args.memory_json.write_text(json.dumps(result["median"]["peak_mib"]))
        return
    if not torch.cuda.is_available():  # this process's memory figures are glibc's, not the phases'
        result["median"]["peak_mib"] = _cpu_memory_pass(args.steps)
        for row in result["runs"]:
            del row["peak_mib"]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "step-phases.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "step-phases.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
