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
# its config, history and checkpoints (main_<config>.tgz, lofo_<group>.tgz); at most 8 files come back from a
# lent machine (each archive over 15 MB counts once per 15 MB part), so count them before adding configs.
#
# BUDGET_S (seconds, for the whole command; unset: no limit) sets every network's training time to what is
# left of it once the data are ready, less RESERVE_S (60 by default) for saving and packing, so that a call
# with a hard limit returns its networks; a blend2mask2flux config whose 'pretraining' has a time_limit
# gives its end-to-end stage what that leaves.
#
# Any configs that share their data sections train this way, not only the broad ones: the paper's
# networks of issue 15 too (benchmarks/configs/blend2mask2flux_paper_fluxauto_maps10.json says how). A
# network's weights larger than 14 MB (HALF_ABOVE, in bytes) are packed apart, halved to float16
# (benchmarks/half_weights.py) and cut into parts of 15 MB (main_<config>.weights16.h5.part-aa, -ab, ...):
# restore them here with `cat main_<config>.weights16.h5.part-* > half.weights.h5` and
# `python benchmarks/half_weights.py half.weights.h5 model.weights.h5 --full`. The archive holds the run
# folder with its checkpoints (last.keras and best.weights.h5, optimizer included) except files over 15 MB;
# one over 15 MB comes in parts (main_<config>.tgz.part-aa, ...: `cat main_<config>.tgz.part-* | tar xz`).
# Unpacked as a work folder it resumes with train_default.py on any machine, unless a stage's checkpoint
# was left out for its size (the paper-size networks'). KERAS_BACKEND (jax by
# default) may name another backend, to try the script on a CPU with tiny configs first.
set -euo pipefail
out=$1
shift
configs=("$@")
config=${configs[0]}
workers=${WORKERS:-16}
export PYTHONUNBUFFERED=1 KERAS_BACKEND=${KERAS_BACKEND:-jax} XLA_PYTHON_CLIENT_PREALLOCATE=false TF_CPP_MIN_LOG_LEVEL=3
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
python3 -c "import keras; b = keras.backend.backend(); print('keras', keras.__version__, b, __import__('jax').devices() if b == 'jax' else '')"
t0=$(date +%s)
python3 benchmarks/train_default.py "$config" --work "$work/prepare" --cache "$work/galaxies" \
    --workers "$workers" --materialize "$arrays" --prepare-only 2>&1 | tee "$logs/prepare.log"
echo "data ready after $(( $(date +%s) - t0 )) s"
left=
if [ -n "${BUDGET_S:-}" ]; then
    left=$(( BUDGET_S - ($(date +%s) - start) - ${RESERVE_S:-60} ))
    if [ "$left" -le 30 ]; then
        echo "no time left to train ($left s of BUDGET_S after the data): nothing trained"
        exit 0
    fi
    echo "training for at most $left s"
fi
# the --time-limit of one config (none without BUDGET_S): what is left, less its first stage's own
# time_limit (blend2mask2flux)
limit_of() {
    [ -n "$left" ] || return 0
    local first
    first=$(python3 -c "import json,sys; print(int(json.load(open(sys.argv[1])).get('pretraining', {}).get('time_limit') or 0))" "$1")
    echo "--time-limit $(( left - first > 30 ? left - first : 30 ))"
}
groups=$(python3 -c "import json,sys; print(' '.join(json.load(open(sys.argv[1])).get('lofo', {}).get('groups', {})))" "$config")
pids=()
for g in $groups; do
    python3 benchmarks/train_lofo.py "$config" --arrays "$arrays/train1" --group "$g" --out "$work/lofo/$g" $(limit_of "$config") \
        >"$logs/lofo_$g.log" 2>&1 &
    pids+=($!)
done
for c in "${configs[@]:1}"; do
    name=$(basename "$c" .json)
    python3 benchmarks/train_default.py "$c" --work "$work/$name" --cache "$work/galaxies" \
        --materialize "$arrays" $(limit_of "$c") >"$logs/train_$name.log" 2>&1 &
    pids+=($!)
done
name=$(basename "$config" .json)
python3 benchmarks/train_default.py "$config" --work "$work/$name" --cache "$work/galaxies" \
    --materialize "$arrays" $(limit_of "$config") 2>&1 | tee "$logs/train_$name.log" && main_status=0 || main_status=$?
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
echo "all done after $(( $(date +%s) - t0 )) s (main status $main_status, background status $status)"
for c in "${configs[@]}"; do
    name=$(basename "$c" .json)
    weights=$work/$name/final/model.weights.h5
    halved=
    if [ -f "$weights" ] && [ "$(stat -c %s "$weights")" -gt "${HALF_ABOVE:-14000000}" ] \
        && python3 benchmarks/half_weights.py "$weights" "$work/$name.weights16.h5" \
        && split -b 15000000 "$work/$name.weights16.h5" "$out/main_$name.weights16.h5.part-"; then
        halved=final/model.weights.h5
    fi
    # the run folder (checkpoints with their optimizer state included, so that the run resumes elsewhere),
    # less every file over 15 MB and the full weights once halved; cut into 15 MB parts if larger
    (cd "$work/$name" && find . -type f -size -15000001c ! -path "./$halved" | sort) > "$work/$name.files"
    tar czf "$work/$name.tgz" -C "$work/$name" -T "$work/$name.files" || true
    [ -f "$work/$name.tgz" ] || continue
    if [ "$(stat -c %s "$work/$name.tgz")" -gt 15000000 ]; then
        split -b 15000000 "$work/$name.tgz" "$out/main_$name.tgz.part-"
    else
        cp "$work/$name.tgz" "$out/main_$name.tgz"
    fi
done
for g in $groups; do
    tar czf "$out/lofo_$g.tgz" -C "$work/lofo/$g" final checkpoints/history.csv || true
done
tail -n 3 "$logs"/*.log
ls -la "$out"
