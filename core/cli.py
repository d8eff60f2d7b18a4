"""The ``vidrl`` command line. Every command has ``--help``; bad input ends in a one-line-per-
problem message and a non-zero exit status, never a traceback (unless asked for: ``--traceback``
anywhere on the command line, or ``VIDRL_DEBUG=1``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from vidrl import __version__, ops
from vidrl.config import load_config, parse_yaml, read_yaml, to_plain
from vidrl.errors import ConfigError, VidrlError, choices_hint
from vidrl.plugin.components import KINDS
from vidrl.plugin.session import PluginWarning, Session, disable_hint


def _embedded_demo() -> dict[str, Any]:
    text = resources.files("vidrl").joinpath("demo.yaml").read_text()
    return parse_yaml(text, "embedded demo")


def end_distributed() -> None:
    """Tear down the process group of a data-parallel run before the interpreter exits (a gloo
    group left to exit-time destruction can abort a rank: "terminate called without an active
    exception")."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def cmd_train(args: argparse.Namespace) -> int:
    from vidrl.engine.pipeline import train

    resume_dir = Path(args.resume) if args.resume else None
    if args.config:
        raw, source = args.config, args.config  # a path: plugin files resolve against its folder
    elif resume_dir is not None:
        raw, source = read_yaml(resume_dir / "config.yaml"), str(resume_dir / "config.yaml")
    else:
        raw, source = _embedded_demo(), "embedded demo"
    out = args.output_dir or (str(resume_dir) if resume_dir else None)
    overrides = list(args.set) + ([f"output_dir={out}"] if out else [])
    config, session = load_config(raw, overrides, plugin_paths=args.plugin)
    run_dir = Path(config.output_dir or time.strftime("runs/vidrl-%Y%m%d-%H%M%S"))
    print(f"vidrl train: {source} -> {run_dir}{' (resuming)' if args.resume is not None else ''}", flush=True)
    summary = train(config, session, run_dir, resume=args.resume is not None)
    end_distributed()
    if not summary["is_main"]:
        return 0
    for label in ("before", "after"):
        if summary[label]:
            print(f"held-out {label}: " + _scores(summary[label]))
    print(f"run directory: {run_dir} (metrics.jsonl, samples.jsonl, curves.png, model/)")
    return 0


def _scores(result: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3f}" if k != "n" else f"n {int(v)}" for k, v in result.items())


def cmd_eval(args: argparse.Namespace) -> int:
    from vidrl.engine.context import RunContext
    from vidrl.engine.evaluation import score_split

    data = {"train": args.dataset, "eval": args.dataset, "root": args.root, "fps": args.fps,
            "max_frames": args.max_frames, "system": args.system, "on_bad_row": "skip"}  # fmt: skip
    if args.max_pixels:
        data["budget"] = {"max_pixels": args.max_pixels}
    evals = {"batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens,
             "max_samples": args.max_samples, "grading": args.grading}  # fmt: skip
    # with tools, --max-new-tokens bounds each turn
    turns = {"max_turns": args.max_turns, "max_turn_tokens": args.max_new_tokens,
             "max_total_tokens": max(args.max_total_tokens, args.max_new_tokens)}  # fmt: skip
    model = {"path": args.model, "precision": DTYPES[args.dtype]}
    raw = {"model": model, "data": data, "eval": evals, "tools": args.tools, "turns": turns}
    config, session = load_config(raw, plugin_paths=args.plugin)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = RunContext(config, session, tmp)
        result, answers = score_split(ctx)  # every process answers its share (accelerate launch)
    end_distributed()
    if not ctx.is_main:
        return 0
    if args.answers:
        Path(args.answers).write_text("".join(json.dumps(a) + "\n" for a in answers))
    print(
        json.dumps(result, indent=2) if args.json else score_table(result, f"{args.model} on {args.dataset}")
    )
    return 0


#: ``vidrl eval --dtype`` → ``model.precision``
DTYPES = {"auto": "auto", "float32": "fp32", "bfloat16": "bf16-mixed"}


def score_table(result: dict[str, float], title: str) -> str:
    """An evaluation's scores as a table: overall, per task type, per benchmark category."""
    rows = [(k, v) for k, v in result.items() if k not in ("n", "skipped")]
    width = max([len(k) for k, _ in rows] + [6])
    lines = [title, f"  {'metric':<{width}}  value"]
    lines += [f"  {k:<{width}}  {v:.3f}" for k, v in rows]
    lines.append(f"  {int(result.get('n', 0))} answers graded, {int(result.get('skipped', 0))} rows skipped"
                 " (their reasons: --answers FILE)")  # fmt: skip
    return "\n".join(lines)


def _print_plugins(session: Session, tracebacks: bool) -> None:
    print(f"{len(session.plugins)} plugin(s) loaded:")
    for info in session.plugins.values():
        dist = f"{info.distribution} {info.version}" if info.distribution else (info.origin or "(in-process)")
        print(f"  {info.name}  [{dist}]  {info.module}")
        for kind, names in info.components.items():
            if names:
                print(f"      {kind}: {', '.join(names)}")
        for warning in info.warnings:
            print(f"      warning: {warning}")
    if session.failed:
        print(f"{len(session.failed)} plugin(s) failed to load (runs that use them stop; others run):")
    for info in session.failed.values():
        print(f"  {info.name}  FAILED: {info.error}\n      {disable_hint(info.name)}")
        if tracebacks:
            print("      " + (info.traceback or "").rstrip().replace("\n", "\n      "))
        else:
            print("      the original traceback: vidrl plugins --traceback")


def cmd_plugins(args: argparse.Namespace) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)  # listed below, in full
        session = _session(args)
    if args.json:
        plugins = [p.as_dict() for p in [*session.plugins.values(), *session.failed.values()]]
        print(json.dumps({"plugins": plugins, "primitives": ops.dispatch.describe()}, indent=2))
    else:
        _print_plugins(session, args.traceback)
        print("primitives (vidrl.ops):")
        for name, where in ops.dispatch.describe().items():
            print(f"  {name}: {where}")
    return 0


def _conformance(session: Session, kind: str, name: str) -> tuple[str, bool]:
    """(one line on component ``name`` of ``kind``, whether it failed)."""
    from vidrl.testing import SUITES, check_component

    cls = session.registry(kind).get(name)
    required = [f.name for f in dataclasses.fields(cls.Config) if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING]  # fmt: skip
    if kind not in SUITES:
        return "registered (no conformance suite for this kind)", False
    if required:
        return f"skipped: needs options {required} (run vidrl.testing.check_component with them)", False
    if not cls.available():
        return f"skipped: {cls.unavailable_reason()}", False
    try:
        check_component(session, kind, name)
    except AssertionError as e:
        return f"FAIL: {e}", True
    except Exception as e:  # a component that crashes on the suite's inputs fails it too
        return f"FAIL: {type(e).__name__}: {e}", True
    return "ok", False


def cmd_check_plugin(args: argparse.Namespace) -> int:
    session = _session(args)
    if args.name in session.failed:
        info = session.failed[args.name]
        raise VidrlError(f"plugin {args.name!r} failed to load: {info.error}")
    if args.name not in session.plugins:
        raise VidrlError(f"no plugin {args.name!r}; {choices_hint(args.name, session.plugins)}")
    failed = 0
    for kind, names in session.plugins[args.name].components.items():
        for name in names:
            line, bad = _conformance(session, kind, name)
            failed += bad
            print(f"  {kind} {name}: {line}")
    print(f"{args.name}: {'all components conform' if not failed else f'{failed} component(s) fail'}")
    return 1 if failed else 0


def _estimate_inputs(config: Any, session: Session, size: str | None) -> tuple[Any, dict[str, int], bool]:
    """(the model's transformers config, the first RL-like stage's shape, whether a reference loads)."""
    from vidrl.models.sizes import sized_config
    from vidrl.models.tiny import ARCHS, _ids, _special, build_tokenizer
    from vidrl.plugin.components import Need

    tok = build_tokenizer()
    if size is not None:
        model_config = sized_config(size, tok)
    elif config.model.path is not None:
        from transformers import AutoConfig

        model_config = AutoConfig.from_pretrained(config.model.path)
    else:
        model_config = ARCHS[config.model.tiny_arch].config({**_ids(tok), "text": _special(tok)}, len(tok))
    opts = next((s.options for s in config.stages if hasattr(s.options, "group_size")), None)
    defaults = {"prompts_per_step": 4, "group_size": 8, "micro_batch_size": 8, "max_new_tokens": 256}
    shape = {k: getattr(opts, k, d) for k, d in defaults.items()}
    loss = config.loss and session.create("loss", config.loss.name, config.loss.options)
    return model_config, shape, bool(loss) and Need.REFERENCE_MODEL in loss.needs()


def cmd_estimate(args: argparse.Namespace) -> int:
    from vidrl.models.estimate import counts, meta_model, per_gpu, table
    from vidrl.models.policy import resolve_precision

    config, session = load_config(args.config, args.set, plugin_paths=args.plugin)
    model_config, shape, reference = _estimate_inputs(config, session, args.size)
    c, m = counts(meta_model(model_config, config.model)), config.model
    precision = "bf16-mixed" if m.precision == "auto" else resolve_precision(m.precision)  # as on a GPU
    seq = config.data.budget.max_prompt_tokens + shape["max_new_tokens"]
    common = {"precision": precision, "reference": reference, "lora": m.lora is not None,
              "checkpointing": m.gradient_checkpointing, "micro_tokens": shape["micro_batch_size"] * seq,
              "rollout_tokens": shape["prompts_per_step"] * shape["group_size"] * seq}  # fmt: skip
    rows = {
        "one GPU": per_gpu(c, shards=1, **common),
        "DDP, 2 or more GPUs": per_gpu(c, shards=1, ddp_gpus=2, **common),
    }
    if m.lora is None:  # LoRA with FSDP2 is refused (vidrl.models.sharding)
        rows.update({f"FSDP2 × {n} GPUs": per_gpu(c, shards=n, **common) for n in args.gpus if n > 1})
    ref = "adapters off" if m.lora else "loaded" if reference else "none"
    what = f"{c.total / 1e9:.3f} B parameters, {c.trainable / 1e9:.3f} B trainable"
    how = (f"{precision}, gradient checkpointing {m.gradient_checkpointing}, LoRA {m.lora is not None}, "
           f"reference {ref}")  # fmt: skip
    data = (f"sequences of {seq} tokens, micro-batch {shape['micro_batch_size']}, roll-outs "
            f"{shape['prompts_per_step']} × {shape['group_size']}")  # fmt: skip
    print(f"{args.size or m.path or m.tiny_arch}: {what}; {how}; {data}")
    print("per-GPU memory (GiB; see vidrl.models.estimate for what is exact and what approximate):")
    print(table(rows))
    return 0


def _options_summary(config_cls: type) -> str:
    parts = []
    for f in dataclasses.fields(config_cls):
        default = f.default if f.default is not dataclasses.MISSING else "required"
        parts.append(f"{f.name}={default!r}" if default != "required" else f"{f.name} (required)")
    return ", ".join(parts) or "no options"


def _session(args: argparse.Namespace) -> Session:
    """The installed plugins and the ``--plugin`` files, loaded."""
    return Session(paths=[str(Path(p).resolve()) for p in args.plugin]).load()


def cmd_list(args: argparse.Namespace) -> int:
    if args.kind not in KINDS:
        raise VidrlError(f"unknown kind {args.kind!r}; {choices_hint(args.kind, KINDS)}")
    registry = _session(args).registry(args.kind)
    print(f"{len(registry)} {KINDS[args.kind].description}:")
    for entry in registry.entries():
        doc = (entry.obj.__doc__ or "").strip().splitlines()
        print(f"  {entry.name}  (plugin {entry.plugin})  {doc[0] if doc else ''}")
        print(f"      options: {_options_summary(entry.obj.Config)}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    config, _ = load_config(args.config, args.set, plugin_paths=args.plugin)
    print(f"{args.config}: valid")
    if args.show:
        print(yaml.safe_dump(to_plain(config), sort_keys=False).rstrip())
    return 0


def cmd_data_synth(args: argparse.Namespace) -> int:
    from vidrl.data.synth import synthesize

    path = synthesize(Path(args.out), args.num, seed=args.seed, difficulty=args.difficulty, size=args.size)
    rows = sum(1 for _ in path.open())
    print(f"wrote {args.num} videos and {rows} rows: {path}")
    return 0


def cmd_data_check(args: argparse.Namespace) -> int:
    from vidrl.data.datasets import check_dataset
    from vidrl.data.video import select_backend

    backend = select_backend(Session().load().registry("video_backend"), args.backend)
    plan = {"fps": args.fps, "max_frames": args.max_frames}
    total, problems, notes = check_dataset(args.dataset, backend, args.root, **plan)
    for p in problems + [f"note: {n}" for n in notes]:
        print(p)
    verdict = f"{len(problems)} of {total} rows are bad" if problems else f"all {total} rows are good"
    members = getattr(backend, "members", [backend])  # backend auto: each in turn, until one reads the file
    print(f"{args.dataset}: {verdict} (decoded with {', then '.join(m.name for m in members)})")
    return 1 if problems else 0


def cmd_data_convert(args: argparse.Namespace) -> int:
    from vidrl.data.convert import convert_file

    durations = Path(args.durations) if args.durations else None
    done = convert_file(args.source_format, Path(args.source), Path(args.out), durations)
    for reason in done.skipped:
        print(f"skipped {reason}")
    print(f"{args.source} ({args.source_format}): wrote {done.written} rows to {args.out}, "
          f"{len(done.skipped)} source rows skipped; media paths are as the source gives them: "
          "set data.root (or --root) to the folder they are relative to")  # fmt: skip
    return 0 if done.written else 1


def source_root() -> Path:
    """The source checkout this vidrl runs from (benchmarks/ is not part of the wheel)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "benchmarks").is_dir():
        raise VidrlError(f"no benchmarks/ beside {root}: `vidrl bench` runs from a vidrl source checkout")
    return root


CPU_SUITES = {"kernels": "test_cpu_logprobs.py", "video": "test_cpu_video.py"}
BENCHMARKS = [*CPU_SUITES, "step"]


def bench_command(root: Path, what: str, cuda: bool, quick: bool) -> list[str]:
    """Kernels: the GPU harness when CUDA is present, else the CPU suite. Video: the CPU suite.
    Step: the RL step by phase (results under results/cpu or results/cuda)."""
    if what == "step":
        out = root / "benchmarks" / "results" / ("cuda" if cuda else "cpu")
        return [sys.executable, str(root / "benchmarks" / "step_phases.py"), "--out", str(out)]
    if what == "kernels" and cuda:
        return [sys.executable, str(root / "benchmarks" / "gpu_harness.py"), *(["--quick"] if quick else [])]
    out = root / "benchmarks" / "results" / "cpu" / f"{what}-cpu.json"
    suite = str(root / "benchmarks" / CPU_SUITES[what])
    columns = "--benchmark-columns=median,iqr,rounds"
    return [
        sys.executable,
        "-m",
        "pytest",
        suite,
        "-p",
        "no:cacheprovider",
        columns,
        f"--benchmark-json={out}",
    ]


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    root = source_root()
    (root / "benchmarks" / "results" / "cpu").mkdir(parents=True, exist_ok=True)
    cmd = bench_command(root, args.what, torch.cuda.is_available() and not args.cpu, args.quick)
    print("$ " + " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=root)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vidrl",
        description="RL post-training for video language models.",
        epilog="--traceback (anywhere on the line) or VIDRL_DEBUG=1: show the original traceback of an error "
        "(and, with `plugins`, of each plugin that failed to load); --verbose (anywhere) or VIDRL_VERBOSE=1: "
        "let the video libraries (FFmpeg, decord) print their own log lines",
    )
    p.add_argument("--version", action="version", version=f"vidrl {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    plug = argparse.ArgumentParser(add_help=False)  # the commands that load plugins
    plug.add_argument(
        "--plugin", action="append", default=[], metavar="FILE",
        help="also load this Python file of components as a plugin, on every process (repeatable)",
    )  # fmt: skip

    t = sub.add_parser("train", parents=[plug], help="run a training config (no CONFIG: the embedded demo)")
    t.add_argument("config", nargs="?", help="YAML run config; omitted: the embedded demo")
    t.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set advantage.options.eps=1e-4 (repeatable)",
    )
    t.add_argument("--output-dir", help="run directory (overrides output_dir)")
    t.add_argument(
        "--resume", nargs="?", const="", metavar="DIR",
        help="continue the run in DIR (default: output_dir) from its newest checkpoint",
    )  # fmt: skip
    t.set_defaults(func=cmd_train)

    es = sub.add_parser(
        "estimate", parents=[plug], help="per-GPU memory of a config's model, before anything is allocated"
    )
    es.add_argument("config", help="YAML run config")
    es.add_argument(
        "--size", choices=["qwen2_5_vl_3b", "qwen2_5_vl_7b"], help="a real size instead of model.path"
    )
    es.add_argument("--gpus", type=int, nargs="+", default=[2, 4, 8], help="FSDP2 shard counts to show")
    es.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    es.set_defaults(func=cmd_estimate)

    cp = sub.add_parser(
        "check-plugin",
        parents=[plug],
        help="run vidrl.testing's conformance suites over an installed plugin's components",
    )
    cp.add_argument("name", help="the plugin's entry-point name (see vidrl plugins)")
    cp.set_defaults(func=cmd_check_plugin)

    e = sub.add_parser(
        "eval",
        parents=[plug],
        help="accuracy / mIoU of a model directory on a data set (greedy, tools optional)",
    )
    e.add_argument("model", help="model directory (from_pretrained), e.g. a run's model/")
    e.add_argument("dataset", help=".jsonl, .json or .parquet file")
    e.add_argument("--root", help="media root (default: the data set's folder)")
    e.add_argument("--fps", type=float, default=1.0)
    e.add_argument("--max-frames", type=int, default=8)
    e.add_argument("--max-pixels", type=int, help="pixels per frame at most (data.budget.max_pixels)")
    e.add_argument(
        "--dtype",
        choices=sorted(DTYPES),
        default="auto",
        help="bfloat16: bf16 compute on float32 weights (auto: bfloat16 on a GPU with it, else float32)",
    )
    e.add_argument("--system", help="system prompt (e.g. the one the model was trained with)")
    e.add_argument("--grading", choices=["answer_tag", "plain", "auto"], default="auto",
                   help="answer_tag: the <answer> block; plain: the whole reply, the benchmark way "
                        "(the option letter, number, span or text); auto: the block if any")  # fmt: skip
    e.add_argument("--batch-size", type=int, default=8)
    e.add_argument("--max-new-tokens", type=int, default=32)
    e.add_argument("--max-samples", type=int)
    e.add_argument(
        "--tools",
        nargs="+",
        default=[],
        metavar="TOOL",
        help="answer with greedy tool roll-outs using these tools (e.g. get_video_clip_frame)",
    )
    e.add_argument("--max-turns", type=int, default=2, help="tool calls per answer (with --tools)")
    e.add_argument(
        "--max-total-tokens",
        type=int,
        default=7168,
        help="tokens of a whole tool answer, observations included",
    )
    e.add_argument("--answers", metavar="FILE", help="write every answer (and its tool calls) as JSONL")
    e.add_argument("--json", action="store_true", help="machine-readable output")
    e.set_defaults(func=cmd_eval)

    pl = sub.add_parser("plugins", parents=[plug], help="list loaded plugins and their components")
    pl.add_argument("--json", action="store_true", help="machine-readable output")
    pl.set_defaults(func=cmd_plugins)

    ls = sub.add_parser("list", parents=[plug], help="list registered components of a kind")
    ls.add_argument("kind", metavar="KIND", help=f"one of: {', '.join(KINDS)}")
    ls.set_defaults(func=cmd_list)

    v = sub.add_parser("validate", parents=[plug], help="check a whole config, reporting every error at once")
    v.add_argument("config", help="YAML run config")
    v.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a value")
    v.add_argument("--show", action="store_true", help="print the resolved config")
    v.set_defaults(func=cmd_validate)

    d = sub.add_parser("data", help="synthetic data sets and data-set checks")
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    syn = dsub.add_parser("synth", help="write synthetic video tasks: mp4 files + data.jsonl")
    syn.add_argument("--out", required=True, help="output folder")
    syn.add_argument("--num", type=int, default=16, help="number of videos (4 rows each)")
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument(
        "--difficulty", type=int, nargs="+", default=[0],
        help="0 = 2 squares, long events; more is harder; several levels are cycled over videos",
    )  # fmt: skip
    syn.add_argument("--size", type=int, default=112, help="frame side in pixels")
    syn.set_defaults(func=cmd_data_synth)
    chk = dsub.add_parser("check", help="decode every row; report each bad one; exit 1 if any")
    chk.add_argument("dataset", help=".jsonl, .json or .parquet file")
    chk.add_argument("--root", help="media root (default: the data set's folder)")
    chk.add_argument("--backend", default="auto", help="video backend (see `vidrl list video_backend`)")
    chk.add_argument("--fps", type=float, default=2.0, help="frames per second to sample")
    chk.add_argument("--max-frames", type=int, default=64)
    chk.set_defaults(func=cmd_data_check)
    from vidrl.data.convert import FORMATS

    conv = dsub.add_parser(
        "convert", help="rewrite a foreign data set (Video-R1, Video-MME, ...) as vidrl rows"
    )
    conv.add_argument("--from", dest="source_format", required=True, choices=sorted(FORMATS),
                      help="; ".join(f"{k}: {f.description}" for k, f in FORMATS.items()))  # fmt: skip
    conv.add_argument("source", help="the data set's file (MVBench: json/<task>.json, named after its task)")
    conv.add_argument("out", help="the vidrl .jsonl to write")
    conv.add_argument("--durations", help="charades-sta: Charades_v1_<split>.csv, the videos' lengths")
    conv.set_defaults(func=cmd_data_convert)

    b = sub.add_parser("bench", help="run benchmarks (from a source checkout)")
    b.add_argument("what", choices=BENCHMARKS, help="what to benchmark")
    b.add_argument("--cpu", action="store_true", help="the CPU suite even when a GPU is present")
    b.add_argument("--quick", action="store_true", help="GPU harness at smaller shapes")
    b.set_defaults(func=cmd_bench)
    return p


def _show_warning(message: Any, category: type, *args: Any, **kwargs: Any) -> None:
    """Plugin warnings as one plain line each (the default shows a source line of vidrl)."""
    if issubclass(category, PluginWarning):
        print(f"vidrl: warning: {message}", file=sys.stderr)
    else:
        _default_showwarning(message, category, *args, **kwargs)


_default_showwarning = warnings.showwarning


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    tracebacks = "--traceback" in argv or os.environ.get("VIDRL_DEBUG", "") not in ("", "0")
    if "--verbose" in argv:
        os.environ["VIDRL_VERBOSE"] = "1"  # read by the video backends
    args = build_parser().parse_args([a for a in argv if a not in ("--traceback", "--verbose")])
    args.traceback = tracebacks
    warnings.showwarning = _show_warning
    try:
        return args.func(args)
    except VidrlError as e:
        if tracebacks:
            traceback.print_exc()
        command = " ".join(filter(None, (args.command, getattr(args, "data_command", None))))
        print(f"vidrl {command}: {'' if isinstance(e, ConfigError) else 'error: '}{e}", file=sys.stderr)
        return 1 if isinstance(e, ConfigError) else 2
    finally:
        warnings.showwarning = _default_showwarning


if __name__ == "__main__":
    sys.exit(main())
