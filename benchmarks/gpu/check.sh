#!/usr/bin/env bash
# The prepared GPU check: one command, under 9 minutes on one H100/H200, using only what a bare
# GPU machine without network has (torch, transformers, accelerate, peft, triton, pytest; no
# decord, PyAV or vLLM: vidrl is installed without its video dependencies, clips are tensors).
#
#   bash benchmarks/gpu/check.sh        (from the repository root, on the GPU machine)
#
# 1. the kernel harness (benchmarks/gpu_harness.py): first the kernel tests on CUDA (tests/kernels,
#    the gpu-marked full-size shapes included; it reports nothing if one fails), then vidrl's Triton
#    kernels against torch;
# 2. an RL step by phase (benchmarks/gpu/rl_step.py) on the tiny model, and on a real-size
#    Qwen2.5-VL-3B with random weights in bf16-mixed with gradient checkpointing; then the 3B step
#    at G = 8 with a 32-frame clip with each prompt computed once per group (the default) and
#    with every copy computed (--encode-every-copy --prefill-every-copy --forward-every-copy).
# 3. only when a PyAV wheel is carried in .whl/ (the machine has no video decoder; fetch it here with
#    `pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64
#    -d .whl av`): `vidrl train` end to end, the embedded demo (SFT, then RL, held-out evaluation
#    before and after), the VerIPO loop (GRPO, verifier, DPO), and a short SFT + RL run through
#    `accelerate launch` with examples/accelerate/fsdp2.yaml (one process).
# PARTS="kernels train-fsdp2" runs only the parts named (a rerun of what failed).
# Everything lands under benchmarks/results/<gpu-name>/ (and, as one results.tgz, under $OUT when
# it is set: the device returns at most 8 files).
# Each part has its own time limit; a failing part is reported and the next one still runs.
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1
# the folder name the kernel harness uses too
name=$(python3 -c "import re, torch; print(re.sub(r'[^A-Za-z0-9_.-]+', '_', torch.cuda.get_device_name()))") || exit 1
out="benchmarks/results/$name"
mkdir -p "$out"
site=$(mktemp -d)
if ! python3 -m pip install -q --no-deps --no-build-isolation --target "$site" . >"$out/install.log" 2>&1; then
  echo "vidrl did not install:"; cat "$out/install.log"; exit 1
fi
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
failed=()
part() {  # part NAME SECONDS COMMAND...: run, log to $out/NAME.log, remember a failure
  local name=$1 limit=$2; shift 2
  if [ -n "${PARTS:-}" ] && [[ " $PARTS " != *" $name "* ]]; then return; fi  # PARTS="a b": only those
  echo "== $name (at most ${limit}s)"
  if ! timeout "$limit" "$@" 2>&1 | tee "$out/$name.log"; then failed+=("$name"); fi
}
rm -f "$out/rl-step.jsonl" "$out/rl-step.md"
part kernels 240 python3 benchmarks/gpu_harness.py --out benchmarks/results
part rl-step-tiny 45 python3 benchmarks/gpu/rl_step.py --size tiny --out "$out"
part rl-step-3b 150 python3 benchmarks/gpu/rl_step.py --size qwen2_5_vl_3b --precision bf16-mixed \
  --gradient-checkpointing --prompts 2 --group 4 --frames 16 --side 336 --max-new-tokens 64 --out "$out"
for flags in "" "--encode-every-copy --prefill-every-copy --forward-every-copy"; do
  part "prompt-once${flags:+-off}" 150 python3 benchmarks/gpu/rl_step.py --size qwen2_5_vl_3b \
    --precision bf16-mixed --gradient-checkpointing --prompts 1 --group 8 --micro-batch 8 --frames 32 \
    --side 336 --max-new-tokens 64 --steps 2 $flags --out "$out"
done
if ls .whl/av-*.whl >/dev/null 2>&1 && python3 -m pip install -q --no-index --no-deps --no-compile \
    --target "$site" .whl/av-*.whl >>"$out/install.log" 2>&1; then
  vidrl() { python3 -c "import sys; from vidrl.cli import main; sys.argv[0] = 'vidrl'; sys.exit(main())" "$@"; }
  export -f vidrl
  export runs="$site/runs"  # run directories, removed with $site at the end
  part train-demo 200 bash -c "set -o pipefail; vidrl train --output-dir \$runs/demo 2>&1 \
    | tr '\\r' '\\n' | grep -Ev '%\\||^\\s*$'"
  part train-veripo 200 bash -c "set -o pipefail; vidrl train examples/configs/veripo.yaml \
    --output-dir \$runs/veripo 2>&1 | tr '\\r' '\\n' | grep -Ev '%\\||^\\s*$'"
  # accelerate's own FSDP2 path (one process: the sharding code on CUDA, bf16 mixed-precision policy)
  export cfg="$site/fsdp2.yaml"
  printf '%s\n' "model: {tiny_arch: qwen2_5_vl, freeze: [visual], gradient_checkpointing: true}" \
    "data: {synth: {train_videos: 32, eval_videos: 16, tasks: [numeric]}, max_frames: 4}" \
    "stages: [{name: sft, options: {steps: 20, batch_size: 8}}," \
    "  {name: rl, options: {steps: 6, prompts_per_step: 2, group_size: 4, max_new_tokens: 12}}]" \
    "advantage: grpo" "loss: {name: ppo_clip, options: {beta: 0.04}}" \
    "rewards: [{name: format, options: {think: false}}, numeric]" \
    "checkpoint: {every: 5}" "eval: {max_new_tokens: 12}" >"$cfg"
  part train-fsdp2 150 bash -c "set -o pipefail; python3 -m accelerate.commands.launch --config_file \
    examples/accelerate/fsdp2.yaml --num_processes 1 -m vidrl.cli train \$cfg --output-dir \$runs/fsdp2 \
    2>&1 | tr '\\r' '\\n' | grep -Ev '%\\||^\\s*$'"
else
  echo "== train-demo, train-veripo, train-fsdp2: skipped (no PyAV wheel in .whl/)"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$out/device.csv" 2>/dev/null
if [ -n "${OUT:-}" ]; then tar czf "$OUT/results.tgz" -C benchmarks/results "$name"; fi
rm -rf "$site"
if [ ${#failed[@]} -gt 0 ]; then echo "FAILED: ${failed[*]}"; exit 1; fi
echo "all parts passed; results in $out"
