"""Benchmark: the residual-sky check on noise correlated between pixels, with no source in the stamp.

Drizzled mosaics have noise correlated between neighbouring pixels. An outside probe found the sky check
(`astro_deblend.stamps.residual_sky`) reading such noise, zero-mean by construction, as a sky 0.3-0.5
sigma below zero. This script draws stamps of pure noise (white, Gaussian-smoothed white noise of kernel
0.5-1.0 px, and GalSim's HST ACS correlation function at 0.06 and 0.03 arcsec/px), each scaled to unit
rms, and reports for each kind: the correlation of neighbouring pixels, the median level that the check
reads (noise sigmas), the share of stamps flagged (level beyond ``MAX_RESIDUAL_BACKGROUND`` or tilt beyond
`sky_tilt_limit`), and the share caught with a pedestal of 0.4 sigma or a gradient of +-0.3 sigma from
edge to edge added. The noise sigma given to the check is the stamps' own estimate (as with
``noise_sigma=None``). Nothing is measured by a network.

Usage::

    python benchmarks/bench_sky_noise.py [--stamps 200] [--seed 2611]
"""

import argparse
import sys
from pathlib import Path

import galsim
import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_result  # noqa: E402

from astro_deblend.stamps import (  # noqa: E402
    MAX_RESIDUAL_BACKGROUND,
    estimate_noise_sigma,
    residual_sky,
    sky_tilt_limit,
)

SIZE = 128


def smoothed(rng, n, kernel):
    """White noise smoothed by a Gaussian of ``kernel`` px (0: white), unit rms."""
    pad = 8
    white = rng.normal(size=(n, SIZE + 2 * pad, SIZE + 2 * pad))
    noise = white if kernel == 0 else ndimage.gaussian_filter(white, (0, kernel, kernel), mode="wrap")
    noise = noise[:, pad:-pad, pad:-pad]
    return noise / noise.std()


def acs(seed, n, scale):
    """GalSim's HST ACS (COSMOS) noise correlation function drawn at ``scale`` arcsec/px, unit rms."""
    noise = galsim.getCOSMOSNoise(rng=galsim.BaseDeviate(seed))
    out = np.empty((n, SIZE, SIZE))
    for i in range(n):
        image = galsim.ImageD(SIZE, SIZE, scale=scale)
        image.addNoise(noise)
        out[i] = image.array
    return out / out.std()


def score(stack):
    stack = stack.astype(np.float32)
    sigma = estimate_noise_sigma(stack)
    limit = sky_tilt_limit(stack.shape)

    def flagged(s):
        level, tilt = residual_sky(s, sigma)
        return (np.abs(level) > MAX_RESIDUAL_BACKGROUND) | (tilt > limit), level

    flag, level = flagged(stack)
    ramp = np.linspace(-0.3, 0.3, SIZE, dtype=np.float32)[None, None, :] * sigma[:, None, None]
    return {"neighbour_correlation": float(np.mean(stack[:, :, :-1] * stack[:, :, 1:]) / np.mean(stack**2)),
            "median_level": float(np.median(level)),
            "flagged": float(flag.mean()),
            "pedestal_0.4_caught": float(flagged(stack + 0.4 * sigma[:, None, None])[0].mean()),
            "gradient_0.3_caught": float(flagged(stack + ramp)[0].mean())}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stamps", type=int, default=200, help="stamps per kind of noise [%(default)s]")
    p.add_argument("--seed", type=int, default=2611)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "sky_noise.json"))
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    kinds = {f"smoothed {k} px": smoothed(rng, args.stamps, k) for k in (0.0, 0.5, 0.8, 1.0)}
    for scale in (0.06, 0.03):
        kinds[f"ACS at {scale} arcsec/px"] = acs(args.seed + 1, args.stamps, scale)
    rows = {}
    print(f"{'noise':>24s} {'corr.':>6s} {'level':>7s} {'flagged':>8s} {'pedestal 0.4':>13s} "
          f"{'gradient 0.3':>13s}")
    for name, stack in kinds.items():
        row = rows[name] = score(stack)
        print(f"{name:>24s} {row['neighbour_correlation']:6.2f} {row['median_level']:+7.3f} "
              f"{100 * row['flagged']:7.1f}% {100 * row['pedestal_0.4_caught']:12.1f}% "
              f"{100 * row['gradient_0.3_caught']:12.1f}%", flush=True)
    path = write_result(args.out, {"command": " ".join(["python", *sys.argv]), "stamps": args.stamps,
                                   "seed": args.seed, "max_residual_background": MAX_RESIDUAL_BACKGROUND,
                                   "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
