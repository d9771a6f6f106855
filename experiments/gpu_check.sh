#!/usr/bin/env bash
# Every check that needs a CUDA GPU, in one prepared run (device time is scarce: run it once).
#
#   bash experiments/gpu_check.sh [PONG_SECONDS]
#   DEVICE=cpu bash experiments/gpu_check.sh 30    # the script itself, tried on a CPU
#
# From the repository root, on a machine whose python3 has torch with CUDA. The packages such an
# image may lack (gymnasium, ale-py, minatar, tomli-w, farama-notifications) are installed from
# wheels in .whl/ when that folder exists (download them beforehand with `pip download --no-deps
# --only-binary=:all:` for the machine's Python). In order, each under its own time limit:
#   1. nvidia-smi and torch's view of the device;
#   2. the device-parametrised tests on CUDA (ideal preset == float PyTorch, training on the
#      default preset: tests/test_layers.py -k cuda; each takes the GPU where torch sees one);
#   3. python -m rlime.perf --device cuda (RRAM vs float training step, MLP and Nature CNN);
#   4. experiments/throughput.py --device cuda (Pong with learning on: SPS of both backends);
#   5. experiments/compile_periphery.py --device cuda (the ADC's tensor ops eager vs
#      torch.compile: on CUDA the periphery runs as tensor ops, so compiling is the fusion there);
#   6. a Pong rram run and a float run on CUDA, PONG_SECONDS each (default 100), stopped at their
#      limit (exit 124, expected) with a checkpoint: SPS and whatever part of a learning curve
#      fits (their episodes.jsonl and summary.json are kept, their SPS printed last).
# Output: $OUT (the device tool's folder) or ./gpu_check_out: gpu_check.log and the two runs'
# episodes and summaries. The limits add up to 12 min 20 s with the default PONG_SECONDS; steps
# usually end well before theirs (a CPU dry run with PONG_SECONDS 30 took 2 min 43 s), and
# where the call itself is capped (the device tool: 10 minutes) the Pong runs, last, are what is
# cut short: the log written so far still comes back in $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
PONG_SECONDS="${1:-100}"
DEVICE="${DEVICE:-cuda}"
OUT="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi

step() {  # step SECONDS COMMAND...: run it under a time limit, its output into the log
  local limit="$1"; shift
  echo "== $* (limit ${limit} s)" | tee -a "$LOG"
  timeout --signal=INT --kill-after=60 "$limit" "$@" 2>&1 | tee -a "$LOG"
  echo "== exit ${PIPESTATUS[0]}" | tee -a "$LOG"
}

step 30 nvidia-smi
step 60 python3 -c "import torch; print(torch.__version__, torch.cuda.is_available(), \
torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device')"
step 120 python3 -m pytest -q -p no:cacheprovider tests/test_layers.py -k "$DEVICE"
step 90 python3 -m rlime.perf --device "$DEVICE" --repeats 5
step 150 python3 experiments/throughput.py --device "$DEVICE" --steps 2000
step 90 python3 experiments/compile_periphery.py --device "$DEVICE" --repeats 3
for backend in rram float; do
  # SIGINT stops a run at a checkpoint with its episodes and summary written
  rm -rf "/tmp/pong_$backend"
  step "$PONG_SECONDS" python3 -m rlime.train --env Pong --backend "$backend" --device "$DEVICE" \
    --run-dir "/tmp/pong_$backend" --no-progress
  for f in episodes.jsonl summary.json; do
    [ -f "/tmp/pong_$backend/$f" ] && cp "/tmp/pong_$backend/$f" "$OUT/pong_${backend}_$f"
  done
done
python3 - "$OUT" <<'PY' 2>&1 | tee -a "$LOG"
import json, pathlib, sys
for backend in ("rram", "float"):  # a stopped run exits 124 (its time limit): expected
    path = pathlib.Path(sys.argv[1]) / f"pong_{backend}_summary.json"
    if path.exists():
        s = json.loads(path.read_text())
        print(f"Pong {backend}: {s['steps']} steps in {s['wall_s']:.0f} s, {s['sps']:.1f} SPS, "
              f"{s['episodes']} episodes, score {s['final_score']}")
PY
echo "== done; results in $OUT" | tee -a "$LOG"
