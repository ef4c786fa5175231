#!/usr/bin/env bash
# Run the throughput benchmark on one GPU (cuDNN under nn.LSTM), equal-length cuDNN ceiling in the same run.
# Prepared for a lent GPU machine: needs only torch, numpy, safetensors (no sktime: the inputs come from
# benchmarks/data/bench_inputs.npz). Takes about 3-5 minutes on one H100. Writes benchmarks/RESULTS_gpu.md.
#   bash benchmarks/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name(0))"
python3 -c "import safetensors" 2>/dev/null || python3 -m pip install -q safetensors || true
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python3 benchmarks/run.py --data benchmarks/data/bench_inputs.npz --allocator default \
    --repeats-plaid 5 --repeats-jv 20 --out benchmarks/RESULTS_gpu.md "$@"
