"""Install a saved network folder as the bundled weights (``astro_deblend/weights``).

    python benchmarks/install_weights.py FOLDER [--earlier-domain RECORD ...]

``FOLDER`` is what ``NeuralDeblender.save`` wrote (``config.json`` and ``model.weights.h5``), e.g. a
candidate chosen by ``bench_robustness.py select``. Networks fine-tuned before ``NeuralDeblender.fit`` kept
the domain of every stage recorded only the last stage's data ranges; ``--earlier-domain`` names the records
(``config.json`` or a bundled ``fracnet.json``) of the stages they were fine-tuned from, whose noise and flux
ranges are merged in (`astro_deblend.training.merge_domains`), as ``fit`` now does. The error models and the
validated pixel scales are not carried over: they were measured on other weights. Re-fit them afterwards with
``calibrate_errors.py --install``, ``calibrate_errors.py --views 1 --install``,
``calibrate_image_errors.py --install`` and ``bench_robustness.py stress --effects pixel_scale_arcsec`` then
``install-scales``.
"""

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from astro_deblend import NeuralDeblender
from astro_deblend.training import merge_domains

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "astro_deblend" / "weights"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", help="folder saved by NeuralDeblender.save")
    p.add_argument("--earlier-domain", action="append", default=[],
                   help="record (config.json or fracnet.json) of a stage the network was fine-tuned from")
    args = p.parse_args(argv)
    folder = Path(args.folder)
    try:
        deblender = NeuralDeblender.load(folder)  # checks the record and the weights' digest
    except (OSError, ValueError) as err:
        p.error(f"{folder} cannot be loaded as a saved network: {err}")
    record = json.loads((folder / "config.json").read_text())
    domain = record["provenance"]["domain"]
    for earlier in args.earlier_domain:
        domain = merge_domains(domain, json.loads(Path(earlier).read_text())["provenance"]["domain"])
    record["provenance"]["domain"] = domain
    if args.earlier_domain:
        record["provenance"].setdefault("notes", {})["domain_merged_from"] = args.earlier_domain
    for key in [k for k in record if k.startswith(("error_model", "image_error_model"))]:
        del record[key]
    deblender._provenance = record["provenance"]
    # the domain's digest is recomputed by save(): write through it, then move the files into place
    staging = WEIGHTS_DIR / ".install.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    deblender.save(staging)
    name = record["model"]
    for src, dst in (("model.weights.h5", f"{name}.weights.h5"), ("config.json", f"{name}.json")):
        os.replace(staging / src, WEIGHTS_DIR / dst)
    shutil.rmtree(staging)
    print(f"installed {folder} (weights {deblender.weights_digest()}) into {WEIGHTS_DIR}; domain {domain}")


if __name__ == "__main__":
    sys.exit(main())
