#!/usr/bin/env bash
# Train the broad default weights and the leave-one-family-out networks in one run on a lent GPU machine.
#
#   bash benchmarks/gpu_train_broad.sh OUT CONFIG [CONFIG ...]
#
# The machine has JAX but no TensorFlow: Keras runs on the JAX backend (wheels for keras, astropy, photutils,
# sep and galsim carried in .whl/ and installed first when present; or, where the wheels are too large for
# the lent machine's transfer limit, those packages installed here for its Python, stripped and packed into
# .carry/site.tar.xz by benchmarks/pack_site.sh, which is unpacked instead). Steps: simulate and draw every blend
# once into /dev/shm ($WORKERS processes, 16 by default), then train the network of every CONFIG (they must
# share their data sections) and, at the same time on the same arrays, one network per family group of the
# first config's 'lofo' section. OUT receives logs.tgz and one archive per network: the saved deblender with
# its config and history (main_<config>.tgz, lofo_<group>.tgz); at most 8 files come back from a lent
# machine, so two configs and five groups is the most one run returns.
#
# BUDGET_S (seconds, for the whole command; unset: no limit) sets every network's training time to what is
# left of it once the data are ready, less RESERVE_S (60 by default) for saving and packing, so that a call
# with a hard limit returns its networks.
set -euo pipefail
out=$1
shift
configs=("$@")
config=${configs[0]}
workers=${WORKERS:-16}
export PYTHONUNBUFFERED=1 KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false TF_CPP_MIN_LOG_LEVEL=3
start=$(date +%s)
if [ -f .carry/site.tar.xz ]; then
    mkdir -p /tmp/site && tar xJf .carry/site.tar.xz -C /tmp/site
    export PYTHONPATH=/tmp/site:$PWD
elif compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
work=${WORK:-/tmp/astro_deblend_work}
arrays=${ARRAYS:-/dev/shm/astro_deblend_arrays}
logs=$work/logs
mkdir -p "$work" "$arrays" "$out" "$logs"
trap 'tar czf "$out/logs.tgz" -C "$logs" . 2>/dev/null || true' EXIT
python3 -c "import keras, jax; print('keras', keras.__version__, keras.backend.backend(), jax.devices())"
t0=$(date +%s)
python3 benchmarks/train_default.py "$config" --work "$work/prepare" --cache "$work/galaxies" \
    --workers "$workers" --materialize "$arrays" --prepare-only 2>&1 | tee "$logs/prepare.log"
echo "data ready after $(( $(date +%s) - t0 )) s"
limit=()
if [ -n "${BUDGET_S:-}" ]; then
    left=$(( BUDGET_S - ($(date +%s) - start) - ${RESERVE_S:-60} ))
    if [ "$left" -le 30 ]; then
        echo "no time left to train ($left s of BUDGET_S after the data): nothing trained"
        exit 0
    fi
    limit=(--time-limit "$left")
    echo "training for at most $left s"
fi
groups=$(python3 -c "import json,sys; print(' '.join(json.load(open(sys.argv[1])).get('lofo', {}).get('groups', {})))" "$config")
pids=()
for g in $groups; do
    python3 benchmarks/train_lofo.py "$config" --arrays "$arrays/train1" --group "$g" --out "$work/lofo/$g" "${limit[@]}" \
        >"$logs/lofo_$g.log" 2>&1 &
    pids+=($!)
done
for c in "${configs[@]:1}"; do
    name=$(basename "$c" .json)
    python3 benchmarks/train_default.py "$c" --work "$work/$name" --cache "$work/galaxies" \
        --materialize "$arrays" "${limit[@]}" >"$logs/train_$name.log" 2>&1 &
    pids+=($!)
done
name=$(basename "$config" .json)
python3 benchmarks/train_default.py "$config" --work "$work/$name" --cache "$work/galaxies" \
    --materialize "$arrays" "${limit[@]}" 2>&1 | tee "$logs/train_$name.log" && main_status=0 || main_status=$?
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
echo "all done after $(( $(date +%s) - t0 )) s (main status $main_status, background status $status)"
for c in "${configs[@]}"; do
    name=$(basename "$c" .json)
    tar czf "$out/main_$name.tgz" -C "$work/$name" final run_config.json train_wall_time.json \
        checkpoints/history.csv checkpoints/training_config.json || true
done
for g in $groups; do
    tar czf "$out/lofo_$g.tgz" -C "$work/lofo/$g" final checkpoints/history.csv || true
done
tail -n 3 "$logs"/*.log
ls -la "$out"
