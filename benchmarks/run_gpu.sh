#!/usr/bin/env bash
# Every check that needs a CUDA GPU, in one run (for a machine lent for a few minutes):
#   1. the GPU tests: first the CUDA kernels on CuPy arrays (and their disk cache), then every
#      test parametrised over device="cuda" and the CuPy/MPI staging tests;
#   2. the GPU benchmarks, each against its reference in the same run (PyTorch CUDA, cuBLAS):
#      training throughput, conv2d, matmul, autograd overhead -- written to RESULTS.md;
#   3. the demo on the GPU.
# numba-cuda may not compile against a newer NumPy (see benchmarks/gpu_compat/sitecustomize.py):
# the tests and benchmarks run with that shim when it is needed, and the demo runs without it,
# as a user would, to show minidl's fallback to its CuPy path.
# Usage: bash benchmarks/run_gpu.sh OUTDIR   (logs, RESULTS.md and the plots land in OUTDIR)
set -u
cd "$(dirname "$0")/.."
OUT=${1:-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg PYTHONPATH=$PWD OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to OUT/NAME.log, print the tail
    local name=$1 limit=$2 start=$SECONDS rc
    shift 2
    echo "=== $name (limit ${limit} s): $*"
    timeout -k 5 "$limit" "$@" >>"$OUT/$name.log" 2>&1
    rc=$?
    echo "=== $name: exit $rc after $((SECONDS - start)) s"
    tail -n "${TAIL:-12}" "$OUT/$name.log"
}

{
    git log -1 --format='commit %H %s' 2>/dev/null
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    python3 - <<'PY'
import sys, numpy, cupy, numba, torch
print(sys.version.split()[0], "numpy", numpy.__version__, "cupy", cupy.__version__, "numba", numba.__version__,
      "torch", torch.__version__, "cuda", torch.cuda.is_available())
from numba import cuda
print("numba.cuda available:", cuda.is_available())
try:
    from mpi4py import MPI
    print("MPI:", MPI.Get_library_version().splitlines()[0])
except Exception as e:
    print("MPI: not usable:", e)
PY
    command -v mpirun || echo "mpirun: not found"
} >"$OUT/setup.log" 2>&1
cat "$OUT/setup.log"
PLAIN_PYTHONPATH=$PYTHONPATH
python3 -c "from minidl.kernels import registry; print('Numba CUDA path as minidl sees it:', registry.path_status('cuda'))" 2>&1 | tail -n 1
if ! python3 -c "import numpy; numpy.row_stack" 2>/dev/null; then
    echo "NumPy has no row_stack: tests and benchmarks run with benchmarks/gpu_compat on PYTHONPATH"
    export PYTHONPATH=$PWD/benchmarks/gpu_compat:$PYTHONPATH
fi

XDIST=$(python3 -c "import xdist" 2>/dev/null && echo "-n 6")
TIMEOUT=$(python3 -c "import pytest_timeout" 2>/dev/null && echo "--timeout 100")   # per test, when pytest-timeout is there
# The Numba CUDA kernels' own GPU tests first, on their own clock: the broad run below has not
# always finished inside its limit, and these are the ones only a GPU can check.
TAIL=30 step kernel-tests "${KERNEL_TEST_LIMIT:-120}" python3 -m pytest -q -p no:cacheprovider -m gpu -rs \
    $TIMEOUT tests/kernels
TAIL=30 step tests "${TEST_LIMIT:-110}" python3 -m pytest -q -p no:cacheprovider $XDIST -k "cuda or gpu" \
    $TIMEOUT --ignore tests/kernels tests
step bench 55 python3 benchmarks/bench_conv.py --device cuda
step bench 45 python3 benchmarks/bench_matmul.py --device cuda
step bench "${BENCH_LIMIT:-60}" python3 benchmarks/bench_training.py --device cuda
step bench 25 python3 benchmarks/bench_autograd.py --device cuda
export PYTHONPATH=$PLAIN_PYTHONPATH
step demo "${DEMO_LIMIT:-60}" python3 -m minidl demo --device cuda --no-progress --out "$OUT/demo"
cp benchmarks/RESULTS.md "$OUT/RESULTS.md"
tar czf "$OUT/plots.tgz" benchmarks/results/*cuda* "$OUT/demo" 2>/dev/null
rm -rf "$OUT/demo"
ls -la "$OUT"
