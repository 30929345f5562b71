#!/usr/bin/env bash
# The checks that need a GPU, as one script (a machine with one CUDA GPU and the project installed):
#   1. ddp      one CLI job with trainer=ddp on the GPU (nccl, the model and batches on cuda:LOCAL_RANK)
#   2. bench    python scripts/benchmark.py --mode gpu -> performance_gpu.md (bf16 and compile
#               throughput, Lightning vs bare loop, unlearning vs retraining, evaluation throughput)
#   3. compile  one DeepCUT CLI job with trainer.precision=bf16-mixed trainer.compile=true
#   4. sweep    experiment=deepcut_bbc on the GPU, for what time is left -> deepcut_bbc_gpu.md
#   5. profile  scripts/profile_step.py: Lightning vs bare loop, autocast cache on / off, bf16 at 256
#               tokens, timed and under torch.profiler -> profile_step.md
#   6. full     benchmark.py --mode full --only $FULL_SECTIONS (default c) --seeds $FULL_SEEDS (default 0)
#               -> performance_full_gpu.md and its scaling plot
#
#   OUT=dir DEADLINE_S=600 STEPS="ddp bench compile sweep" bash scripts/gpu_check.sh   # the default steps
#
# Each step's log (with its results.json's timing and cost) and the tables land in $OUT; a failing step does not stop the others,
# and the exit status is 1 when any failed. Steps past DEADLINE_S (seconds from the start) are skipped.
set -uo pipefail
OUT=${OUT:-outputs/gpu_check}
WORK=${WORK:-$(mktemp -d /tmp/unlearnbench-gpu-XXXX)}
PY=${PYTHON:-python}
DEADLINE_S=${DEADLINE_S:-1800}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$WORK"
T0=$(date +%s)
status=0

left() { echo $((DEADLINE_S - ($(date +%s) - T0))); }

STEPS=" ${STEPS:-ddp bench compile sweep} "

step() {  # step NAME MAX_SECONDS COMMAND...: run with a timeout (the smaller of MAX and what is left)
  local name=$1 max=$2
  shift 2
  [[ $STEPS == *" $name "* ]] || return 0
  local budget
  budget=$(left)
  ((budget > max)) && budget=$max
  if ((budget < 20)); then
    echo "== $name: skipped ($(left) s left)"
    status=1
    return
  fi
  echo "== $name (at most ${budget}s): $*"
  local start rc
  start=$(date +%s)
  timeout --kill-after=10 "$budget" "$@" >"$OUT/$name.log" 2>&1
  rc=$?
  echo "== $name: rc=$rc in $(($(date +%s) - start)) s"
  grep -E "forget F1|wrote|Error|error" "$OUT/$name.log" | tail -n 6
  ((rc == 0)) || status=1
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
$PY -c "import torch, lightning, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda,
'lightning', lightning.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name(0))"

CLI=($PY -m unlearnbench.cli experiment=smoke logger=none trainer.accelerator=gpu paths.cache_dir="$WORK/cache")
step ddp 90 "${CLI[@]}" method=deepcut trainer=ddp trainer.devices=1 hydra.run.dir="$WORK/ddp"
step bench 300 $PY scripts/benchmark.py --mode gpu --cache "$WORK/bench-cache" \
  --out "$OUT/performance_gpu.md" --json "$OUT/performance_gpu.json"
step compile 120 "${CLI[@]}" method=deepcut trainer.precision=bf16-mixed trainer.compile=true \
  hydra.run.dir="$WORK/compile"
step profile 200 $PY scripts/profile_step.py --out "$OUT/profile_step.md" data=bbc data.max_length=256 \
  train.batch_size=64 trainer.precision=bf16-mixed trainer.accelerator=gpu
step full 900 $PY scripts/benchmark.py --mode full --only "${FULL_SECTIONS:-c}" --seeds "${FULL_SEEDS:-0}" \
  --cache "$WORK/full-cache" --out "$OUT/performance_full_gpu.md" --json "$OUT/performance_full_gpu.json"
for name in ddp compile; do  # where the run's models and numbers were: device, precision, timing
  [ -f "$WORK/$name/results.json" ] && $PY -c "import json, sys; r = json.load(open(sys.argv[1]))
print(sys.argv[2], 'timing', r['timing'], 'cost', r['cost'], 'test', r['metrics'].get('test'))" \
    "$WORK/$name/results.json" "$name" >>"$OUT/$name.log"
done

step sweep 900 $PY -m unlearnbench.cli -m experiment=deepcut_bbc logger=none trainer.accelerator=gpu \
  trainer.enable_progress_bar=false hydra.sweep.dir="$WORK/deepcut_bbc" paths.cache_dir="$WORK/cache"
[ -d "$WORK/deepcut_bbc" ] && $PY -m unlearnbench.cli.report "$WORK/deepcut_bbc" --out "$WORK/report" --no-plots >/dev/null 2>&1 &&
  cp "$WORK/report/results.md" "$OUT/deepcut_bbc_gpu.md"
echo "== done in $(($(date +%s) - T0)) s, status $status"
exit $status
