"""Run configuration: YAML (safe_load) → frozen dataclasses, every error reported at once.

Components appear as ``{name: ..., options: {...}}`` (or a bare name for default options). A
component field's kind is given by its field metadata ``{"kind": "advantage"}``; its options are
validated against the registered class's ``Config``. Validation needs the plugins loaded, so
``load_config`` reads the ``plugins`` section first, builds a ``Session`` from it, then checks
the rest.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from vidrl.config.convert import MISSING, ComponentHook, convert, is_missing
from vidrl.config.row_mapping import RowMapping
from vidrl.errors import ConfigError, choices_hint
from vidrl.plugin.components import NoOptions
from vidrl.plugin.session import Session


@dataclass(frozen=True)
class VisionBudget:
    """Bounds on what one prompt may spend on vision. Pixel bounds are per frame."""

    max_prompt_tokens: int = 4096
    min_pixels: int = 28 * 28
    max_pixels: int = 128 * 128
    min_frames: int = 2

    def __post_init__(self) -> None:
        if not 0 < self.min_pixels <= self.max_pixels or self.max_prompt_tokens < 1 or self.min_frames < 1:
            raise ValueError(
                f"need 0 < min_pixels <= max_pixels, max_prompt_tokens >= 1, min_frames >= 1: {self}"
            )


@dataclass(frozen=True)
class ComponentSpec:
    """A component by registered ``name``; ``options`` becomes an instance of its ``Config``."""

    name: str
    options: Any = NoOptions()


@dataclass(frozen=True)
class RewardSpec(ComponentSpec):
    """A reward with its ``weight`` in the total reward and, when given, the ``timeout`` (seconds)
    one call may take, 0 for no limit (otherwise the reward's own ``timeout_s``, 600 s unless it
    says otherwise)."""

    weight: float = 1.0
    timeout: float | None = None

    def __post_init__(self) -> None:
        if self.timeout is not None and not self.timeout >= 0:
            raise ValueError(f"timeout must be >= 0 seconds (0: no limit), got {self.timeout}")


@dataclass(frozen=True)
class PluginsConfig:
    """``enable``: load only these (all when omitted); ``disable``: never load these. ``modules``:
    importable modules to load as plugins too (named by their dotted name); ``paths``: Python files
    to load as plugins (named by their stem; relative to the config file's folder, stored
    absolute), unpackaged (``vidrl.plugin.local``)."""

    enable: tuple[str, ...] | None = None
    disable: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoraConfig:
    """LoRA adapters (peft) on the language model's linear layers named in ``target_modules`` (the
    vision tower, ``visual``, never gets any): rank ``r``, scale ``alpha`` / ``r``, ``dropout``
    (0 by default: with dropout the separate old-log-prob forward draws other masks than the
    update's, and on-policy ratios stop being 1). Only the adapters train and go into checkpoints.
    The reference model is the policy with its adapters off — the base model, in every stage (as
    in TRL), not the policy at the stage's start; no second copy. ``merge``: the final ``model/`` is
    the base with the adapters merged in (a plain model directory); otherwise the adapters alone."""

    r: int = 16
    alpha: float = 32.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] = (
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    )
    merge: bool = True

    def __post_init__(self) -> None:
        if self.r < 1 or self.alpha <= 0 or not 0 <= self.dropout < 1 or not self.target_modules:
            raise ValueError(f"need r >= 1, alpha > 0, 0 <= dropout < 1 and target_modules; got {self}")


@dataclass(frozen=True)
class ModelConfig:
    """The policy. ``path``: a local model directory (``from_pretrained``); None builds the tiny
    ``tiny_arch`` model (of ``tiny_size``: tiny, or small for Qwen2.5-VL) with random weights into
    the run directory (the demo). ``freeze``:
    parameters whose name contains one of these strings are not trained (e.g. "visual": the
    vision tower of Qwen-VL models). ``precision``: ``fp32``; ``bf16-mixed`` (bf16 autocast over
    float32 master weights and optimizer state, through accelerate; the frozen reference model in
    float32 under the same autocast, so the KL is 0 before the first update); ``bf16-pure`` (bf16
    weights and optimizer state: refused, no optimizer here compensates bf16 rounding, and at
    GRPO's learning rates most updates would round away); ``auto``: bf16-mixed on a CUDA device
    with bf16, else fp32. ``gradient_checkpointing``: recompute activations in the backward pass
    (less memory, about a third more compute). ``lora``: train LoRA adapters instead of the
    weights (``LoraConfig``; ``freeze`` is then refused: only the adapters train)."""

    path: str | None = None
    freeze: tuple[str, ...] = ()
    tiny_arch: Literal["qwen2_vl", "qwen2_5_vl", "qwen3_vl"] = "qwen2_5_vl"
    tiny_size: Literal["tiny", "small"] = "tiny"
    precision: Literal["auto", "fp32", "bf16-mixed", "bf16-pure"] = "auto"
    gradient_checkpointing: bool = False
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2"] = "auto"
    lora: LoraConfig | None = None

    def __post_init__(self) -> None:
        if self.lora is not None and self.freeze:
            raise ValueError(f"freeze {list(self.freeze)} has no effect with lora (only the adapters train)")
        if self.precision == "bf16-pure":
            raise ValueError(
                "precision 'bf16-pure' needs an optimizer that compensates bf16 rounding (Kahan "
                "summation or stochastic rounding) and vidrl's AdamW does not: use 'bf16-mixed'"
            )


@dataclass(frozen=True)
class SynthConfig:
    """Synthetic video tasks generated into the run directory when no data set is given;
    ``difficulty`` levels are cycled over the videos; ``tool_responses``: ``long_clip`` rows carry
    a reference response that calls ``get_video_clip_frame`` on the question's window, then
    answers (an SFT warm-up for tool use)."""

    train_videos: int = 64
    eval_videos: int = 24
    seed: int = 0
    difficulty: tuple[int, ...] = (0,)
    tasks: tuple[
        Literal["multiple_choice", "numeric", "temporal_grounding", "grounded_qa", "long_clip"], ...
    ] = (
        "multiple_choice",
        "numeric",
    )
    tool_responses: bool = False

    def __post_init__(self) -> None:
        if self.train_videos < 1 or self.eval_videos < 0 or not self.tasks or not self.difficulty:
            raise ValueError(
                f"need train_videos >= 1, eval_videos >= 0, some tasks and difficulties; got {self}"
            )


@dataclass(frozen=True)
class DataConfig:
    """Data sets (paths to .jsonl/.json/.parquet; ``synth`` when ``train`` is None) and how their
    videos become model inputs: frames at ``fps`` within [min_frames, max_frames], the vision
    ``budget`` per prompt, the ``system`` prompt. ``cache_clips`` and ``cache_mb``: decoded clips
    kept in memory (at the largest size the budget lets the model see), at most so many and so
    many MiB. ``decode_timeout``: seconds one clip may take to decode before it is a bad row (0:
    no limit). ``columns`` (vidrl field → the data set's column) and ``task_types`` (the data
    set's task-type value → a vidrl task type) read a foreign data set as it is
    (``vidrl.config.row_mapping.RowMapping``; ``vidrl data convert`` rewrites one instead).
    ``num_workers``: threads decoding a batch's clips, the next batch's while a step trains (0:
    in the training thread, when the batch is drawn); the samples and their order do not depend
    on it."""

    train: str | None = None
    eval: str | None = None
    root: str | None = None
    synth: SynthConfig = SynthConfig()
    on_bad_row: Literal["error", "skip"] = "error"
    video_backend: str = "auto"
    fps: float = 1.0
    min_frames: int = 2
    max_frames: int = 8
    budget: VisionBudget = VisionBudget()
    system: str | None = None
    cache_clips: int = 512
    cache_mb: int = 2048
    num_workers: int = 2
    decode_timeout: float = 300.0
    columns: dict[str, str] = field(default_factory=dict)
    task_types: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (
            self.fps <= 0
            or not 1 <= self.min_frames <= self.max_frames
            or min(self.cache_clips, self.cache_mb, self.num_workers, self.decode_timeout) < 0
        ):
            raise ValueError(
                "need fps > 0, 1 <= min_frames <= max_frames, cache_clips, cache_mb, num_workers and "
                "decode_timeout >= 0; "
                f"got {self}"
            )
        self.mapping()  # unknown fields or task types: the mapping's own error

    def mapping(self) -> RowMapping:
        """How the data sets' rows map onto vidrl's fields (``columns``, ``task_types``)."""
        return RowMapping(self.columns, self.task_types)


@dataclass(frozen=True)
class CheckpointConfig:
    """``every``: steps between checkpoints (0: only at the end of each stage); ``keep``: how many
    step checkpoints to keep (the newest)."""

    every: int = 0
    keep: int = 2

    def __post_init__(self) -> None:
        if self.every < 0 or self.keep < 1:
            raise ValueError(f"need every >= 0 and keep >= 1; got every={self.every}, keep={self.keep}")


@dataclass(frozen=True)
class LogConfig:
    """``samples_every``: steps between saved roll-out samples (0: never), ``num_samples`` per save;
    ``trackers``: accelerate trackers (tensorboard, wandb, ...); ``progress``: a progress bar;
    ``plot``: ``curves.png`` at the end."""

    samples_every: int = 1
    num_samples: int = 4
    trackers: tuple[str, ...] = ()
    progress: bool = True
    plot: bool = True

    def __post_init__(self) -> None:
        bad = {k: v for k in ("samples_every", "num_samples") if (v := getattr(self, k)) < 0}
        if bad:
            raise ValueError(f"log counts must be >= 0, got {bad}")


@dataclass(frozen=True)
class EvalConfig:
    """Held-out evaluation (greedy decoding) on ``data.eval``: before the stages, between stages
    (``between_stages``) and after them, in batches of ``batch_size``, ``max_new_tokens`` per
    answer, on the first ``max_samples`` rows (None: all). With the run's ``tools``, answers are
    greedy tool roll-outs within the run's ``turns`` budgets (``max_new_tokens`` is then unused:
    ``turns.max_turn_tokens`` bounds each turn). ``grading``: how answers are read:
    ``answer_tag`` (the ``<answer>`` block, as trained), ``plain`` (the whole reply, for prompts
    written the benchmark way: the option letter it opens with, the number, the span or the text)
    or ``auto`` (the block when there is one, else plain)."""

    before: bool = True
    between_stages: bool = True
    after: bool = True
    batch_size: int = 8
    max_new_tokens: int = 32
    max_samples: int | None = None
    grading: Literal["answer_tag", "plain", "auto"] = "answer_tag"

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise ValueError(f"need batch_size >= 1 and max_new_tokens >= 1; got {self}")


@dataclass(frozen=True)
class TurnLimits:
    """Budgets of a multi-turn tool roll-out: ``max_turns`` tool calls per roll-out;
    ``max_turn_tokens`` generated per turn; ``max_total_tokens`` for the whole response
    (observations included)."""

    max_turns: int = 2
    max_turn_tokens: int = 1024
    max_total_tokens: int = 7168

    def __post_init__(self) -> None:
        if self.max_turns < 0 or self.max_turn_tokens < 1 or self.max_total_tokens < self.max_turn_tokens:
            raise ValueError(f"need max_turns >= 0, 1 <= max_turn_tokens <= max_total_tokens: {self}")


@dataclass(frozen=True)
class TurnsConfig(TurnLimits):
    """Everything about tool use besides the ``tools`` list, in one place: the ``TurnLimits``
    budgets (``max_turns``, ``max_turn_tokens``, ``max_total_tokens``) of every tool roll-out —
    RL stages and held-out evaluation alike — and the frame strips of the tool log:
    ``frame_strips`` PNGs (the prompt's frames and each call's) on RL step 1 and every
    ``frame_strips_every`` steps (0: never)."""

    frame_strips: int = 2
    frame_strips_every: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.frame_strips < 0 or self.frame_strips_every < 0:
            raise ValueError(f"frame strip counts must be >= 0; got {self}")

    @property
    def limits(self) -> TurnLimits:
        return TurnLimits(self.max_turns, self.max_turn_tokens, self.max_total_tokens)


def _kind(kind: str) -> Any:
    return field(default=(), metadata={"kind": kind})


@dataclass(frozen=True)
class RunConfig:
    """A whole run: what to train (model, data), how (stages and the components they use), and
    what to keep (checkpoints, logs, evaluation)."""

    seed: int = 0
    output_dir: str | None = None
    plugins: PluginsConfig = PluginsConfig()
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    log: LogConfig = LogConfig()
    eval: EvalConfig = EvalConfig()
    stages: tuple[ComponentSpec, ...] = _kind("stage")
    advantage: ComponentSpec | None = field(default=None, metadata={"kind": "advantage"})
    loss: ComponentSpec | None = field(default=None, metadata={"kind": "loss"})
    #: the engine that samples roll-outs (RL stages, augmentation, tool turns, evaluation); None:
    #: ``hf_generate`` with its default options
    rollout: ComponentSpec | None = field(default=None, metadata={"kind": "rollout_backend"})
    rewards: tuple[RewardSpec, ...] = _kind("reward")
    augmenters: tuple[ComponentSpec, ...] = _kind("augmenter")
    tools: tuple[ComponentSpec, ...] = _kind("tool")
    turns: TurnsConfig = TurnsConfig()


# -- YAML -------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-6`` as a float (YAML 1.1 wants ``1.0e-6``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def parse_yaml(text: str, source: str = "<string>") -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as e:
        raise ConfigError([f"{source}: invalid YAML: {e}"]) from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a config file into a dict (an empty file is an empty config)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"config file {str(path)!r} does not exist"])
    data = parse_yaml(path.read_text(), str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping, got {type(data).__name__}"])
    return data


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key.sub.0.field=value`` overrides (values parsed as YAML) to a copy of ``raw``."""
    out = copy.deepcopy(raw)
    errors = []
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            errors.append(f"--set {item!r}: expected key=value")
            continue
        try:
            _set_path(out, key.split("."), parse_yaml(text, f"--set {key}"))
        except (KeyError, IndexError, TypeError) as e:
            errors.append(f"--set {item!r}: {e.args[0]}")
    if errors:
        raise ConfigError(errors)
    return out


def _set_path(node: Any, parts: list[str], value: Any) -> None:
    head, rest = parts[0], parts[1:]
    if isinstance(node, list):
        if not head.isdigit() or int(head) >= len(node):
            raise IndexError(f"{head!r} is not an index of a list of {len(node)}")
        key: Any = int(head)
    elif isinstance(node, dict):
        key = head
        if rest and node.get(key) is None:
            node[key] = {}
    else:
        raise TypeError(f"cannot set {head!r} inside a {type(node).__name__} value")
    if rest:
        _set_path(node[key], rest, value)
    else:
        node[key] = value


# -- validation -------------------------------------------------------------------------------


def _component_resolver(session: Session, errors: list[str]) -> ComponentHook:
    def resolve(kind: str, spec_cls: type, value: Any, path: str) -> Any:
        if isinstance(value, str):
            value = {"name": value}
        registry = session.registry(kind)
        if not isinstance(value, Mapping):
            errors.append(f"{path}: expected {{name: ..., options: {{...}}}} for a {kind}, got {value!r}")
            return MISSING
        name = value.get("name")
        if name not in registry:
            what = "is missing" if name is None else f"unknown {kind} {name!r}"
            errors.append(f"{path}.name: {what}; {choices_hint(str(name), registry)}{registry.note}")
            return MISSING
        cls, first = registry.get(name), len(errors)
        options = value.get("options")
        # options may name components of their own (a loop stage's inner stages, a judge)
        opts = convert(cls.Config, {} if options is None else options, f"{path}.options", errors, resolve)
        owner = f" [{kind} {name!r} of plugin {registry.owner(name)!r}]"
        errors[first:] = [e if e.endswith("]") else e + owner for e in errors[first:]]
        spec = convert(spec_cls, {**value, "options": opts}, path, errors)
        return MISSING if is_missing(opts) else spec

    return resolve


def load_config(
    source: str | Path | Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    extra_plugins: Sequence[tuple[object, str]] = (),
    plugin_paths: Sequence[str] = (),
) -> tuple[RunConfig, Session]:
    """Read, override, and validate a config; return it with the loaded ``Session``.

    ``source`` is a YAML path, an already-parsed mapping, or None (an empty config);
    ``extra_plugins``: (object with hookimpls, name) pairs added in-process next to the entry
    points (a notebook's or a test's own components); ``plugin_paths``: more plugin files
    (``--plugin``, relative to the working directory), added to ``plugins.paths``. Raises
    ``ConfigError`` listing every problem at once; nothing heavy (no model) is loaded.
    """
    if source is None:
        raw: dict[str, Any] = {}
    elif isinstance(source, Mapping):
        raw = dict(source)
    else:
        raw = read_yaml(source)
    raw = apply_overrides(raw, overrides)
    errors: list[str] = []
    plugins = convert(PluginsConfig, raw.get("plugins", {}), "plugins", errors)
    if is_missing(plugins):
        raise ConfigError(errors)
    here = Path(source).parent if isinstance(source, str | Path) else Path.cwd()
    paths = tuple(str((here / p).resolve()) for p in plugins.paths)
    paths += tuple(str(Path(p).resolve()) for p in plugin_paths if str(Path(p).resolve()) not in paths)
    raw = {**raw, "plugins": {**raw.get("plugins", {}), "paths": list(paths)}} if paths else raw
    session = Session(enable=plugins.enable, disable=plugins.disable, environ=environ,
                      modules=plugins.modules, paths=paths)  # fmt: skip
    for obj, name in extra_plugins:
        session.add_plugin(obj, name)
    session.load()
    raw = _moved_keys(raw, errors, session)
    config = convert(RunConfig, raw, "", errors, component=_component_resolver(session, errors))
    if not errors:
        errors += stage_problems(config, session)
    if errors:
        raise ConfigError(errors)
    return config, session


def stage_problems(config: RunConfig, session: Session) -> list[str]:
    """What each stage's ``check`` finds wrong with the whole config (``stages.<i> (<name>): ...``):
    every combination the engine would refuse, found before anything loads."""
    out = []
    for i, spec in enumerate(config.stages):
        found = check_stage(session.create("stage", spec.name, spec.options), config, session)
        out += [f"stages.{i} ({spec.name}): {e}" for e in found]
    return out


def check_stage(stage: Any, config: RunConfig, session: Session) -> list[str]:
    """``stage.check(config, session)`` (a loop stage calls it on its inner stages); a stage
    written before ``check`` took the session gets the config alone."""
    try:
        inspect.signature(stage.check).bind(config, session)
    except TypeError:
        return stage.check(config)
    return stage.check(config, session)


#: (section, key) → where it lives now; tool use is configured in ``turns`` alone
MOVED = {
    **{("eval", k): f"turns.{k}" for k in ("max_turns", "max_total_tokens")},
    **{("log", k): f"turns.{k}" for k in ("frame_strips", "frame_strips_every")},
    **{("stage", k): f"turns.{k}" for k in ("max_turns", "max_turn_tokens", "max_total_tokens")},
    ("model", "dtype"): "model.precision (fp32, bf16-mixed, auto)",
}


def _moved_keys(raw: dict[str, Any], errors: list[str], session: Session) -> dict[str, Any]:
    """``raw`` without the keys that moved, each reported with its new place. A stage's option
    counts only when the stage's own ``Config`` has no field of that name (a plugin's stage may)."""
    raw = copy.deepcopy(raw)
    places = [(raw.get(s), s, s, ()) for s in ("eval", "log", "model")]
    stages = raw.get("stages") if isinstance(raw.get("stages"), list) else []
    for i, s in enumerate(stages):
        if isinstance(s, dict) and s.get("name") in session.registry("stage"):
            fields = {f.name for f in dataclasses.fields(session.registry("stage").get(s["name"]).Config)}
            places.append((s.get("options"), "stage", f"stages[{i}].options", fields))
    for node, section, path, own in places:
        if not isinstance(node, dict):
            continue
        for key in [k for k in node if (section, k) in MOVED and k not in own]:
            why = "" if section == "model" else " (one budget for all tool roll-outs)"
            errors.append(f"{path}.{key}: moved to {MOVED[section, key]}{why}")
            del node[key]
    return raw


def to_plain(value: Any) -> Any:
    """A config (or part) as plain dicts/lists/scalars, ready for ``yaml.safe_dump`` or JSON."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    return value
