#!/usr/bin/env bash
# One-command check on the lent GPU machine (Python 3.12 with torch/torchvision/timm/..., no registry).
# Here, first: `make gpu-wheels` (downloads the missing wheels into wheels/, ignored by git); carry
# the repository copy with wheels/ there and run `bash benchmarks/gpu_check.sh` ($OUT: where figures go).
set -uo pipefail
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
exec > >(tee "$OUT/gpu_check.log") 2>&1
echo "== environment"; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
$PY -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.cuda.is_available())"
echo "== installing the missing wheels (no index)"
$PY -m pip install --quiet --no-index --find-links wheels --no-deps pydantic pydantic-core annotated-types \
    typing-inspection typing-extensions ptflops kornia kornia_rs || echo "wheel install failed"
$PY -m pip install --quiet --no-index --find-links wheels --no-deps pytest pytest-benchmark 2>/dev/null || true
export PYTHONPATH=$PWD:$(ls -d $PWD/plugins/*/ | tr '\n' ':') HF_HUB_OFFLINE=1 CXRBENCH_CACHE=$OUT/cache
if ! $PY -c "import pytest" 2>/dev/null; then echo "pytest missing: benchmarks run as scripts only"; fi
echo "== CUDA tests and benchmarks"
timeout 300 $PY -m pytest -q -p no:cacheprovider -m "" -s tests/test_data_path.py -k cuda 2>&1 | tail -20
timeout 300 $PY -m pytest -q -p no:cacheprovider -m "" -s benchmarks/test_gpu_path.py -k cuda \
    --benchmark-disable 2>&1 | tail -40
echo "== two-epoch CUDA run of suites/quickstart.yaml"
timeout 300 $PY -m cxrbench.cli run suites/quickstart.yaml --device cuda --set train.epochs=2 \
    --results "$OUT/results" 2>&1 | tail -30 || $PY -m cxrbench.cli run --help | head -30
find "$OUT/results" -name "*.json" -path "*records*" -exec $PY -c "
import json, sys
for p in sys.argv[1:]:
    r = json.load(open(p)); print(r.get('job_id'), r.get('status'), r.get('train_seconds'), r.get('runtime'), r.get('metrics'))
" {} + 2>/dev/null
echo "== done"
