#!/usr/bin/env bash
# The GPU checks, as one script for a machine with a CUDA GPU: the extractor
# and fine-tuning tests (device="auto" picks the GPU there; the CUDA-only
# tests run instead of skipping), then the throughput and mixed-precision
# fine-tuning benchmark, which writes its RESULTS.md section. Run from the
# repository root with the project's environment (make install) active;
# extra arguments go to benchmarks/gpu_check.py, PYTEST_ADDOPTS to pytest
# (e.g. PYTEST_ADDOPTS="-n 8" with pytest-xdist on a many-core machine).
# The benchmark runs even when a test fails; the script then exits non-zero.
set -uo pipefail
cd "$(dirname "$0")/.."
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU'; print(torch.cuda.get_device_name(0))" || exit 1
python -m pytest -q -p no:cacheprovider -rfE -m "not slow" tests/feature_extraction tests/finetune
tests=$?
python benchmarks/gpu_check.py --repeats 3 --write-results "$@" || exit $?
exit $tests
