#!/usr/bin/env bash
# The GPU check of issue 10 in one prepared script (about 2-4 minutes on one current GPU):
#   1. CUDA-vs-CPU equivalence of the pipeline on the same frame, with stated tolerances, and whether
#      torch.compile / CUDA graphs pay off (racalnet_ros/bench/gpu_check.py);
#   2. `racalnet bench --what pipeline` on cuda: fp32 and fp16, 640x480 and 1280x720, 1,000 / 4,000 / 20,000
#      radar points, Depth Anything V2 Small (random weights) and a precomputed prior.
# It needs only python3 with PyTorch, torchvision, transformers, OpenCV, safetensors and PyYAML: no network, no ROS,
# no install of this package (the core runs from this source tree with PYTHONPATH=.; nothing on this path imports
# rclpy). Results (JSON + markdown) go to the folder given as the first argument, else $OUT, else ./bench_gpu_out.
#
#   scripts/bench_gpu.sh [OUT_DIR] [--allow-cpu] [--no-compile]
#     --allow-cpu   dry run on the CPU when there is no CUDA device (checks the path, not the speed)
#     --no-compile  skip the torch.compile check (it compiles two functions once: tens of seconds)
set -euo pipefail
cd "$(dirname "$0")/.."

out="${OUT:-bench_gpu_out}"
allow_cpu="" no_compile=""
for arg in "$@"; do
  case "$arg" in
    --allow-cpu) allow_cpu="--allow-cpu" ;;
    --no-compile) no_compile="--no-compile" ;;
    -*) echo "bench_gpu.sh: unknown option $arg" >&2; exit 2 ;;
    *) out="$arg" ;;
  esac
done
py="${PYTHON:-python3}"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1   # never reach for the network
mkdir -p "$out"

device=cuda
if ! "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  if [ -z "$allow_cpu" ]; then
    echo "bench_gpu.sh: torch sees no CUDA device (use --allow-cpu for a dry run on the CPU)" >&2
    exit 2
  fi
  device=cpu
  echo "bench_gpu.sh: no CUDA device: dry run on the CPU" >&2
fi

start=$(date +%s)
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
  torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')" | tee "$out/versions.txt"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv >> "$out/versions.txt" 2>/dev/null || true

status=0
"$py" -m racalnet_ros.bench.gpu_check --device "$device" --out "$out" $allow_cpu $no_compile || status=$?

if [ "$device" = cuda ]; then
  "$py" -m racalnet_ros.cli bench --what pipeline --device cuda --out "$out"
else  # dry run: the smallest configuration, to check the path
  "$py" -m racalnet_ros.cli bench --what pipeline --device cpu --quick --priors precomputed --out "$out"
fi
echo "bench_gpu.sh: done in $(( $(date +%s) - start )) s; results in $out (gpu_check.md, bench.md, *.json)"
exit "$status"
