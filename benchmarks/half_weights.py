"""Store a Keras ``.weights.h5`` file in float16, or restore such a file to float32.

A lent GPU machine returns at most 16 MB per file and 64 MB per call, less than blend2mask2flux's 17.8M
parameters take in float32 (71 MB): ``benchmarks/gpu_train_broad.sh`` halves such weights before packing
them, and this command restores them here::

    python benchmarks/half_weights.py model.weights.h5 half.weights.h5            # float32 -> float16
    python benchmarks/half_weights.py half.weights.h5 model.weights.h5 --full     # float16 -> float32

Every float32 (float16 with ``--full``) dataset is cast; groups, attributes and other datasets are copied
as they are. Halving rounds each weight to 11 significant bits: a network restored from it is *not* the
trained network to the bit, so measure the restored weights (their digest differs) and say so.
"""

import argparse
import os
from pathlib import Path

import h5py
import numpy as np


def convert(source, target, *, full=False):
    """Copy the HDF5 file ``source`` to ``target`` with its float datasets cast (see the module)."""
    cast_from, cast_to = (np.float16, np.float32) if full else (np.float32, np.float16)
    target = Path(target)
    tmp = target.with_name(target.name + ".partial")
    try:
        with h5py.File(source, "r") as src, h5py.File(tmp, "w") as dst:
            dst.attrs.update(src.attrs)

            def copy(name, obj):
                if isinstance(obj, h5py.Group):
                    dst.require_group(name).attrs.update(obj.attrs)
                    return
                data = obj[()]
                if isinstance(data, np.ndarray) and data.dtype == cast_from:
                    cast = data.astype(cast_to)
                    if not np.isfinite(cast).all() and np.isfinite(data).all():
                        raise ValueError(f"{name}: weights beyond float16's range (|w| > 65504): keep "
                                         "float32")
                    data = cast
                out = dst.create_dataset(name, data=data)
                out.attrs.update(obj.attrs)

            src.visititems(copy)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", help="the .weights.h5 file to read")
    p.add_argument("target", help="the file to write (written under a temporary name, then renamed)")
    p.add_argument("--full", action="store_true", help="restore float16 weights to float32")
    args = p.parse_args(argv)
    convert(args.source, args.target, full=args.full)
    print(f"wrote {args.target} ({Path(args.target).stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
