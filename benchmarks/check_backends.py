"""Check: a network trained on the JAX backend (the GPU machine's) loads and predicts the same on TensorFlow.

Trains a tiny fracnet for a few steps with ``KERAS_BACKEND=jax`` in a child process, saves it with
`NeuralDeblender.save` and its predictions on fixed stamps, then loads the folder under TensorFlow (this
process) and compares. Needs ``jax`` installed (``pip install jax``); prints a table and writes JSON.

Usage::

    python benchmarks/check_backends.py [--out benchmarks/results/check_backends.json]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, numpy as np, keras
from astro_deblend import NeuralDeblender
from astro_deblend.models import FracNetConfig
from astro_deblend.training import TrainingConfig
from astro_deblend.data import BlendConfig, SimulationConfig, make_blends, simulate_galaxies
out = sys.argv[1]
sample = simulate_galaxies(SimulationConfig(n_galaxies=40, stamp_size=64, seed=9), progress=False)
blends = make_blends(sample, BlendConfig(n_train=96, n_test=8, seed=9), progress=False)
d = NeuralDeblender(FracNetConfig(stamp_size=64, filters=(8, 16, 32)), weights=None)
d.fit(blends.subset("train"), config=TrainingConfig(epochs=2, batch_size=16, verbose=0),
      output_dir=out + "/run")
d.save(out + "/saved")
test = blends.subset("test").get(slice(None))["blend"]
np.save(out + "/test.npy", test)
table, _ = d.measure(test, noise_sigma=blends.noise_sigma, progress=False)
np.save(out + "/flux_jax.npy", np.asarray(table["flux"]))
print(json.dumps({"backend": keras.backend.backend(), "noise_sigma": blends.noise_sigma}))
"""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "check_backends.json"))
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, KERAS_BACKEND="jax")
        res = subprocess.run([sys.executable, "-c", CHILD, tmp], env=env, capture_output=True, text=True)
        if res.returncode:
            raise SystemExit(f"JAX child failed:\n{res.stderr[-3000:]}")
        child = json.loads(res.stdout.strip().splitlines()[-1])

        import keras
        import numpy as np

        from astro_deblend import NeuralDeblender

        loaded = NeuralDeblender.load(Path(tmp) / "saved")
        table, _ = loaded.measure(np.load(Path(tmp) / "test.npy"), noise_sigma=child["noise_sigma"],
                                  progress=False)
        f_tf = np.asarray(table["flux"])
        f_jax = np.load(Path(tmp) / "flux_jax.npy")
    rel = float(np.max(np.abs(f_tf - f_jax) / np.abs(f_jax)))
    result = {"trained_on": child["backend"], "loaded_on": keras.backend.backend(),
              "n_fluxes": int(f_tf.size), "max_relative_difference": rel, "pass": rel < 1e-4}
    print(f"{'trained on':>12s} {'loaded on':>12s} {'fluxes':>7s} {'max rel. diff.':>15s}")
    print(f"{result['trained_on']:>12s} {result['loaded_on']:>12s} {result['n_fluxes']:7d} {rel:15.2e}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    Path(args.out + ".tmp").write_text(json.dumps(result, indent=2))
    os.replace(args.out + ".tmp", args.out)
    if not result["pass"]:
        raise SystemExit("predictions differ between backends")


if __name__ == "__main__":
    main()
