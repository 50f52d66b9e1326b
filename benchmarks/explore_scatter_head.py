"""An experiment for the issue "Calibrated flux uncertainties": does a learned scatter head beat the linear
error model?

    python benchmarks/explore_scatter_head.py --work train_runs/robustness [--deep 0 4 16 64]

The installed error model (`astro_deblend.uncertainty.ErrorModel`) gives the deblending term of fracnet's
flux_err as ``F sqrt(c0**2 + sum_k (c_k x_k)**2)`` over five hand-made features. On the paper-like held-out
galaxies its errors are too large (std(z) about 0.8) and on the closest pairs and the bulges too small
(1.45-1.75): the fraction of error a blend carries differs between populations by more than the five
features see. The issue proposes a head that predicts the scatter from what the network sees. This script
tries the cheapest such head, without retraining fracnet: a small dense network on the leading principal
components (``--deep``: how many; 0, none) of the frozen network's deepest features (mean and maximum of
``enc4_conv2`` over the stamp, which sees the whole blend), the galaxy's role and the logarithms of the five
features, giving ``log s``; ``flux_err**2 = noise**2 + (F s)**2``, trained by the Student-t likelihood
(the installed model's ``nu``; flux_err its standard deviation) of ``F - F_true``.

Data: blends of the held-out samples of the calibration (paper-like seed 4, broad seed 12; no training saw
their galaxies), more of them than the calibration draws (``--n-paper``, ``--n-broad``). Split by galaxy as
the calibration: the head is fitted on blends whose two galaxies have indices % 4 == 0, blends of two
galaxies of index % 4 == 2 watch the fit (early stopping), and both models are checked on blends whose two
galaxies have odd indices. Prints std(z) and coverage by bin for the installed model and the head, and writes
JSON (``benchmarks/results/errors/scatter_head/``); the measurements are cached in ``--work``, so that
further heads cost seconds. Nothing is installed (BENCHMARKS.md section 7: no head did better).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import keras  # noqa: E402
from _results import write_result  # noqa: E402
from bench_robustness import PAPER_HELDOUT, _broad_heldout  # noqa: E402
from calibrate_errors import NEURAL_FEATURES, binned, measure  # noqa: E402
from train_default import load_blends  # noqa: E402

from astro_deblend import NeuralDeblender  # noqa: E402
from astro_deblend.models.normalization import scale_from_noise  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "errors" / "scatter_head"


def deep_features(deblender, blends, idx, batch=256):
    """(n_blends, 256): mean and maximum over the stamp of fracnet's deepest layer, one view."""
    model = deblender.keras_model
    deep = model.get_layer("enc4_conv2").output
    probe = keras.Model(model.inputs, [keras.ops.mean(deep, axis=(1, 2)), keras.ops.max(deep, axis=(1, 2))])
    sigma = blends.noise_sigma
    out = []
    for start in range(0, idx.size, batch):
        sel = idx[start:start + batch]
        stamps = np.asarray(blends.get(sel)["blend"], np.float32)
        s = np.full(len(sel), float(sigma)) if np.ndim(sigma) == 0 else np.asarray(sigma)[sel]
        mean, peak = probe.predict_on_batch({"blend": stamps, "scale": scale_from_noise(stamps, s)})
        out.append(np.concatenate([np.asarray(mean), np.asarray(peak)], axis=1))
    return np.concatenate(out)


def gather(deblender, blends, rows):
    """Per-galaxy measurements (calibrate_errors.measure) with the blend's deep features repeated per role."""
    m = measure(deblender, blends, rows)
    idx = np.flatnonzero(rows)
    deep = deep_features(deblender, blends, idx)
    m["deep"] = np.repeat(deep, 2, axis=0)
    m["role"] = np.tile([0.0, 1.0], idx.size)
    for key in ("index_central", "index_companion"):
        m[key] = np.repeat(np.asarray(blends.catalog[key])[idx], 2)
    return m


def head_inputs(m, basis=None, n_deep=16):
    """Standardised inputs of the head: the deep features' first ``n_deep`` principal components (none
    with 0), the logarithms of the five features and the role; ``basis`` from the fit sample."""
    hand = np.stack([np.log(np.maximum(np.nan_to_num(np.asarray(m[k], float), nan=0.0), 1e-6))
                     for k in NEURAL_FEATURES], axis=1)
    deep = np.asarray(m["deep"], np.float64)
    if basis is None:
        centre = deep.mean(axis=0)
        _, _, vt = np.linalg.svd(deep - centre, full_matrices=False)
        basis = {"centre": centre, "axes": vt[:n_deep]}
    x = np.concatenate([(deep - basis["centre"]) @ basis["axes"].T, hand, m["role"][:, None]], axis=1)
    if "mean" not in basis:
        basis["mean"], basis["std"] = x.mean(axis=0), x.std(axis=0) + 1e-6
    return ((x - basis["mean"]) / basis["std"]).astype(np.float32), basis


def student_t_loss(nu):
    """Negative log-likelihood (up to a constant) of F - F_true under a Student-t whose standard deviation
    is sqrt(noise**2 + (F s)**2), as the installed model's; y_true holds (F, F_true, noise), y_pred log s."""
    to_scale = float(np.sqrt((nu - 2) / nu))

    def loss(y_true, y_pred):
        flux, truth, noise = y_true[:, 0], y_true[:, 1], y_true[:, 2]
        s = keras.ops.exp(y_pred[:, 0])
        scale = keras.ops.sqrt(noise ** 2 + (flux * s) ** 2) * to_scale
        z = (flux - truth) / scale
        return keras.ops.mean(keras.ops.log(scale) + 0.5 * (nu + 1) * keras.ops.log1p(z ** 2 / nu))
    return loss


def fit_head(x, y, watch, nu, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((x.shape[1],))
    h = keras.layers.Dense(32, activation="relu", kernel_regularizer=keras.regularizers.l2(1e-3))(inputs)
    h = keras.layers.Dropout(0.2)(h)
    h = keras.layers.Dense(16, activation="relu", kernel_regularizer=keras.regularizers.l2(1e-3))(h)
    out = keras.layers.Dense(1, bias_initializer=keras.initializers.Constant(np.log(0.02)))(h)
    head = keras.Model(inputs, out)
    head.compile(optimizer=keras.optimizers.Adam(1e-3), loss=student_t_loss(nu))
    stop = keras.callbacks.EarlyStopping(patience=20, restore_best_weights=True)
    history = head.fit(x[~watch], y[~watch], validation_data=(x[watch], y[watch]), epochs=400,
                       batch_size=256, callbacks=[stop], verbose=0, shuffle=True)
    return head, {"epochs": len(history.history["loss"]),
                  "best_val_loss": float(min(history.history["val_loss"]))}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="train_runs/robustness")
    p.add_argument("--n-paper", type=int, default=6000, help="blends drawn of the paper-like sample")
    p.add_argument("--n-broad", type=int, default=8000, help="blends drawn of the broad sample")
    p.add_argument("--deep", type=int, nargs="+", default=[0, 4, 16, 64],
                   help="heads to fit, by the number of principal components of the deep features they see")
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    work = Path(args.work)
    deblender = NeuralDeblender()
    installed = deblender._error_models["error_model"]
    deblender.error_model = None
    paper = dict(PAPER_HELDOUT, blending=dict(PAPER_HELDOUT["blending"], n_test=args.n_paper))
    broad = _broad_heldout()
    broad["blending"] = dict(broad["blending"], n_test=args.n_broad)
    samples = {"paper_seed4": load_blends(paper, work, progress=False).subset("test"),
               "broad_seed12": load_blends(broad, work, progress=False).subset("test")}
    fit, check = {}, {}
    for name, blends in samples.items():
        cache = work / f"scatter_head_{name}_{len(blends)}_{deblender.weights_digest()}.npz"
        if cache.exists():  # the measurements of an earlier run of these blends and weights
            with np.load(cache) as f:
                fit[name] = {k[4:]: f[k] for k in f.files if k.startswith("fit_")}
                check[name] = {k[6:]: f[k] for k in f.files if k.startswith("check_")}
        else:
            ic, jc = (np.asarray(blends.catalog[k]) % 2 for k in ("index_central", "index_companion"))
            fit[name] = gather(deblender, blends, (ic == 0) & (jc == 0))
            check[name] = gather(deblender, blends, (ic == 1) & (jc == 1))
            np.savez(cache, **{f"fit_{k}": v for k, v in fit[name].items()},
                     **{f"check_{k}": v for k, v in check[name].items()})
        print(f"{name}: {fit[name]['flux'].size} galaxies to fit, {check[name]['flux'].size} to check "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    together = {k: np.concatenate([fit[n][k] for n in fit]) for k in fit["paper_seed4"]}
    # galaxy-disjoint halves of the fit sample: fit on blends of two galaxies of index % 4 == 0, watch
    # (early stopping) those of two of index % 4 == 2; the blends that mix them are left out
    quarter = np.stack([together["index_central"] % 4, together["index_companion"] % 4])
    train, watch = np.all(quarter == 0, axis=0), np.all(quarter == 2, axis=0)
    result = {"nu": installed.nu, "installed_model": installed.to_dict(), "heads": {},
              "weights_sha256_16": deblender.weights_digest(), "truth": "true flux"}
    for name, m in check.items():
        lin = installed.sigma(m["flux"], m["noise"], {k: m[k] for k in NEURAL_FEATURES})
        result[f"check_{name}_installed"] = binned(m, lin, installed, f"check {name}: installed linear model")
    for n_deep in args.deep:
        x, basis = head_inputs(together, n_deep=n_deep)
        y = np.stack([together["flux"], together["true"], together["noise"]], axis=1).astype(np.float32)
        usable = np.all(np.isfinite(x), axis=1) & np.all(np.isfinite(y), axis=1) & (y[:, 1] > 0)
        keep = usable & (train | watch)
        head, info = fit_head(x[keep], y[keep], watch[keep], installed.nu)
        info.update(n_fit=int((keep & train).sum()), n_watch=int((keep & watch).sum()))
        print(f"head with {n_deep} deep components fitted: {info}", flush=True)
        result["heads"][str(n_deep)] = info
        for name, m in check.items():
            xm, _ = head_inputs(m, basis)
            s = np.exp(np.asarray(head.predict_on_batch(np.nan_to_num(xm)))[:, 0].astype(np.float64))
            err = np.sqrt(m["noise"] ** 2 + (m["flux"] * s) ** 2)
            result[f"check_{name}_head{n_deep}"] = binned(
                m, err, installed, f"check {name}: scatter head, {n_deep} deep components")
    result["seconds"] = time.perf_counter() - t0
    write_result(Path(args.out) / "scatter_head.json", result)
    print(f"wrote {args.out} in {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
