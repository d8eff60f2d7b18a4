"""Multi-turn, tool-augmented roll-outs (VITAL, arXiv:2508.04416; docs/algorithms.md,
'Frame toolbox — specification').

Each roll-out is a conversation that grows turn by turn: the policy generates until a stop token
(the end of a tool call, of the answer, or of its turn); a tool call is parsed (``vidrl.tools.calls``:
json only, checked, errors become observations), run, and its observation is appended as a
``tool`` turn through the model's own chat template and processor (its video becomes a clip of
the row); the policy continues, up to ``max_turns`` calls and the per-turn and total token
budgets. Every turn is generated from the whole sequence so far with all its clips, so the
model's own rope index places every video; the result is one ``Generation`` whose response holds
the policy's tokens (mask 1) and the observations (mask 0, attended), which a single forward
scores exactly as the turns were sampled.

Shapes: P prompts, G roll-outs each, B = P·G rows, C clips (a row owns one or more).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from vidrl.config import TurnLimits, VisionBudget
from vidrl.models.inputs import (
    FITTED_FRAMES,
    FITTED_IMAGES,
    OWNER_KEYS,
    TOKEN_KEYS,
    Geometry,
    clip_owners,
    fit_clip,
    run_processor,
)
from vidrl.plugin.components import RolloutBackend, Tool
from vidrl.tools.calls import CLOSE, call_tool, parse_tool_call
from vidrl.types import Generation, Observation, RolloutRequest, Sample, Sampling, ToolContext

CLIP_KEYS = ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts")
IMAGE_KEYS = ("pixel_values", "image_grid_thw")


@dataclass
class Conversation:
    """One roll-out so far: token ids, their ``mm_token_type_ids``, which the policy produced
    (``trained``), its clips (per-clip processor tensors), the policy's text only (what rewards
    read), the calls made (plain values: name, arguments, ok, text, frames, info) and their
    observations (with the frames the tools returned)."""

    ids: list[int]
    types: list[int]
    trained: list[int]
    clips: list[dict[str, torch.Tensor]]
    prompt_len: int
    text: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    done: bool = False
    #: the prompt's images, each its own vision inputs (``pixel_values``, ``image_grid_thw``)
    images: list[dict[str, torch.Tensor]] = field(default_factory=list)

    @property
    def response_len(self) -> int:
        return len(self.ids) - self.prompt_len


def conversations(batch: Mapping[str, Any], g: int) -> list[Conversation]:
    """G conversations per prompt of a processor batch (left-padded; a prompt holds its video
    and its images, if it has them: ``clip_owners``)."""
    n = batch["input_ids"].shape[0]
    sizes = batch["video_grid_thw"].prod(-1).tolist() if "video_grid_thw" in batch else []
    blocks = torch.split(batch["pixel_values_videos"], sizes) if sizes else []
    owners = clip_owners(batch, "pixel_values_videos") if sizes else []
    images = _images_by_row(batch)
    out = []
    for i in range(n):
        keep = batch["attention_mask"][i].bool()
        ids = batch["input_ids"][i][keep].tolist()
        types = (
            batch["mm_token_type_ids"][i][keep].tolist() if "mm_token_type_ids" in batch else [0] * len(ids)
        )
        clip = [_clip(batch, blocks, c) for c, owner in enumerate(owners) if owner == i]
        out += [Conversation(list(ids), list(types), [0] * len(ids), list(clip), len(ids), images=images[i])
                for _ in range(g)]  # fmt: skip
    return out


def _images_by_row(batch: Mapping[str, Any]) -> list[list[dict[str, torch.Tensor]]]:
    """Each prompt's images [P][k], each as its own vision inputs."""
    out: list[list[dict[str, torch.Tensor]]] = [[] for _ in range(batch["input_ids"].shape[0])]
    if "pixel_values" in batch:
        blocks = torch.split(batch["pixel_values"], batch["image_grid_thw"].prod(-1).tolist())
        for c, owner in enumerate(clip_owners(batch, "pixel_values")):
            out[owner].append(
                {"pixel_values": blocks[c], "image_grid_thw": batch["image_grid_thw"][c : c + 1]}
            )
    return out


def _clip(batch: Mapping[str, Any], blocks: Sequence[torch.Tensor], c: int) -> dict[str, torch.Tensor]:
    """Clip ``c`` of ``batch`` as a conversation's own vision inputs."""
    clip = {"pixel_values_videos": blocks[c], "video_grid_thw": batch["video_grid_thw"][c : c + 1]}
    if "second_per_grid_ts" in batch:
        clip["second_per_grid_ts"] = torch.as_tensor(batch["second_per_grid_ts"]).reshape(-1)[c : c + 1]
    return clip


def collate(convs: Sequence[Conversation], pad_id: int, device: Any = None) -> dict[str, Any]:
    """Left-padded model inputs of whole conversations, every clip in row order."""
    width = max(len(c.ids) for c in convs)
    ids = torch.full((len(convs), width), pad_id, dtype=torch.long)
    types, attention = torch.zeros_like(ids), torch.zeros_like(ids)
    for i, c in enumerate(convs):
        ids[i, width - len(c.ids) :] = torch.tensor(c.ids)
        types[i, width - len(c.ids) :] = torch.tensor(c.types)
        attention[i, width - len(c.ids) :] = 1
    out: dict[str, Any] = {"input_ids": ids, "attention_mask": attention, "mm_token_type_ids": types}
    clips = [clip for c in convs for clip in c.clips]
    for key in CLIP_KEYS:
        if clips and key in clips[0]:
            out[key] = torch.cat([clip[key] for clip in clips])
    images = [image for c in convs for image in c.images]  # the model takes each kind in row order
    for key in IMAGE_KEYS:
        if images:
            out[key] = torch.cat([image[key] for image in images])
    return {k: v.to(device) if device is not None else v for k, v in out.items()}


def observation_segment(processor: Any, obs: Observation, budget: VisionBudget) -> Any:
    """The tokens that close the policy's turn, hold the observation as a ``tool`` turn and open
    the next assistant turn, rendered by the model's chat template and processor (its video
    fitted to ``budget``)."""
    base = [{"role": "user", "content": "x"}]
    content = ([{"type": "video"}] if obs.frames is not None else []) + [{"type": "text", "text": obs.text}]
    head = processor.apply_chat_template(base, add_generation_prompt=True, tokenize=False)
    full = processor.apply_chat_template(
        [*base, {"role": "assistant", "content": "x"}, {"role": "tool", "content": content}],
        add_generation_prompt=True, tokenize=False,
    )  # fmt: skip
    segment = full[len(head) + 1 :]  # after the assistant's one-character text
    clip = None if obs.frames is None else fit_clip(obs.frames, Geometry.of(processor), budget, 0)
    return run_processor(processor, [segment], [clip])


def _turn_tokens(row: torch.Tensor, stops: set[int], pad_id: int, room: int) -> list[int]:
    """A generated row up to and including its first stop token (else without trailing padding),
    cut to ``room`` tokens."""
    toks = row.tolist()
    for i, t in enumerate(toks):
        if t in stops:
            return toks[: i + 1][:room]
    while toks and toks[-1] == pad_id:
        toks.pop()
    return toks[:room]


def _observe(conv: Conversation, turn: str, tools: Mapping[str, Tool], context: ToolContext) -> Observation:
    """Parse and run the turn's tool call; record it in ``conv.calls``."""
    call = parse_tool_call(turn)
    obs = call if isinstance(call, Observation) else call_tool(tools, call, context)
    frames = 0 if obs.frames is None else len(obs.frames.times)
    conv.calls.append({"name": getattr(call, "name", None), "arguments": dict(getattr(call, "arguments", {})),
                       "ok": obs.ok, "text": obs.text, "frames": frames, "info": dict(obs.info)})  # fmt: skip
    conv.observations.append(obs)
    return obs


@dataclass(frozen=True)
class ToolSetup:
    """What a tool roll-out needs besides the policy: the tools by name, each prompt's
    ``ToolContext``, the token ids that end a turn (end of turn, ``</tool_call>``,
    ``</answer>``), the id of ``</tool_call>``, and the pixel budget of observation clips."""

    tools: Mapping[str, Tool]
    contexts: Sequence[ToolContext]
    stop_ids: Sequence[int]
    call_end_id: int
    budget: VisionBudget = VisionBudget()


def tool_rollout(
    backend: RolloutBackend,
    processor: Any,
    batch: Mapping[str, Any],
    g: int,
    sampling: Sampling,
    limits: TurnLimits,
    setup: ToolSetup,
) -> tuple[Generation, list[Conversation]]:
    """G multi-turn roll-outs per prompt of ``batch``, each turn one request to ``backend`` (the
    active conversations, stopping on ``setup.stop_ids``). Returns the ``Generation`` to train on
    and the conversations (texts for rewards: ``conv.text``; calls for logs and the tool bonus:
    ``conv.calls``)."""
    tok = processor.tokenizer
    convs, stops = conversations(batch, g), set(setup.stop_ids)
    for k in range(limits.max_turns + 1):
        active = [(i, c) for i, c in enumerate(convs) if not c.done]
        if not active:
            break
        rooms = [min(limits.max_turn_tokens, limits.max_total_tokens - c.response_len) for _, c in active]
        turn_sampling = Sampling(sampling.temperature, sampling.top_p, max(1, max(rooms)))
        rows = backend.generate(_turn_request(batch, [c for _, c in active], g, k == 0, turn_sampling,
                                              setup, tok.pad_token_id))  # fmt: skip
        for (i, conv), row, room in zip(active, rows, rooms, strict=True):
            toks = _turn_tokens(row, stops, tok.pad_token_id, room)
            turn = tok.decode(toks, skip_special_tokens=True)
            _policy_turn(conv, toks, turn)
            conv.done = not (toks and toks[-1] == setup.call_end_id and len(conv.calls) < limits.max_turns)
            if not conv.done:
                obs = _observe(conv, turn, setup.tools, setup.contexts[i // g])
                _append(conv, obs, processor, setup, limits.max_total_tokens)
    return _generation(batch, convs, g, tok.pad_token_id), convs


def _turn_request(
    batch: Mapping[str, Any], active: Sequence[Conversation], g: int, first: bool, sampling: Sampling,
    setup: ToolSetup, pad_id: int,
) -> RolloutRequest:  # fmt: skip
    """A turn's request: on the ``first`` (every conversation still holds its prompt alone) the
    prompts themselves, G samples each, so that a backend may prefill each prompt once; then
    every active conversation, one sample each."""
    stops = tuple(setup.stop_ids)
    if first and g > 1:
        return RolloutRequest(
            batch, g, sampling, stops, pad_id, batch.get(FITTED_FRAMES), batch.get(FITTED_IMAGES)
        )
    return RolloutRequest(collate(active, pad_id, batch["input_ids"].device), 1, sampling, stops, pad_id)


def _policy_turn(conv: Conversation, toks: Sequence[int], text: str) -> None:
    """Append a policy turn: its tokens (mask 1) and its text."""
    conv.ids += toks
    conv.types += [0] * len(toks)
    conv.trained += [1] * len(toks)
    conv.text += text


def _append(
    conv: Conversation, obs: Observation, processor: Any, setup: ToolSetup, max_total: int | None
) -> None:
    """Append the observation's segment (mask 0); a segment over ``max_total`` response tokens
    (None: no budget) ends the roll-out."""
    seg = observation_segment(processor, obs, setup.budget)
    ids = seg["input_ids"][0].tolist()
    if max_total is not None and conv.response_len + len(ids) >= max_total:
        # the policy never sees it: not a success
        conv.calls[-1].update(ok=False, text=f"{conv.calls[-1]['text']} (dropped: over max_total_tokens)")
        conv.done = True
        return
    conv.ids += ids
    conv.types += seg["mm_token_type_ids"][0].tolist() if "mm_token_type_ids" in seg else [0] * len(ids)
    conv.trained += [0] * len(ids)
    if "video_grid_thw" in seg:
        conv.clips.append(_clip(seg, [seg["pixel_values_videos"]], 0))


def _generation(batch: Mapping[str, Any], convs: Sequence[Conversation], g: int, pad_id: int) -> Generation:
    """The conversations as one ``Generation``: the left-padded prompts, every clip of every row
    (``clip_rows``), responses right-padded with mask, attention and token types."""
    device = batch["input_ids"].device
    prompt = {k: v.repeat_interleave(g, dim=0) for k, v in batch.items() if k in TOKEN_KEYS}
    clips = [(r, clip) for r, c in enumerate(convs) for clip in c.clips]
    for key in CLIP_KEYS:
        if clips and key in clips[0][1]:
            prompt[key] = torch.cat([clip[key] for _, clip in clips]).to(device)
    images = [(r, image) for r, c in enumerate(convs) for image in c.images]
    if images:
        for key in IMAGE_KEYS:
            prompt[key] = torch.cat([image[key] for _, image in images]).to(device)
        owners = [r for r, _ in images]
        if owners != list(range(len(convs))):  # OWNER_KEYS: a row holds none or several
            prompt[OWNER_KEYS["pixel_values"]] = torch.tensor(owners, dtype=torch.long, device=device)
    width = max(1, max(c.response_len for c in convs))
    shape = (len(convs), width)
    ids, mask = torch.full(shape, pad_id, dtype=torch.long), torch.zeros(shape, dtype=torch.long)
    attention, types = torch.zeros(shape, dtype=torch.long), torch.zeros(shape, dtype=torch.long)
    for r, c in enumerate(convs):
        n, p = c.response_len, c.prompt_len
        ids[r, :n], mask[r, :n] = torch.tensor(c.ids[p:], dtype=torch.long), torch.tensor(c.trained[p:])
        attention[r, :n], types[r, :n] = 1, torch.tensor(c.types[p:], dtype=torch.long)
    rows = torch.tensor([r for r, _ in clips], dtype=torch.long) if clips else None
    return Generation(
        prompt, ids.to(device), mask.to(device), attention.to(device), types.to(device), rows, g
    )


def given_conversations(
    processor: Any, batch: Mapping[str, Any], texts: Sequence[str], setup: ToolSetup
) -> tuple[Generation, list[Conversation]]:
    """Teacher forcing through tools: each of ``texts`` [P] (the policy's turns, as a roll-out's
    ``conv.text``) is cut after every ``</tool_call>``; each call is run and its observation
    appended as in a roll-out, and the last turn ends with the end-of-turn token. Turn and token
    budgets do not apply. Returns the ``Generation`` (mask 1 on the given turns) and the
    conversations."""
    tok = processor.tokenizer
    convs = conversations(batch, 1)
    for i, (conv, text) in enumerate(zip(convs, texts, strict=True)):
        parts = text.split(CLOSE)
        turns = [p + CLOSE for p in parts[:-1]] + [parts[-1] + tok.eos_token]
        for k, turn in enumerate(turns):
            toks = tok(turn, add_special_tokens=False)["input_ids"]
            _policy_turn(conv, toks, turn.removesuffix(tok.eos_token))
            if k < len(turns) - 1:
                _append(conv, _observe(conv, turn, setup.tools, setup.contexts[i]), processor, setup, None)
    return _generation(batch, convs, 1, tok.pad_token_id), convs


def tool_prompt(tools: Mapping[str, Tool], system: str | None = None) -> str:
    """A system prompt listing ``tools`` (Qwen function JSON) and how to call them, after ``system``."""
    from vidrl.tools.calls import tool_schemas

    head = f"{system}\n\n" if system else ""
    return (
        f"{head}You may call a tool to look at the video again: write "
        '<tool_call>{"name": ..., "arguments": {...}}</tool_call> and wait for its result.\n'
        f"<tools>\n{tool_schemas(tools)}\n</tools>"
    )


class ToolRunner:
    """Tool roll-outs and tool-aware teacher forcing of ``policy`` (a ``vidrl.Policy``) with
    ``tools`` on prompts of ``dataset``, observation clips fitted to ``budget``. The end of a tool
    call must be one token of the tokenizer (it is for Qwen's ``</tool_call>``)."""

    def __init__(self, policy: Any, tools: Mapping[str, Tool], dataset: Any, video_backend: Any,
                 budget: VisionBudget, backend: RolloutBackend) -> None:  # fmt: skip
        from vidrl.errors import ConfigError

        tok = policy.tokenizer
        vocab = tok.get_vocab()
        if CLOSE not in vocab:
            raise ConfigError([f"tools: the tokenizer has no single {CLOSE} token to stop a turn on"])
        self.policy, self.tools, self.dataset, self.video_backend = policy, tools, dataset, video_backend
        self.budget, self.call_end_id = budget, vocab[CLOSE]
        self.stops = [vocab[t] for t in (tok.eos_token, CLOSE, "</answer>") if t in vocab]
        self.backend = backend

    def setup(self, samples: Sequence[Sample]) -> ToolSetup:
        """The ``ToolSetup`` of a batch of prompts [P]."""
        contexts = [ToolContext(s, None if s.video is None else str(self.dataset.path(s.video)),
                                self.video_backend, s.duration) for s in samples]  # fmt: skip
        return ToolSetup(self.tools, contexts, self.stops, self.call_end_id, self.budget)

    def rollout(self, batch: Any, samples: Sequence[Sample], g: int, sampling: Sampling,
                limits: TurnLimits) -> tuple[Generation, list[Conversation]]:  # fmt: skip
        """``tool_rollout`` of G roll-outs per prompt (with ``limits``, this is a roller for
        ``vidrl.rl_step``: ``functools.partial(runner.rollout, limits=limits)``)."""
        return tool_rollout(
            self.backend, self.policy.processor, batch, g, sampling, limits, self.setup(samples)
        )

    def teacher_forced(self, batch: Any, samples: Sequence[Sample], texts: Sequence[str]) -> Generation:
        """``given_conversations``: the ``Generation`` of ``texts`` [P] with their calls run."""
        return given_conversations(self.policy.processor, batch, texts, self.setup(samples))[0]
