"""Benchmark: a mosaic larger than the tiles, measured tile by tile on Dask, with its peak memory (issue 14).

Two steps, each in its own process so that the memory of one does not count against the other:

``make``
    Writes a simulated CANDELS-like mosaic (float32 FITS, 0.06"/px, depth 27, galaxies of the held-out
    paper-like sample of seed 4, 15 per arcmin2, 30 % placed next to another) row block by row block with
    `astropy.io.fits.StreamingHDU`, so that the mosaic is never in memory, and its truth catalogue (ECSV).
``measure``
    ``NeuralDeblender().measure_image(path, tile_size=..., error=...)``: the FITS file is memory-mapped, each
    Dask task reads one core and its margin, detects the sources with photutils and measures them. Prints
    the wall time, the peak resident memory of the process (``ru_maxrss``), the number of sources, and how
    many true galaxies were found and measured within 3 px, with their MAPE (truth: true flux in the image).

Usage::

    python benchmarks/bench_mosaic.py --size 20000              # make, then measure in a fresh process
    python benchmarks/bench_mosaic.py --size 8192 --workers 1   # one thread, to compare with two
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import write_result  # noqa: E402

PAPER_HELDOUT = {"n_galaxies": 1000, "depth_5sigma": 27.0, "seed": 4}


def make(args):
    from astropy.io import fits
    from astropy.table import Table
    from train_default import load_sample

    sample = load_sample(PAPER_HELDOUT, Path(args.cache), progress=False)
    rng = np.random.default_rng([args.seed, 77])
    n_side, scale = args.size, sample.pixel_scale
    area = (n_side * scale / 60.0) ** 2
    n = int(rng.poisson(args.density * area))
    index = rng.integers(len(sample), size=n)
    radius = np.asarray(sample.catalog["radius"], float)[index]
    x, y = rng.uniform(0, n_side, n), rng.uniform(0, n_side, n)
    for i in np.nonzero(rng.random(n) < 0.3)[0]:  # neighbours, as astro_deblend.data.scenes does
        j = int(rng.integers(n))
        if j != i:
            d = rng.uniform(0.5, 3.0) * max(radius[i], radius[j])
            a = rng.uniform(0, 2 * np.pi)
            x[i] = np.clip(x[j] + d * np.cos(a), 0, n_side - 1)
            y[i] = np.clip(y[j] + d * np.sin(a), 0, n_side - 1)
    ix, iy = np.floor(x).astype(int), np.floor(y).astype(int)
    stamps = sample.noiseless
    half = stamps.shape[1] // 2
    header = fits.Header()
    header.update(SIMPLE=True, BITPIX=-32, NAXIS=2, NAXIS1=n_side, NAXIS2=n_side, MAGZERO=sample.zeropoint,
                  PIXSCALE=scale, BUNIT="electron/s", NOISE=sample.noise_sigma)
    out = Path(args.mosaic)
    tmp = out.with_suffix(".partial.fits")
    stream = fits.StreamingHDU(tmp, header)
    flux = np.zeros(n)
    block = 1024
    for y0 in range(0, n_side, block):
        y1 = min(n_side, y0 + block)
        rows = rng.normal(0.0, sample.noise_sigma, (y1 - y0, n_side))
        for k in np.nonzero((iy + half > y0) & (iy - half < y1))[0]:
            sy = slice(max(y0, iy[k] - half), min(y1, iy[k] + half, n_side))
            sx = slice(max(0, ix[k] - half), min(n_side, ix[k] + half))
            part = stamps[index[k]][sy.start - iy[k] + half:sy.stop - iy[k] + half,
                                    sx.start - ix[k] + half:sx.stop - ix[k] + half]
            rows[sy.start - y0:sy.stop - y0, sx] += part
            flux[k] += float(part.sum(dtype=np.float64))
        stream.write(rows.astype(">f4"))
    stream.close()
    tmp.replace(out)
    cat = sample.catalog
    x_off = np.asarray(cat["x_offset"], float)[index] if "x_offset" in cat.colnames else 0
    y_off = np.asarray(cat["y_offset"], float)[index] if "y_offset" in cat.colnames else 0
    Table({"id": np.arange(1, n + 1), "x": ix + x_off, "y": iy + y_off, "flux": flux}).write(
        out.with_suffix(".truth.ecsv"), overwrite=True)
    print(f"wrote {out} ({n_side}x{n_side}, {n} galaxies)")


def measure(args):
    import dask
    from astropy.io import fits
    from astropy.table import Table
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial import cKDTree

    from astro_deblend import NeuralDeblender

    header = fits.getheader(args.mosaic)
    t0 = time.perf_counter()
    deblender = NeuralDeblender()
    with dask.config.set(num_workers=args.workers):
        table, _ = deblender.measure_image(args.mosaic, error=float(header["NOISE"]),
                                                   tile_size=args.tile, progress=False)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # GiB (Linux: KiB)
    truth = Table.read(Path(args.mosaic).with_suffix(".truth.ecsv"))
    tree = cKDTree(np.column_stack([table["x"], table["y"]]))
    pairs = tree.query_ball_point(np.column_stack([truth["x"], truth["y"]]), r=3.0)
    rows = [i for i, p in enumerate(pairs) for _ in p]
    cols = [j for p in pairs for j in p]
    d = np.hypot(np.asarray(truth["x"])[rows] - np.asarray(table["x"])[cols],
                 np.asarray(truth["y"])[rows] - np.asarray(table["y"])[cols])
    cost = np.full((len(truth), len(table)), 1e9)
    if rows:
        cost[rows, cols] = d
    r, c = linear_sum_assignment(cost) if rows else (np.zeros(0, int), np.zeros(0, int))
    ok = cost[r, c] < 1e9
    r, c = r[ok], c[ok]
    est = np.asarray(table["flux"].filled(np.nan))[c]
    true = np.asarray(truth["flux"])[r]
    mape = float(100 * np.nanmean(np.abs(est - true) / true))
    result = {"mosaic": args.mosaic, "size": header["NAXIS1"], "tile_size": args.tile,
              "workers": args.workers, "weights_sha256": deblender.weights_digest(),
              "seconds": seconds, "peak_rss_gib": peak, "n_sources": len(table), "n_true": len(truth),
              "matched": int(r.size), "mape_matched": mape, "truth": "true flux of each galaxy in the image"}
    print(json.dumps(result, indent=1))
    write_result(args.out, {"command": " ".join(sys.argv), **result})


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("step", nargs="?", choices=("make", "measure", "both"), default="both")
    p.add_argument("--size", type=int, default=20000, help="side of the mosaic in pixels [%(default)s]")
    p.add_argument("--tile", type=int, default=2048, help="side of the cores [%(default)s]")
    p.add_argument("--workers", type=int, default=2, help="Dask threads [%(default)s]")
    p.add_argument("--density", type=float, default=15.0, help="galaxies per arcmin2 [%(default)s]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", default="train_runs/robustness", help="galaxy samples [%(default)s]")
    p.add_argument("--mosaic", default=None, help="FITS path [train_runs/mosaic_<size>.fits]")
    p.add_argument("--out", default=None, help="JSON [benchmarks/results/mosaic_<size>.json]")
    args = p.parse_args(argv)
    args.mosaic = args.mosaic or f"train_runs/mosaic_{args.size}.fits"
    args.out = args.out or f"benchmarks/results/mosaic_{args.size}_w{args.workers}.json"
    if args.step in ("make", "both") and not Path(args.mosaic).exists():
        make(args)
    if args.step == "measure":
        measure(args)
    elif args.step == "both":  # a fresh process: its peak memory is the measurement's alone
        cmd = [sys.executable, __file__, "measure", "--size", str(args.size), "--tile", str(args.tile),
               "--workers", str(args.workers), "--mosaic", args.mosaic, "--out", args.out]
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
