"""Command-line interface: ``astro-deblend`` (also ``python -m astro_deblend``).

Sub-commands
------------
run
    The main job on the built-in default data: simulate a CANDELS-like test sample, make blends, measure them
    with every available method, evaluate as the paper and write an HTML report with its figures.
simulate
    Simulate a galaxy sample and make the paper's blend set (HDF5).
measure
    Measure the blends of a FITS stamp or cube, or every source of a FITS image (any size, any number of
    galaxies), and write a catalogue and segmentation maps.
"""

import argparse
import json
import os
import signal
import sys
import threading
import time

from .exceptions import AstroDeblendError, InputError

__all__ = ["main", "run_main"]

#: Methods that can measure a FITS file (astro_deblend.registry; the oracle needs the true profiles).
#: A 2-D FITS input larger than this on a side is measured as a whole image.
_IMAGE_SIDE = 256

_MEASURE_METHODS = ("fracnet", "neural", "blend2flux", "blend2mask2flux", "sep-auto", "sep-paper")


def _parser():
    p = argparse.ArgumentParser(prog="astro-deblend", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="simulate, blend, measure, evaluate and report (the main job)")
    r.add_argument("--output", default="astro_deblend_output", help="output folder [%(default)s]")
    r.add_argument("--n-galaxies", type=int, default=600,
                   help="galaxies simulated; half are test galaxies [%(default)s]")
    r.add_argument("--n-test", type=int, default=1000, help="test blends measured [%(default)s]")
    r.add_argument("--seed", type=int, default=2026, help="seed of the simulation [%(default)s]")
    r.add_argument("--overwrite", action="store_true", help="replace an existing report")
    r.add_argument("--quiet", action="store_true", help="no progress bars")

    s = sub.add_parser("simulate", help="simulate a galaxy sample and the paper's blends")
    s.add_argument("output", help="HDF5 file of the blend set (.h5 or .hdf5)")
    s.add_argument("--n-galaxies", type=int, default=2000,
                   help="galaxies simulated, split by galaxy into train and test [%(default)s]")
    s.add_argument("--n-train", type=int, default=25000, help="training blends [%(default)s]")
    s.add_argument("--n-test", type=int, default=5000, help="test blends [%(default)s]")
    s.add_argument("--depth", type=float, default=27.0, help="5-sigma point-source depth, AB [%(default)s]")
    s.add_argument("--seed", type=int, default=0, help="seed of the galaxies and the pairs [%(default)s]")
    s.add_argument("--overwrite", action="store_true", help="replace an existing blend set")
    s.add_argument("--quiet", action="store_true", help="no progress bars")

    m = sub.add_parser("measure", help="measure the blends of FITS stamps, or every source of a FITS image")
    m.add_argument("input", help="FITS file: a cube of stamps (N, ny, nx), a 2-D stamp, or a 2-D image (an "
                   f"image when larger than {_IMAGE_SIDE} px on a side, or with --image, --sources, "
                   "--weight, --rms or --tile-size)")
    m.add_argument("--image", action="store_true", help="measure a 2-D input as a whole image")
    m.add_argument("--stamp", action="store_true",
                   help=f"measure a 2-D input as one stamp (a pair, the central galaxy on its central pixel) "
                   f"even when it is larger than {_IMAGE_SIDE} px on a side")
    m.add_argument("--sources", default=None,
                   help="image: table of sources (.ecsv/.fits; x/y or sky positions) [detect with photutils]")
    m.add_argument("--weight", default=None,
                   help="image: FITS inverse-variance weight map, or a file with a WHT/WEIGHT/IVM extension "
                   "(drizzle's default WHT is exposure time, not inverse variance: drizzle with "
                   "final_wht_type='IVM', or give --noise-sigma) [estimate the noise]")
    m.add_argument("--rms", default=None,
                   help="image: FITS rms map, or a file with an ERR/RMS/SIGMA extension (a JWST product); "
                   "zero or NaN = no data [estimate the noise]")
    m.add_argument("--tile-size", type=int, default=None,
                   help="image: measure tile by tile in cores of this many pixels, the image memory-mapped "
                   "(mosaics larger than memory; no --segmentation); finished tiles are kept in "
                   "OUTPUT.parts/ until the catalogue is written, so the same command resumes an "
                   "interrupted run [whole image in memory]")
    m.add_argument("--output", required=True, help="catalogue to write (.fits or .ecsv)")
    m.add_argument("--segmentation", help="FITS file for the segmentation maps")
    m.add_argument("--method", choices=_MEASURE_METHODS, default="fracnet",
                   help="registered method ('neural' = fracnet) [%(default)s]")
    m.add_argument("--weights", default="default",
                   help="trained deblender folder [the bundled weights of the --method network]")
    m.add_argument("--hdu", default=None, help="HDU index or name [first with data]")
    m.add_argument("--zeropoint", type=float, default=None, help="AB zero point [from header]")
    m.add_argument("--noise-sigma", type=float, default=None, help="noise per pixel [from header/data]")
    m.add_argument("--magnitudes", action="store_true", help="require AB magnitudes (needs a zero point)")
    m.add_argument("--views", type=int, choices=(1, 4, 8), default=None,
                   help="networks: rotated/mirrored views of each stamp averaged [4]")
    m.add_argument("--overwrite", action="store_true")
    m.add_argument("--quiet", action="store_true")
    return p


def _say(msg):
    print(f"[astro-deblend] {msg}", flush=True)


def _cmd_simulate(args):
    import shutil

    from .data import BlendConfig, GalaxySample, SimulationConfig, make_blends, simulate_galaxies

    if not args.output.lower().endswith((".h5", ".hdf5")):
        raise InputError(f"the blend set is written as HDF5: give it a name ending in .h5 or .hdf5; got "
                         f"{args.output}")
    if os.path.exists(args.output) and not args.overwrite:
        raise FileExistsError(f"{args.output} exists; pass --overwrite to replace it, or choose another name")
    # every option is checked before minutes of simulation
    sim = SimulationConfig(n_galaxies=args.n_galaxies, depth_5sigma=args.depth, seed=args.seed)
    blending = BlendConfig(n_train=args.n_train, n_test=args.n_test, seed=args.seed)
    out_dir = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(out_dir, exist_ok=True)  # as `measure --output` and `run` make theirs (outside probe k)
    t0 = time.perf_counter()
    # the galaxy sample is an intermediate, kept beside the output until the blend set is written: the same
    # command resumes an interrupted simulation (simulate_galaxies checkpoints it, and refuses another
    # configuration's)
    parts = os.path.join(out_dir, f".{os.path.basename(args.output)}.parts")
    os.makedirs(parts, exist_ok=True)
    # (the depth to every digit: two depths that print alike are two samples)
    sample_name = f"galaxies_seed{args.seed}_n{args.n_galaxies}_depth{float(args.depth)!r}.h5"
    galaxies = os.path.join(parts, sample_name)
    for name in os.listdir(parts):  # what a run with other options left: not these galaxies
        if not name.startswith(os.path.basename(galaxies)):
            os.remove(os.path.join(parts, name))
    if os.path.exists(galaxies) and GalaxySample.read(galaxies).config.get("simulation") == sim.to_dict():
        sample = GalaxySample.read(galaxies)
    else:
        sample = simulate_galaxies(sim, path=galaxies, progress=not args.quiet)
    blends = make_blends(sample, blending, progress=not args.quiet)
    blends.write(args.output, overwrite=args.overwrite)
    shutil.rmtree(parts, ignore_errors=True)
    _say(f"{blends} written to {args.output} in {time.perf_counter() - t0:.0f} s")
    return 0


def _cmd_run(args):
    from .pipeline import RunConfig, run

    config = RunConfig(n_galaxies=args.n_galaxies, n_test=args.n_test, seed=args.seed)
    report = run(config, output_dir=args.output, overwrite=args.overwrite, progress=not args.quiet,
                 log=_say)
    _say(f"report: {report}")
    return 0


def _input_kind(args):
    """``(is_image, side)``: whether the input is measured as a whole image, and the largest side (px) of a
    2-D input measured as one stamp (None otherwise)."""
    image_options = {"--image": args.image, "--sources": args.sources is not None,
                     "--weight": args.weight is not None, "--rms": args.rms is not None,
                     "--tile-size": args.tile_size is not None}
    if args.stamp and any(image_options.values()):
        given = [name for name, on in image_options.items() if on]
        raise InputError(f"--stamp measures one stamp, and {', '.join(given)} belong(s) to whole images: "
                         "give one or the other")
    if any(image_options.values()):
        return True, None
    import warnings

    from .exceptions import AstroDeblendWarning
    from .fitsio import read_fits_stamps

    with warnings.catch_warnings():  # a peek at the shape: the measurement reads the file again and says it
        warnings.simplefilter("ignore", AstroDeblendWarning)
        stamps = read_fits_stamps(args.input, hdu=args.hdu)
    side = max(stamps.data.shape[1:])  # (ny, nx) or (1, ny, nx)
    if len(stamps.data) != 1:
        if args.stamp:
            _say(f"--stamp is for a 2-D input; {args.input} is a cube, whose {len(stamps.data)} planes are "
                 "measured as stamps with or without it")
        return False, None
    return side > _IMAGE_SIDE and not args.stamp, side


#: A one-stamp input larger than this (px: the networks' stamps, the paper's) that is not a centred pair is
#: likely an image: the command line says that --image measures its sources.
_HINT_SIDE = 128


def _cmd_measure(args):
    from .jobs import measure_fits, measure_image_fits

    is_image, side = _input_kind(args)
    if is_image:
        written = measure_image_fits(
            args.input, output=args.output, segmentation=args.segmentation, sources=args.sources,
            weight=args.weight, rms=args.rms, method=args.method, weights=args.weights, hdu=args.hdu,
            zeropoint=args.zeropoint, error=args.noise_sigma, magnitudes=args.magnitudes, views=args.views,
            tile_size=args.tile_size, overwrite=args.overwrite, progress=not args.quiet,
        )
        _say("wrote " + json.dumps(written))
        return 0
    try:
        written = measure_fits(
            args.input, output=args.output, segmentation=args.segmentation, method=args.method,
            weights=args.weights, hdu=args.hdu, zeropoint=args.zeropoint, noise_sigma=args.noise_sigma,
            magnitudes=args.magnitudes, views=args.views, overwrite=args.overwrite, progress=not args.quiet,
        )
    except InputError as exc:
        if "stamps; got" not in str(exc) or side is None:
            raise
        raise InputError(f"{exc}. If {args.input} is an image rather than one stamp, add --image to measure "
                         "every source in it") from None
    _say("wrote " + json.dumps(written))
    if side is not None and side > _HINT_SIDE:
        _hint_image(args, written)
    return 0


def _hint_image(args, written):
    """Say that --image measures the sources of a one-stamp input (larger than `_HINT_SIDE` px) whose central
    galaxy was not found or which is not a centred pair."""
    import numpy as np
    from astropy.table import Table

    from .flags import Flag

    table = Table.read(written["catalog"])
    if "flag" in table.colnames and np.any(np.asarray(table["flag"]) & (Flag.NOT_A_PAIR | Flag.NOT_DETECTED)):
        _say(f"{args.input} was measured as one stamp (a pair of galaxies, one on its central pixel), and "
             "its central galaxy was not found or the stamp is not such a pair (flags 1/16): if it is an "
             "image with sources anywhere, add --image")


#: The Python names that the package's messages use, and what they are on the command line.
_CLI_NAMES = {
    "noise_sigma": "--noise-sigma",
    "zeropoint": "--zeropoint",
    "pixel_scale": "a PIXSCALE keyword or a celestial WCS in the FITS header",
    "error=": "--noise-sigma, --weight or --rms",
    "error must": "--noise-sigma",
    "tile_size": "--tile-size",
    "measure_image": "--image",
    "measure()": "measure without --image",
    "wcs=": "a celestial WCS in the image's FITS header",
    "weights=": "--weights",
}


def _cli_names(message):
    """A note that translates the Python parameter names a message mentions into command-line terms."""
    found = list(dict.fromkeys(f"{name.split()[0].rstrip('=')} is {cli}" for name, cli in _CLI_NAMES.items()
                               if name in message and not (cli.startswith("--") and cli in message)))
    return f" (on the command line: {'; '.join(found)})" if found else ""


def main(argv=None):
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    args = _parser().parse_args(argv)
    # TensorFlow's start-up chatter on stderr hides the job's own messages (a user's setting wins).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    handler = {"run": _cmd_run, "simulate": _cmd_simulate, "measure": _cmd_measure}[args.command]
    previous = None
    if threading.current_thread() is threading.main_thread():
        # a batch scheduler's SIGTERM unwinds like Ctrl-C: temporary files are removed on the way out
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _run(handler, args)
    finally:  # main() called in a process that goes on (a notebook, a worker): its own handler back
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(handler, args):
    try:
        return handler(args)
    except (AstroDeblendError, ValueError, OSError) as exc:
        # the package's own errors, bad values and file problems are the user's to fix: one line, no traceback
        print(f"astro-deblend {args.command}: error: {exc}{_cli_names(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        kept = _kept_parts(args)
        if kept is not None:  # kept on purpose, so that the same command resumes
            print(f"astro-deblend {args.command}: interrupted; no output was written, and the finished parts "
                  f"are kept in {kept}: the same command resumes from them (remove that folder to start "
                  "over)", file=sys.stderr)
        else:
            print(f"astro-deblend {args.command}: interrupted; no partial output was left", file=sys.stderr)
        return 130


def _kept_parts(args):
    """The folder a long job keeps its finished parts in for a resume (None: none, or nothing kept)."""
    output = getattr(args, "output", None)
    if output is None:
        return None
    if args.command == "simulate":
        folder = os.path.join(os.path.dirname(os.path.abspath(output)), f".{os.path.basename(output)}.parts")
    elif args.command == "measure" and getattr(args, "tile_size", None) is not None:
        folder = f"{output}.parts"
    else:
        return None
    return folder if os.path.isdir(folder) else None


def _terminate(signum, frame):
    # once: a second SIGTERM while the first unwinds (timeout signals the whole group) would interrupt the
    # clean-up itself, with a traceback from the threads being joined
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def run_main():
    """Entry point of the ``astro-deblend`` script."""
    sys.exit(main())


if __name__ == "__main__":  # python -m astro_deblend.cli
    run_main()
