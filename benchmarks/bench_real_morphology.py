"""Benchmark: real HST galaxy morphologies, cut from the Hubble eXtreme Deep Field picture in scikit-image.

scikit-image (installed with photutils) ships NASA's public-domain colour picture of the Hubble eXtreme
Deep Field (``skimage.data.hubble_deep_field``, 1000 x 872 px, JPEG). Its galaxies are real: spirals,
ellipticals, edge-on discs, clumpy and irregular galaxies, mergers, none of them drawn by a simulator.
This script cuts them out and redraws them as the package's COSMOS path redraws real galaxies:

1. The picture is turned back into light: its sRGB encoding is undone (the standard sRGB transfer
   function) and the three colours are summed (white light). The astronomers' own display stretch,
   applied before the encoding, is unknown and is not undone, so the profiles are real in shape but not
   exactly in concentration.
2. photutils finds the galaxies (background-subtracted, Gaussian kernel of 2 px FWHM, 3 sigma, 20 px,
   deblended) and keeps those of at least ``--min-area`` px and S/N 50 that no saturated pixel touches
   and that lie 10 px or more from the picture's edge.
3. Each is cut out on a 97 x 97 px stamp centred on its centroid; the pixels outside its own segment
   (grown by 1 px) are set to zero: its neighbours are cut away and its wings are cut at the detection
   isophote, as the paper's cleaning of CANDELS cut them.
4. The stamps are written as a GalSim ``RealGalaxyCatalog`` (pixel scale declared 0.06 arcsec/px, the
   picture's own PSF, 2.3 px FWHM as measured on its most compact sources, declared as a Gaussian), and
   read back with `astro_deblend.data.cosmos.read_real_galaxies`: the declared PSF is removed, magnitudes
   are drawn from the package's sampling table by rank, each galaxy is convolved with the default
   F160W-like PSF (0.18 arcsec), drawn at 0.06 arcsec/px and given noise for depth 27 AB.
5. `astro_deblend.data.make_blends` pairs them with the paper's rules, the companion within
   ``--max-distance`` px (16: the galaxies are about 4 times smaller than those of the package's paper-like
   sample, median half-light radius 2.0 against 9 px, and the paper's 64 px would make nearly every pair a
   wide one). All but two of the galaxies go to the test split (make_blends keeps two for training);
   nothing trains on them.

Sizes in pixels are those of the picture (about 0.14 arcsec/px on the sky, so the galaxies are drawn about
2.3 times smaller in angle than they are). The JPEG's compression and noise stay in the templates, and
about a quarter of the kept sources are parts of a larger galaxy or group that photutils' deblending split
off, with a straight edge where it cut.

Every method is called as a user would (``noise_sigma=None``, zero point 25.94); truth: the true flux of
each galaxy in the stamp. Galaxies sep does not detect count as 100 % errors and outliers (|dmag| > 0.75);
"flag 0" excludes sep's bit 2 (HOT_PASS, how it detected). ``coverage`` is the share of flag-0 galaxies
whose true flux lies within 1 and 2 ``flux_err`` of the measured one.

Usage::

    python benchmarks/bench_real_morphology.py [--blends 1000] [--neural default --neural DIR ...]
"""

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from astropy.convolution import Gaussian2DKernel, convolve
from astropy.io import fits
from astropy.utils import minversion
from photutils.background import Background2D, MedianBackground
from photutils.segmentation import SourceCatalog, deblend_sources, detect_sources
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_result  # noqa: E402
from bench_independent import scores  # noqa: E402

from astro_deblend import NeuralDeblender, SepDeblender  # noqa: E402
from astro_deblend.data import BlendConfig, SimulationConfig, make_blends  # noqa: E402
from astro_deblend.data.cosmos import read_real_galaxies  # noqa: E402
from astro_deblend.flags import Flag  # noqa: E402

DR_BINS = (0.5, 1.0, 2.0, 4.0, 8.0)
CUTOUT = 97  # px, side of each galaxy's template stamp: odd, so that its centre is a pixel's centre, where
# GalSim's RealGalaxy puts the galaxy's centre (an even side put it half a pixel off: outside review)
DECLARED_SCALE = 0.06  # arcsec/px declared for the picture's pixels
PICTURE_PSF_FWHM = 2.3  # px, median FWHM of the 20 most compact unsaturated sources (photutils `fwhm`)
EDGE = 10  # px: galaxies closer to the picture's edge are left out
SIZE_CLASSES = ((0, 80, "small (segment < 80 px)"), (80, 150, "medium (80-150 px)"),
                (150, np.inf, "large (>= 150 px)"))


def white_light():
    """The XDF picture as light: sRGB decoded, three colours summed; and its saturated pixels."""
    from skimage import data

    rgb = data.hubble_deep_field().astype(np.float64) / 255
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return linear.sum(axis=-1), (rgb >= 250 / 255).any(axis=-1)


def select_galaxies(image, saturated, *, min_area):
    """Detect the picture's sources with photutils; return the kept ones' templates and a summary Table."""
    background = Background2D(image, 64, filter_size=3, bkg_estimator=MedianBackground())
    data = image - background.background
    rms = float(np.median(background.background_rms))
    convolved = convolve(data, Gaussian2DKernel(2.0 / 2.355, x_size=7))
    segments = detect_sources(convolved, 3 * background.background_rms, npixels=20)
    quiet = {} if minversion("photutils", "3.1") else {"progress_bar": False}  # 3.1 shows none, deprecates it
    segments = deblend_sources(convolved, segments, npixels=20, n_levels=32, contrast=0.005, **quiet)
    table = SourceCatalog(data, segments, convolved_data=convolved).to_table(
        columns=["label", "x_centroid", "y_centroid", "area", "segment_flux", "bbox_xmin", "bbox_xmax",
                 "bbox_ymin", "bbox_ymax"])
    area = np.asarray(table["area"].value, float)
    table["snr"] = np.asarray(table["segment_flux"], float) / (rms * np.sqrt(area))
    touched = np.unique(segments.data[saturated])
    ny, nx = image.shape
    half = CUTOUT // 2
    keep = ((area >= min_area) & (table["snr"] >= 50) & ~np.isin(table["label"], touched)
            & (table["bbox_xmin"] >= EDGE) & (table["bbox_ymin"] >= EDGE)
            & (table["bbox_xmax"] < nx - EDGE) & (table["bbox_ymax"] < ny - EDGE))
    candidates = table[keep]
    templates, kept, touching = [], [], []
    for k, row in enumerate(candidates):
        cx, cy = int(round(row["x_centroid"])), int(round(row["y_centroid"]))
        x0, y0 = cx - half, cy - half
        if (row["bbox_xmin"] < x0 or row["bbox_ymin"] < y0 or row["bbox_xmax"] >= x0 + CUTOUT
                or row["bbox_ymax"] >= y0 + CUTOUT):
            continue  # larger than a template stamp
        own = ndimage.binary_dilation(segments.data == row["label"], iterations=1)
        touching.append(bool(np.any((segments.data[own] != row["label"]) & (segments.data[own] > 0))))
        own &= (segments.data == 0) | (segments.data == row["label"])  # never a neighbour's pixel
        stamp = np.zeros((CUTOUT, CUTOUT))
        ys, xs = slice(max(y0, 0), min(y0 + CUTOUT, ny)), slice(max(x0, 0), min(x0 + CUTOUT, nx))
        cut = np.where(own[ys, xs], data[ys, xs], 0.0)
        stamp[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0] = cut
        templates.append(stamp.astype(np.float32))
        kept.append(k)
    selected = candidates[kept]
    # sources whose segment borders another's: parts of a galaxy or group split off by the deblending,
    # or galaxies touching a neighbour, cut with a straight edge where the segments meet
    selected["touches_another"] = np.asarray(touching, bool)
    return templates, selected, rms


def write_catalog(folder, templates, rms):
    """Write the templates as a GalSim RealGalaxyCatalog in ``folder``; return the catalogue's file name."""
    psf = np.exp(-0.5 * (np.hypot(*np.mgrid[-15:16, -15:16]) / (PICTURE_PSF_FWHM / 2.355)) ** 2)
    fits.HDUList([fits.PrimaryHDU(templates[0])] + [fits.ImageHDU(t) for t in templates[1:]]).writeto(
        Path(folder) / "xdf_images.fits")
    fits.PrimaryHDU((psf / psf.sum()).astype(np.float32)).writeto(Path(folder) / "xdf_psf.fits")
    n = len(templates)
    flux = np.array([t.sum() for t in templates])
    columns = [
        fits.Column("IDENT", "J", array=np.arange(n)),
        fits.Column("MAG", "D", array=25.0 - 2.5 * np.log10(flux)),  # only the order matters
        fits.Column("BAND", "5A", array=["white"] * n),
        fits.Column("WEIGHT", "D", array=np.ones(n)),
        fits.Column("GAL_FILENAME", "20A", array=["xdf_images.fits"] * n),
        fits.Column("PSF_FILENAME", "20A", array=["xdf_psf.fits"] * n),
        fits.Column("GAL_HDU", "J", array=np.arange(n)),
        fits.Column("PSF_HDU", "J", array=np.zeros(n, int)),
        fits.Column("PIXEL_SCALE", "D", array=np.full(n, DECLARED_SCALE)),
        fits.Column("NOISE_MEAN", "D", array=np.zeros(n)),
        fits.Column("NOISE_VARIANCE", "D", array=np.full(n, rms**2)),
        fits.Column("STAMP_FLUX", "D", array=flux),
    ]
    name = "xdf_real_galaxy_catalog.fits"
    fits.BinTableHDU.from_columns(columns).writeto(Path(folder) / name)
    return name


def gallery(sample, blends, path, n=24, crop=48):
    """Redrawn galaxies (top rows) and blends (bottom rows), their central ``crop`` px, as a PNG."""
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt
    from astropy.visualization import AsinhStretch, ImageNormalize, PercentileInterval

    order = np.argsort(-np.asarray(sample.catalog["radius"]))[: n // 2]
    images = [sample.noiseless[i] for i in order] + list(blends.get(np.arange(n // 2))["blend"])
    size = images[0].shape[0]
    window = slice((size - crop) // 2, (size + crop) // 2)
    images = [image[window, window] for image in images]
    fig, axes = plt.subplots(4, n // 4, figsize=(2 * n // 4, 8))
    for ax, image in zip(axes.ravel(), images, strict=True):
        ax.imshow(image, origin="lower", cmap="gray_r",
                  norm=ImageNormalize(image, PercentileInterval(99.8), stretch=AsinhStretch(0.05)))
        ax.set_axis_off()
    fig.suptitle(f"XDF galaxies redrawn F160W-like, central {crop} x {crop} px "
                 f"(top: the {n // 2} largest, noiseless; bottom: {n // 2} blends)")
    fig.tight_layout()
    fig.savefig(path, dpi=60)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--blends", type=int, default=1000, help="blends to measure [%(default)s]")
    p.add_argument("--min-area", type=int, default=40, help="smallest segment kept, picture px [%(default)s]")
    p.add_argument("--max-distance", type=float, default=16.0,
                   help="largest centre-to-centre distance, px [%(default)s: the galaxies are about 4 times "
                        "smaller than the paper-like sample's, so pairs span d/R as the paper's do]")
    p.add_argument("--seed", type=int, default=20261128)
    p.add_argument("--neural", action="append", default=None,
                   help="'default' (bundled) or a saved deblender folder; repeatable [default]")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "robustness"))
    args = p.parse_args(argv)
    out = Path(args.out)
    t0 = time.perf_counter()
    image, saturated = white_light()
    templates, kept, rms = select_galaxies(image, saturated, min_area=args.min_area)
    print(f"{len(templates)} galaxies kept from the XDF picture (background rms {rms:.4f})", flush=True)
    config = SimulationConfig(seed=args.seed % 2**31)
    with tempfile.TemporaryDirectory() as folder:
        name = write_catalog(folder, templates, rms)
        sample = read_real_galaxies(name, directory=folder, config=config, progress=False)
    size_class = np.empty(len(kept), object)
    for lo, hi, label in SIZE_CLASSES:
        size_class[(kept["area"].value >= lo) & (kept["area"].value < hi)] = label
    pairing = BlendConfig(n_train=0, n_test=args.blends, test_fraction=1 - 2 / len(sample),
                          max_distance=args.max_distance, seed=args.seed)
    blends = make_blends(sample, pairing, progress=False).subset("test")
    cat = blends.catalog
    stamps = blends.get(np.arange(len(blends)))["blend"]
    truth = np.stack([cat["flux_central"], cat["flux_companion"]], axis=1).astype(float)
    d_over_r = np.asarray(cat["distance_over_r"], float)
    family = np.stack([size_class[np.asarray(cat["index_central"])],
                       size_class[np.asarray(cat["index_companion"])]], axis=1).astype(str)
    out.mkdir(parents=True, exist_ok=True)
    stem = "real_morphology" if args.min_area == 40 else f"real_morphology_area{args.min_area}"
    gallery(sample, blends, out / f"{stem}_gallery.png")
    radius = np.asarray(sample.catalog["radius"], float)
    result = {"command": " ".join(["python", *sys.argv]), "truth": "true flux of each galaxy in the stamp",
              "source": "skimage.data.hubble_deep_field (NASA, public domain), sRGB decoded, white light",
              "n_galaxies": len(sample), "n_blends": len(blends),
              "n_touching_another_segment": int(np.sum(kept["touches_another"])),
              "noise_sigma_per_pixel": float(sample.noise_sigma),
              "radius_px_quartiles": np.percentile(radius, [25, 50, 75]).tolist(),
              "mag_range": [float(np.min(sample.catalog["mag"])), float(np.max(sample.catalog["mag"]))],
              "prepare_seconds": time.perf_counter() - t0, "methods": {}}
    methods = {}
    for spec in args.neural or ["default"]:
        network = NeuralDeblender() if spec == "default" else NeuralDeblender.load(spec)
        methods[f"fracnet {network.weights_digest()[:16]}"] = (network, 0)
    methods["sep-auto"] = (SepDeblender(mode="auto"), int(Flag.HOT_PASS))
    quartiles = np.round(result["radius_px_quartiles"], 1)
    print(f"{len(sample)} galaxies, {len(blends)} blends, radius quartiles {quartiles} px")
    print(f"{'method':>26s} {'MAPE %':>7s} {'median':>7s} {'outl. %':>7s} {'flagged %':>9s} "
          f"{'MAPE flag 0':>11s} {'outl. flag 0':>12s} {'cov68 f0':>8s} {'cov95 f0':>8s}")
    for label, (deblender, ignore) in methods.items():
        t1 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table, _ = deblender.measure(stamps, zeropoint=sample.zeropoint, progress=False)
        seconds = time.perf_counter() - t1
        flux = np.asarray(getattr(table["flux"], "value", table["flux"]), float).reshape(-1, 2)
        err = np.ma.filled(np.ma.asarray(getattr(table["flux_err"], "value", table["flux_err"]),
                                         float), np.nan).reshape(-1, 2)
        flag = np.asarray(table["flag"]).reshape(-1, 2)
        s = scores(flux, flag, truth, d_over_r, family, ignore)
        clean = ((flag & ~ignore) == 0) & np.isfinite(err) & (err > 0)
        z = np.abs(flux - truth)[clean] / err[clean]
        s["coverage_flag0"] = {"68": float(np.mean(z <= 1)), "95": float(np.mean(z <= 2))} if z.size else None
        # the real-morphology set put companions 0.5-4 R away: the same range here, every galaxy
        close = (d_over_r >= 0.5) & (d_over_r < 4)
        measured = np.isfinite(flux) & (flux > 0)
        ape = np.where(measured, 100 * np.abs(flux - truth) / truth, 100.0)
        s["mape_0.5_to_4_r"] = float(ape[close].mean()) if close.any() else None
        s["seconds"] = seconds
        result["methods"][label] = s
        cov = s["coverage_flag0"] or {"68": np.nan, "95": np.nan}
        print(f"{label:>26s} {s['mape']:7.2f} {s['median_ape']:7.2f} {100 * s['outliers']:7.2f} "
              f"{100 * s['flagged']:9.1f} {s['mape_flag0'] or float('nan'):11.2f} {s['outliers_flag0']:12d} "
              f"{100 * cov['68']:8.1f} {100 * cov['95']:8.1f}", flush=True)
        print(f"{'':>26s}   companions 0.5-4 R ({int(close.sum())} blends): MAPE {s['mape_0.5_to_4_r']:.2f}")
        for row in s["by_d_over_r"]:
            lo, hi = row["d_over_r"]
            print(f"{'':>26s}   d/R {lo:g}-{hi:g}: {row['n_blends']:4d} blends, "
                  f"MAPE {row['mape']:6.2f}, flag 0 {row['mape_flag0'] or float('nan'):6.2f}, "
                  f"flagged {100 * row['flagged']:5.1f} %")
    write_result(out / f"{stem}.json", result)
    print(f"wrote {out / stem}.json and {stem}_gallery.png "
          f"in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
