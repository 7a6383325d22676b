#!/usr/bin/env bash
# One prepared check of the CUDA path (issue #24), sized for 8 minutes of a lent GPU.
#
#   bash benchmarks/gpu_check.sh [--dry-run] [--out DIR]
#
# 1. Training: our loop (bf16 autocast, channels-last, fused AdamW, no per-step host sync)
#    against a plain fp32 loop on the same networks, at 16 and 32 px (benchmarks/train_speed.py),
#    then once with `precision=fp32` to see what bf16 alone gives.
# 2. NB201 proxy cells/s on the GPU (goal >= 200; 47 was measured on an H200 before), with 1 and
#    4 worker processes sharing the GPU, each building and scoring its own cells.
# 3. Dask routing: a scheduler with a CPU worker and a worker declaring GPU=1; tasks submitted
#    under `flows.runners.gpu_resources` for a CUDA device must all land on the GPU worker and
#    allocate GPU memory there.
#
# --dry-run runs every step end to end on the CPU with tiny sizes (a CI check of the script,
# not a measurement). Each step has its own time limit, so one slow step cannot eat the rest;
# the results (JSON and logs) go to --out (default: gpu_check_out/).
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=0
OUT=gpu_check_out
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) OUT="$2"; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$OUT"
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python
export PYTHONPATH=.
# the shared data (../shared/data beside the project, shared/data inside a copied tree, or $DATA)
DATA=${DATA:-$(for d in ../shared/data shared/data /work/shared/data; do [ -d "$d" ] && echo "$d" && break; done)}
[ -f "$DATA/cifar10/cifar10_5000.npz" ] || { echo "no shared data (cifar10/cifar10_5000.npz) under '$DATA'; set DATA=" >&2; exit 2; }
IMAGES=$DATA/cifar10/cifar10_5000.npz
BATCH_NPZ=$DATA/cifar10_train1000.npz
if [ "$DRY" = 1 ]; then
  DEVICE=cpu; SIZES=16; ARCHS=1; TRAIN_IMAGES=64; REPEATS=1; CELLS=2; PROCS="1 2"; SLOW=5  # a loaded 2-core CPU
else
  DEVICE=cuda; SIZES=16,32; ARCHS=3; TRAIN_IMAGES=3000; REPEATS=2; CELLS=400; PROCS="1 4"; SLOW=1
fi
# time limits in seconds, 450 in all on the GPU: 7.5 of the 8 minutes, the rest for start-up
FAILED=0
step() {  # step NAME SECONDS COMMAND...: runs with a time limit (times SLOW), logs, never stops the script
  local name=$1 limit=$(($2 * SLOW)); shift 2
  echo "== $name (limit ${limit}s)"
  local start=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
  local rc=${PIPESTATUS[0]}
  echo "== $name: exit $rc after $((SECONDS - start)) s"
  [ "$rc" = 0 ] || FAILED=1
}

step env 30 "$PY" -c "
import torch
print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-')
try:
    import mamba_ssm; print('mamba_ssm', mamba_ssm.__version__, '(the fused scan runs)')
except Exception as err:
    print('mamba_ssm not installed: the chunked PyTorch scan runs', type(err).__name__)
"

step train 150 "$PY" benchmarks/train_speed.py --images "$IMAGES" --device "$DEVICE" --sizes "$SIZES" --archs "$ARCHS" \
  --train-images "$TRAIN_IMAGES" --repeats "$REPEATS" --families "" --out "$OUT/train.json"
if [ "$DRY" = 0 ]; then
  step train_fp32 75 "$PY" benchmarks/train_speed.py --images "$IMAGES" --device "$DEVICE" --sizes 16 --archs "$ARCHS" \
    --train-images "$TRAIN_IMAGES" --repeats "$REPEATS" --families "" --option precision=fp32 --out "$OUT/train_fp32.json"
fi

# the cells script is a file: spawned workers re-import their parent's main module
cat > "$OUT/cells.py" <<'EOF'
"""NB201 cells scored per second on one device by 1..P processes, each on its own cells."""
import json, multiprocessing as mp, sys, time

def work(device, cells, proxies, queue, barrier, images):
    import numpy as np, torch
    from nas_lib.data.arrays import fixed_batch, load_npz_images
    from nas_lib.proxies import score_proxies
    from nas_lib.space import get_space
    torch.set_num_threads(1)
    space = get_space("nb201")
    x, y = fixed_batch(*load_npz_images(images), 64, 0)
    rng = np.random.default_rng(cells)
    specs = [space.sample(rng) for _ in range(cells + 2)]
    for spec in specs[:2]:  # warm-up: CUDA context, kernels, allocator
        score_proxies(space, spec, proxies, (x, y), 0, device)
    barrier.wait()
    start = time.perf_counter()
    failed = sum(any(not r.ok for r in score_proxies(space, s, proxies, (x, y), 0, device).values()) for s in specs[2:])
    queue.put((time.perf_counter() - start, failed))

if __name__ == "__main__":
    device, cells, out, images, procs = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], [int(p) for p in sys.argv[5:]]
    report = {}
    ctx = mp.get_context("spawn")
    for proxies in (["nwot"], ["az_nas"]):
        for p in procs:
            queue, barrier = ctx.Queue(), ctx.Barrier(p + 1)
            workers = [ctx.Process(target=work, args=(device, cells // p, proxies, queue, barrier, images)) for _ in range(p)]
            for w in workers:
                w.start()
            barrier.wait()
            results = [queue.get() for _ in workers]
            for w in workers:
                w.join()
            rate = sum((cells // p) / s for s, _ in results)
            report[f"{'+'.join(proxies)}_{p}proc"] = {"cells_per_s": rate, "failed": sum(f for _, f in results)}
            print(f"{'+'.join(proxies):<8} {p} process(es): {rate:7.1f} cells/s  (failed rows: {sum(f for _, f in results)}; goal >= 200)", flush=True)
    open(out, "w").write(json.dumps(report, indent=1))
EOF
step cells 120 "$PY" "$OUT/cells.py" "$DEVICE" "$CELLS" "$OUT/cells.json" "$BATCH_NPZ" $PROCS

step dask_routing 75 bash -c '
set -euo pipefail
D=$(mktemp -d)
trap "kill \$(jobs -p) 2>/dev/null; rm -rf $D" EXIT
DASK=$(dirname "'"$PY"'")/dask; [ -x "$DASK" ] || DASK=dask
"$DASK" scheduler --scheduler-file $D/s.json --port 0 --dashboard-address :0 >$D/s.log 2>&1 &
while [ ! -s $D/s.json ]; do sleep 0.5; done
CUDA_VISIBLE_DEVICES="" "$DASK" worker --scheduler-file $D/s.json --name cpu --nthreads 1 --no-dashboard >$D/cpu.log 2>&1 &
"$DASK" worker --scheduler-file $D/s.json --name gpu --nthreads 1 --resources GPU=1 --no-dashboard >$D/gpu.log 2>&1 &
"'"$PY"'" - $D/s.json "'"$DEVICE"'" "'"$OUT"'/dask.json" "'"$BATCH_NPZ"'" <<PYEOF
import json, sys
from distributed import Client, get_worker
from flows.runners import gpu_resources

def score(device, images):
    import torch
    from nas_lib.data.arrays import fixed_batch, load_npz_images
    from nas_lib.proxies import score_proxies
    from nas_lib.space import get_space
    space = get_space("nb201")
    x, y = fixed_batch(*load_npz_images(images), 64, 0)
    import numpy as np
    res = score_proxies(space, space.sample(np.random.default_rng(0)), ["nwot"], (x, y), 0, device)
    used = torch.cuda.max_memory_allocated() if device.startswith("cuda") else 0
    return get_worker().name, device, used, bool(res["nwot"].ok)

scheduler, device, out, images = sys.argv[1:5]
client = Client(scheduler_file=scheduler)
client.wait_for_workers(2, timeout=60)
with gpu_resources("dask", "cuda:0", 1.0):  # what the flows ask for a batch on a CUDA device
    futures = [client.submit(score, "cuda:0" if device == "cuda" else "cpu", images, pure=False) for _ in range(4)]
rows = [f.result(timeout=120) for f in futures]
print("tasks asked for GPU=1 ran on:", rows)
ok = {r[0] for r in rows} == {"gpu"} and all(r[3] for r in rows) and (device != "cuda" or all(r[2] > 0 for r in rows))
json.dump({"rows": rows, "routed_to_gpu_worker": ok}, open(out, "w"))
client.close()
sys.exit(0 if ok else 1)
PYEOF
'

echo "gpu_check: results in $OUT/ ($([ "$DRY" = 1 ] && echo 'dry run on CPU: not a measurement' || echo "device $DEVICE"))"
exit $FAILED
