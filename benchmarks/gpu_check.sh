#!/usr/bin/env bash
# The GPU checks, as one script for a machine with a CUDA GPU: the extractor
# and fine-tuning tests (device="auto" picks the GPU there), then the
# throughput and mixed-precision fine-tuning benchmark. Run from the
# repository root with the project's environment (make install) active.
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU'; print(torch.cuda.get_device_name(0))"
python -m pytest -q -p no:cacheprovider -m "not slow" tests/feature_extraction tests/finetune
python benchmarks/gpu_check.py --repeats 3 --write-results "$@"
