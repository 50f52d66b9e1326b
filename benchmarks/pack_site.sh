#!/usr/bin/env bash
# Pack the packages that a lent GPU machine lacks into .carry/site.tar.xz, for benchmarks/gpu_train_broad.sh.
#
#   bash benchmarks/pack_site.sh [PYTHON_VERSION]     # the lent machine's Python, 3.12 by default
#
# The machine has JAX, numpy, scipy, h5py, scikit-image and tqdm, but not keras, astropy, photutils, sep,
# galsim or dask, and it reaches no package index. Their wheels (about 75 MB, GalSim's 55 MB of them) exceed
# what one call may carry (64 MiB with the working tree), so they are installed here for the machine's
# Python into a folder, GalSim's library is stripped of its symbols and its LSST sensor and Roman data
# (unused here) are dropped, and the folder is packed: about 13 MB. The versions are this machine's own
# (pip list of the project's environment), so the networks train on the code that is tested here. Both
# .whl/ and .carry/ are ignored by git (.git/info/exclude); carry .carry in the call:
#
#   run(command="BUDGET_S=555 bash benchmarks/gpu_train_broad.sh $OUT CONFIG ...", carry=[".carry"])
set -euo pipefail
py=${1:-3.12}
packages=(keras namex optree astropy astropy-iers-data pyerfa photutils sep galsim lsstdesc.coord dask partd
          locket)
pins=()
for name in "${packages[@]}"; do
    version=$(python3 -m pip show "$name" 2>/dev/null | awk '/^Version:/ {print $2}')
    pins+=("$name${version:+==$version}")
done
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64)
rm -rf .whl .site
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$py" --implementation cp \
    "${platforms[@]}" -d .whl "${pins[@]}"
python3 -m pip install -q --no-index --no-deps --no-compile --target .site --python-version "$py" \
    --implementation cp --only-binary=:all: "${platforms[@]}" --platform any .whl/*.whl
find .site -name "*.so*" -size +1M -exec strip --strip-unneeded {} \;
rm -rf .site/galsim/share/sensors .site/galsim/share/roman
find .site -type d -name __pycache__ -prune -exec rm -rf {} +
mkdir -p .carry
tar cJf .carry/site.tar.xz -C .site .
for d in /.whl/ /.site/ /.carry/; do
    grep -qx "$d" .git/info/exclude 2>/dev/null || echo "$d" >> .git/info/exclude
done
ls -la .carry/site.tar.xz
