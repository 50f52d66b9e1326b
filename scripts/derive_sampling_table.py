"""Derive the shipped (type, magnitude, radius) sampling table from the paper's catalogue.

The authors' per-blend catalogue (not shipped with astro_deblend) lists 1050 distinct CANDELS F160W galaxies
with their magnitude, Sersic semi-major axis (px) and morphological type. This script bins their
joint distribution coarsely (0.5 mag x 0.2 dex x type) and writes the bin counts as an ECSV table,
which the simulator samples from (uniformly inside a bin). Only counts per bin are shipped, never
the galaxies themselves.

Usage::

    python scripts/derive_sampling_table.py ../shared/anchors/paper_output_catalog.csv \
        astro_deblend/data/candels_f160w_sampling.ecsv
"""

import sys

import numpy as np
from astropy.table import Table

from astro_deblend.data.sampling import PAPER_TYPE_NAMES

MAG_EDGES = np.arange(18.0, 23.51, 0.5)
LOGR_EDGES = np.arange(-0.2, 1.81, 0.2)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        raise SystemExit("usage: derive_sampling_table.py PAPER_CATALOG_CSV OUTPUT_ECSV")
    cat = Table.read(argv[0], format="ascii.csv")
    galaxies = {}
    for prefix in ("g1", "g2"):
        for row in cat:
            galaxies[row[f"{prefix}_id"]] = (
                row[f"{prefix}_mag"], row[f"{prefix}_rad"], row[f"{prefix}_type"]
            )
    mag, rad, gtype = (np.array(v) for v in zip(*galaxies.values(), strict=True))
    rows = []
    for paper_type, our_type in PAPER_TYPE_NAMES.items():
        sel = gtype == paper_type
        counts, _, _ = np.histogram2d(mag[sel], np.log10(rad[sel]), bins=(MAG_EDGES, LOGR_EDGES))
        for i, j in zip(*np.nonzero(counts), strict=True):
            rows.append((our_type, MAG_EDGES[i], MAG_EDGES[i + 1], LOGR_EDGES[j], LOGR_EDGES[j + 1],
                         int(counts[i, j])))
    out = Table(rows=rows, names=("galtype", "mag_min", "mag_max", "log10_radius_min",
                                  "log10_radius_max", "count"))
    out.meta["comments"] = [
        "Joint binned distribution of (type, F160W AB magnitude, log10 Sersic semi-major axis in px)",
        f"of the {len(mag)} distinct galaxies of Boucaud et al. (2020)'s test catalogue.",
        "Derived by scripts/derive_sampling_table.py; counts only.",
    ]
    out.write(argv[1], format="ascii.ecsv", overwrite=True)
    print(f"{len(out)} non-empty bins from {len(mag)} galaxies -> {argv[1]}")


if __name__ == "__main__":
    main()
