#!/bin/bash
# The CUDA checks of nerfgen, for a GPU machine that cannot see ../shared (a lent device machine).
#
#   bash bench/cuda_check.sh --prepare   # here: .devdata/ = lego (train + every 8th test view, 54 MB)
#                                        #       and lego's march problem for bench/kernels.py
#   bash bench/cuda_check.sh             # there (carry .devdata): build, kernel tests on CPU and CUDA,
#                                        # bench/kernels.py on CUDA, LEGO_MINUTES (1) of lego on CUDA,
#                                        # its bake and the baked viewer's frame time (1920 wide)
# Logs and JSON lines go to $OUT (default .devdata/out).
set -u
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--prepare" ]; then
  src=${LEGO:-../shared/data/nerf_synthetic/lego}
  rm -rf .devdata/lego && mkdir -p .devdata/lego/train .devdata/lego/test
  cp "$src"/train/*.png .devdata/lego/train/ && cp "$src"/transforms_train.json .devdata/lego/
  python3 - "$src" <<'PY'
import json, shutil, sys
src = sys.argv[1]
t = json.load(open(f"{src}/transforms_test.json"))
t["frames"] = t["frames"][::8]
for f in t["frames"]:
    shutil.copy(f"{src}/{f['file_path']}.png", ".devdata/lego/test/")
json.dump(t, open(".devdata/lego/transforms_test.json", "w"), indent=1)
PY
  python3 bench/kernels.py --data "$src" --sizes 4096 --repeats 1 --save-problem .devdata/lego_march.safetensors
  exit
fi
export OUT=${OUT:-.devdata/out} PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NERFGEN_CACHE=${NERFGEN_CACHE:-/tmp/ngcache}
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-16} CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
mkdir -p "$OUT"
T0=$(date +%s); stamp() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
stamp build
timeout 240 python3 -c "from nerfgen.ops import _backend; print('backend', _backend.get_backend_name(), _backend.backend_error())"
stamp tests
timeout 300 python3 -m pytest -q -rf --tb=short -p no:cacheprovider -k "not compiles" tests/test_cuda_kernels.py \
  tests/test_hashgrid_kernel.py tests/test_march_kernel.py tests/test_volrend_kernel.py tests/test_planes_kernel.py \
  tests/test_baked_kernel.py > "$OUT/tests.txt" 2>&1
tail -c 1500 "$OUT/tests.txt"
stamp bench_kernels
timeout 150 python3 bench/kernels.py --device cuda --problem .devdata/lego_march.safetensors \
  --sizes 65536 262144 1048576 4194304 --repeats 10 | tee "$OUT/bench_kernels.jsonl"
stamp bench_lego
minutes=${LEGO_MINUTES:-1}
timeout $(( ${minutes%.*} * 60 + 120 )) python3 bench/lego.py --data .devdata/lego --minutes "$minutes" --every 1 \
  --device cuda --config configs/ngp_cuda.yaml --output /tmp/nerfgen_bench 2> "$OUT/bench_lego.err" | tee "$OUT/bench_lego.jsonl"
stamp bake_lego
run=/tmp/nerfgen_bench/lego_${minutes}min
timeout 240 python3 -m nerfgen bake "$run" --device cuda > "$OUT/bake.jsonl" 2> "$OUT/bake.err" && tail -n 3 "$OUT/bake.err"
timeout 120 python3 bench/viewer.py "$run" --baked --device cuda --moving 1920 --still 1920 --frames 12 --stills 2 \
  | tee "$OUT/viewer_baked_1080p.jsonl"
stamp done
