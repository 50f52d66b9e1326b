"""Benchmark: time and peak memory to simulate the galaxy sample and make the paper's blend set.

Each measurement runs in a fresh process so that peak memory (ru_maxrss) belongs to it alone.

Usage::

    python benchmarks/bench_data.py [--n-galaxies 2000] [--sizes 30000 100000 300000] [--json out.json]

Prints a table and writes JSON (default benchmarks/results/bench_data.json).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import write_result  # noqa: E402

CHILD = r"""
import json, os, resource, sys, time
from astro_deblend.data import BlendConfig, GalaxySample, SimulationConfig, make_blends, simulate_galaxies
task, arg, n_gal, tmp = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
t0 = time.perf_counter()
lib = os.path.join(tmp, "galaxies.h5")
if task == "simulate":
    simulate_galaxies(SimulationConfig(n_galaxies=n_gal, seed=0), path=lib, progress=False)
    out = {}
else:
    sample = GalaxySample.read(lib)
    t1 = time.perf_counter()
    n_test = arg // 6
    blends = make_blends(sample, BlendConfig(n_train=arg - n_test, n_test=n_test, seed=0), progress=False)
    t2 = time.perf_counter()
    path = os.path.join(tmp, f"blends_{arg}.h5")
    blends.write(path, materialize=(task == "materialize"), progress=False)
    t3 = time.perf_counter()
    out = {"read_library_s": t1 - t0, "make_blends_s": t2 - t1, "write_s": t3 - t2,
           "file_MiB": os.path.getsize(path) / 2**20}
    os.remove(path)
out["total_s"] = time.perf_counter() - t0
out["peak_rss_MiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def _child(task, arg, n_gal, tmp):
    res = subprocess.run([sys.executable, "-c", CHILD, task, str(arg), str(n_gal), tmp],
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-galaxies", type=int, default=2000)
    p.add_argument("--sizes", type=int, nargs="+", default=[30000, 100000, 300000])
    p.add_argument("--materialize", type=int, nargs="*", default=[30000],
                   help="sizes also written with every blend image and fractional map")
    p.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results",
                                                  "bench_data.json"))
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sim = _child("simulate", 0, args.n_galaxies, tmp)
        rows.append({"step": f"simulate {args.n_galaxies} galaxies", **sim})
        for n in args.sizes:
            rows.append({"step": f"make {n} blends (lazy set)", **_child("lazy", n, args.n_galaxies, tmp)})
        for n in args.materialize:
            rows.append({"step": f"make + write {n} blend images",
                         **_child("materialize", n, args.n_galaxies, tmp)})
    print(f"{'step':40s} {'time (s)':>9s} {'peak RSS (MiB)':>15s} {'file (MiB)':>11s}")
    for r in rows:
        print(f"{r['step']:40s} {r['total_s']:9.1f} {r['peak_rss_MiB']:15.0f} "
              f"{r.get('file_MiB', float('nan')):11.0f}")
    lazy = [r["total_s"] for r in rows if "30000 blends (lazy" in r["step"]]
    default = rows[0]["total_s"] + lazy[0] if lazy else None  # the paper's 30 000 blends, if measured
    if default is not None:
        print(f"default data set (simulate + 30000 lazy blends): {default:.1f} s")
    write_result(args.json, {"rows": rows, "default_total_s": default})


if __name__ == "__main__":
    main()
