"""The shape every component shares, and the component kinds the engine knows.

A component is a class with a ``name``, a frozen dataclass ``Config`` for its options, and the
``Need`` s it declares. Plugins register component *classes*; the engine validates options
against ``Config`` once at set-up, instantiates with ``cls(config)`` and calls the instance in the
hot loop. Each kind has a small abstract base below; its docstring is the contract.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from vidrl.ops.dispatch import PRIMITIVES
from vidrl.types import (
    Advantages,
    Augmented,
    AugmentInput,
    JudgeItem,
    Judgement,
    LossInputs,
    LossOutput,
    RolloutRequest,
    Sample,
    VideoInfo,
)

if TYPE_CHECKING:
    from vidrl.engine.stage_context import StageContext


class Need(str, Enum):
    """What a component requires from the engine, declared by the class (``requires``) or, under
    its options, by the instance (``needs()``); never sniffed from data.

    ``REFERENCE_MODEL``: the reference policy's log-probs (``LossInputs.ref_logprobs``; the
    reference model loads only when the loss needs it). ``OLD_LOGPROBS``: the roll-out policy's
    log-probs (``LossInputs.old_logprobs``; their forward runs only when the loss needs them, and
    not even then with ``num_iterations`` 1: the update's own log-probs, detached, are equal).
    ``WHOLE_GROUPS``: every micro-batch holds whole groups (a loss that normalises per group).
    ``RESPONSE_LENGTHS``: a reward is also called with ``lengths=`` [n] ints, each response's
    token count (the policy's own tokens, end-of-turn included; DAPO's overlong penalty).
    ``ENTROPY``: the loss gets ``LossInputs.entropies``, each response token's entropy under the
    current policy, from the update's own forward.
    ``GROUND_TRUTH_SPAN`` and ``VIDEO``: deprecated, never read by the engine (a component that
    declares them gets a ``PluginWarning``); use ``Reward.task_types`` to score only the samples
    that have what a reward reads.
    """

    REFERENCE_MODEL = "reference_model"
    OLD_LOGPROBS = "old_logprobs"
    WHOLE_GROUPS = "whole_groups"
    RESPONSE_LENGTHS = "response_lengths"
    ENTROPY = "entropy"
    GROUND_TRUTH_SPAN = "ground_truth_span"
    VIDEO = "video"


#: needs the engine never reads: declaring one warns (kept so that older plugins still import)
DEPRECATED_NEEDS = frozenset({Need.GROUND_TRUTH_SPAN, Need.VIDEO})


@dataclass(frozen=True)
class NoOptions:
    """The ``Config`` of a component that takes no options."""


class Component:
    """Base of every component: ``name``, ``Config`` (frozen dataclass) and declared needs."""

    name: ClassVar[str]
    Config: ClassVar[type] = NoOptions
    requires: ClassVar[frozenset[Need]] = frozenset()
    #: the plugin that registered the class this instance was created from (set by ``Session.create``)
    plugin: str | None = None

    def __init__(self, config: Any = None):
        if config is None:
            config = self.Config()
        if not isinstance(config, self.Config):
            raise TypeError(
                f"{type(self).__name__} takes a {self.Config.__name__}, got {type(config).__name__}"
            )
        self.config = config

    def needs(self) -> frozenset[Need]:
        """Needs under this instance's options (a KL loss with β = 0 needs no reference model)."""
        return self.requires

    def state_dict(self) -> dict[str, Any]:
        """State that must survive a restart (a replay buffer, a running statistic): tensors and
        plain values. The engine saves it in every checkpoint of a run that created the component
        (an ``rl`` stage's estimator, loss, rewards and augmenters; the run's tools) and hands it
        back to ``load_state_dict`` on resume. Default: nothing to save."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why the component cannot run in this process (a library or device is missing), or None."""
        return None

    @classmethod
    def available(cls) -> bool:
        return cls.unavailable_reason() is None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"


class AdvantageEstimator(Component, abc.ABC):
    """Turns the rewards of grouped rollouts into advantages."""

    @abc.abstractmethod
    def __call__(self, rewards: torch.Tensor, group_ids: torch.Tensor) -> Advantages:
        """``rewards`` [B] float, ``group_ids`` [B] long (rollouts of one prompt share an id).
        A NaN reward marks a sample no reward scored: leave it out of its group's statistics
        and give it advantage 0 (``vidrl.ops.group_advantages`` does both)."""


class PolicyLoss(Component, abc.ABC):
    """The objective minimised for one micro-batch. ``token_advantages``: whether it takes
    per-token advantages [B, T] as well as per-roll-out ones [B] (the engine refuses the pair of
    a per-token estimator and a loss that does not, naming both)."""

    token_advantages: ClassVar[bool] = True

    @abc.abstractmethod
    def __call__(self, inputs: LossInputs) -> LossOutput:
        """Return the micro-batch's share of the optimizer step's loss (see ``LossInputs``)."""


class Reward(Component, abc.ABC):
    """Scores responses. Must return one finite float, or None ("no opinion": TRL's rule), per
    response. A sample that no reward scores is left out of its group's advantage statistics
    and gets advantage 0.

    ``task_types``: the ``Sample.task_type`` s it scores (None: every sample). In a mixed-task
    batch the engine calls it only on those samples; the others get no score from it (0 in the
    total, left out of its metric), so each sample is judged by its own task's rewards.
    """

    task_types: ClassVar[frozenset[str] | None] = None
    #: seconds one call may take before the scorer stops the run with an error naming the reward
    #: (the call runs in a thread of its own; None: no limit, in the caller's thread); a run
    #: config's ``rewards[i].timeout`` sets it per reward
    timeout_s: float | None = 600.0

    @abc.abstractmethod
    def __call__(self, responses: Sequence[str], samples: Sequence[Sample]) -> Sequence[float | None]:
        """``responses[i]`` answers ``samples[i]``; return B floats (None: not scored)."""


class Augmenter(Component, abc.ABC):
    """Rewrites prompts after a step's first roll-out (hints, frame noise, ...); the rewritten
    prompts are rolled out again and the step trains on the batch actually used (``vidrl.engine.augment``).
    A replay buffer survives restarts through ``state_dict`` / ``load_state_dict`` (every
    component's protocol, see ``Component.state_dict``)."""

    @abc.abstractmethod
    def __call__(self, batch: AugmentInput) -> dict[int, Augmented]:
        """Replacements by prompt index (0 ≤ p < P); prompts left out stay as they are. A
        replacement's sample may record what was done as a stashed ``vidrl.Augmentation`` (the engine
        stashes one naming the augmenter when it does not). The engine checks the indices."""

    def observe(self, samples: Sequence[Sample], group_means: Sequence[float]) -> None:
        """After the step's first roll-out: each original prompt's group-mean reward."""

    def metrics(self) -> dict[str, float]:
        """Counters for the step just done (logged as given; prefix keys with the name)."""
        return {}


class Tool(Component, abc.ABC):
    """A function the model may call mid-reasoning.

    ``description`` and ``parameters`` (a JSON schema object) are listed to the model; the call's
    arguments are untrusted model output, validated before ``__call__`` sees them.
    """

    description: ClassVar[str] = ""
    parameters: ClassVar[Mapping[str, Any]] = {"type": "object", "properties": {}}

    @abc.abstractmethod
    def __call__(self, arguments: Mapping[str, Any], context: Any) -> Any:
        """Run the tool on checked ``arguments`` with a ``vidrl.ToolContext``; return a
        ``vidrl.Observation`` (invalid values: an ``ok=False`` one, never an exception)."""


class Kernel(Component, abc.ABC):
    """An accelerated implementation of a ``vidrl.ops`` primitive; ``name`` is the primitive's.

    It honours the primitive's contract exactly, or raises on input it cannot handle: it never
    silently changes the maths.
    """

    devices: ClassVar[frozenset[str]] = frozenset({"cuda"})

    @abc.abstractmethod
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Same arguments and results as ``vidrl.ops.<name>``."""


class Stage(Component, abc.ABC):
    """A phase of a run (SFT, RL, DPO) or a loop of phases; a run config is a list of stages.

    ``run`` gets a ``vidrl.StageContext`` (model, data, components, ``loop`` for resumable steps
    with logging and checkpoints; every member documented there). ``check`` sees the whole
    ``RunConfig`` before anything loads and returns what is missing for this stage (e.g. an RL
    stage needs rewards)."""

    def check(self, config: Any, session: Any = None) -> list[str]:
        """Problems with the whole ``RunConfig`` for this stage, each naming the config key; []
        when none. ``session`` (the loaded ``vidrl.Session``) lets a check look at the components
        the config names (e.g. a loss's needs). Run by ``vidrl validate`` and before training."""
        return []

    @abc.abstractmethod
    def run(self, context: StageContext) -> None:
        """Run the stage to completion (resuming where ``context.state`` says it stopped)."""


class Judge(Component, abc.ABC):
    """Decides whether a response's reasoning supports its final answer (VerIPO's consistency
    check; docs/algorithms.md, 'VerIPO — specification'). Judges a whole list at once, so a
    model-backed judge can batch; loads its model lazily, on the first call."""

    @abc.abstractmethod
    def __call__(self, items: Sequence[JudgeItem]) -> list[Judgement]:
        """One ``Judgement`` per item, in order."""

    def close(self) -> None:
        """Release what the judge loaded (its model), e.g. to give the memory back to training;
        the next call loads it again."""


class VideoBackend(Component, abc.ABC):
    """Reads video files. ``priority``: higher is preferred by ``backend: auto``."""

    priority: ClassVar[int] = 0

    @abc.abstractmethod
    def probe(self, path: str) -> VideoInfo:
        """Header information; raise ``VideoError`` naming ``path`` if it is not a readable video."""

    @abc.abstractmethod
    def decode(self, path: str, indices: list[int]) -> torch.Tensor:
        """The frames at ``indices`` (sorted, in range) as [F, H, W, 3] uint8 RGB."""


class RolloutBackend(Component, abc.ABC):
    """Samples responses: kind ``rollout_backend``, the one named by the run's ``rollout``
    (built-in: ``hf_generate``). The trainer recomputes every log-prob with its own forward, so a
    backend returns token ids only and its numerics (kernels, precision, batching) never reach
    the loss: a serving engine such as vLLM or SGLang fits behind this interface.

    The engine calls ``attach(model)`` once with the policy before the first ``generate`` (on
    every rank), and ``sync()`` on every rank whenever the policy's weights may have changed since
    the last roll-out (after each RL step's update, at the start of each stage and held-out
    evaluation that rolls out)."""

    def attach(self, model: Any) -> RolloutBackend:
        """Bind to the policy ``model`` (the Hugging Face model, unwrapped; FSDP2-sharded when the
        run shards); returns self."""
        self.model = model
        return self

    @abc.abstractmethod
    def generate(self, request: RolloutRequest) -> torch.Tensor:
        """Response ids [P·G, T] long, T ≤ ``request.sampling.max_new_tokens``: prompt p's G
        responses are rows p·G … p·G + G − 1, each ending at its first stop id (kept) or at the
        token budget, then padded with ``request.pad_id``. Never a media placeholder token."""

    def sync(self) -> None:
        """The policy's weights may have changed: a backend holding its own copy of them loads
        them here. (``hf_generate`` samples with the live model: nothing to do.)"""


#: JSON-schema type of a tool argument → the Python types that satisfy it (bool is not a number)
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "number": (int, float),
    "integer": (int,),
    "string": (str,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


def tool_schema_problem(cls: type) -> str | None:
    """Why a ``Tool``'s ``description`` / ``parameters`` cannot be listed to a model and checked
    against its calls, or None: ``parameters`` must be ``{"type": "object", "properties": {name:
    {"type": one of JSON_TYPES or a list of them (absent: any value), ...}}, "required": [names of
    properties]}``."""
    schema, where = cls.parameters, f"{cls.__name__}.parameters"
    if not isinstance(cls.description, str):
        return f"{cls.__name__}.description must be a str, got {cls.description!r}"
    if not isinstance(schema, Mapping) or schema.get("type") != "object":
        return f'{where} must be a JSON schema of type "object", got {schema!r}'
    props = schema.get("properties", {})
    if not isinstance(props, Mapping):
        return f"{where}['properties'] must map argument names to schemas, got {props!r}"
    for key, prop in props.items():
        if not isinstance(prop, Mapping):
            return f"{where}: argument {key!r} must be a schema (a mapping), got {prop!r}"
        kind = prop.get("type")
        kinds = [] if kind is None else kind if isinstance(kind, list) else [kind]
        if any(k not in JSON_TYPES for k in kinds) or kind == []:
            valid = ", ".join(JSON_TYPES)
            return f"{where}: argument {key!r} has 'type' {kind!r}; valid: {valid}, or a list of them"
    required = schema.get("required", [])
    if not isinstance(required, (list, tuple)) or any(k not in props for k in required):
        return f"{where}['required'] must list names among the properties {sorted(props)}, got {required!r}"
    return None


@dataclass(frozen=True)
class ComponentKind:
    """A kind of component: its CLI name, its registration hook, its base class, and an optional
    check of a class beyond the base's (why it cannot be registered, or None)."""

    name: str
    hook: str
    base: type[Component]
    description: str
    allowed_names: tuple[str, ...] | None = None  # None: any name
    check: Callable[[type], str | None] | None = None


KINDS: dict[str, ComponentKind] = {
    k.name: k
    for k in (
        ComponentKind(
            "advantage", "register_advantage_estimators", AdvantageEstimator, "advantage estimators"
        ),
        ComponentKind("loss", "register_policy_losses", PolicyLoss, "policy losses"),
        ComponentKind("reward", "register_rewards", Reward, "verifiers and reward functions"),
        ComponentKind("augmenter", "register_augmenters", Augmenter, "data augmenters"),
        ComponentKind("tool", "register_tools", Tool, "tools the model can call", check=tool_schema_problem),
        ComponentKind("kernel", "register_kernels", Kernel, "accelerated primitives", PRIMITIVES),
        ComponentKind("stage", "register_stages", Stage, "training stages and loops"),
        ComponentKind("judge", "register_judges", Judge, "judges of reasoning/answer consistency"),
        ComponentKind("video_backend", "register_video_backends", VideoBackend, "video decoding backends"),
        ComponentKind(
            "rollout_backend", "register_rollout_backends", RolloutBackend, "roll-out (sampling) engines"
        ),
    )
}


def label(component: Component) -> str:
    """``advantage 'grpo' (plugin 'grpo_family')``, for errors about a component."""
    kind = next((k.name for k in KINDS.values() if isinstance(component, k.base)), "component")
    return f"{kind} {getattr(component, 'name', type(component).__name__)!r} ({owner(component)})"


def owner(component: Component) -> str:
    """``plugin 'grpo_family'``: the plugin whose registration the session created ``component``
    from (``Session.create`` records it on the instance); ``not registered`` when built directly."""
    plugin = getattr(component, "plugin", None)
    return f"plugin {plugin!r}" if plugin else "not registered"


def check_component_class(kind: ComponentKind, cls: object) -> str | None:
    """Why ``cls`` cannot be registered as a ``kind``, or None when it can."""
    if not (isinstance(cls, type) and issubclass(cls, kind.base)):
        return f"expected a subclass of vidrl.{kind.base.__name__}, got {cls!r}"
    if not isinstance(getattr(cls, "name", None), str) or not cls.name:
        return f"{cls.__name__} has no `name` (a non-empty str class attribute)"
    if kind.allowed_names is not None and cls.name not in kind.allowed_names:
        return f"{cls.__name__}.name {cls.name!r} is not one of {', '.join(kind.allowed_names)}"
    if not (dataclasses.is_dataclass(cls.Config) and cls.Config.__dataclass_params__.frozen):
        return f"{cls.__name__}.Config must be a frozen dataclass, got {cls.Config!r}"
    if isinstance(cls, abc.ABCMeta) and cls.__abstractmethods__:
        return f"{cls.__name__} leaves abstract methods unimplemented: {sorted(cls.__abstractmethods__)}"
    return kind.check(cls) if kind.check is not None else None
