"""Synthetic data shared by the tests of the networks, the training and the deblender."""

import numpy as np

SIZE = 32


def two_gaussian_blends(n, *, size=SIZE, noise=0.05, seed=0, flux_range=(20, 100), width_range=(1.5, 3.0),
                        distance_range=(5, 9)):
    """Training data: blends, true fluxes in the stamp, true fractional maps and profiles ('isolated')."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(float)
    c = size // 2
    flux = rng.uniform(*flux_range, (n, 2))
    width = rng.uniform(*width_range, (n, 2))[..., None, None]
    angle, dist = rng.uniform(0, 2 * np.pi, n), rng.uniform(*distance_range, n)
    cx = np.column_stack([np.full(n, c), c + dist * np.cos(angle)])[..., None, None]
    cy = np.column_stack([np.full(n, c), c + dist * np.sin(angle)])[..., None, None]
    iso = flux[..., None, None] * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * width**2))
    iso /= 2 * np.pi * width**2  # (n, 2, size, size)
    total = iso.sum(axis=1)
    return {
        "blend": (total + noise * rng.normal(size=total.shape)).astype(np.float32),
        "flux": iso.sum(axis=(2, 3)),
        "fractions": (iso / np.maximum(total, 1e-300)[:, None]).astype(np.float32),
        "isolated": iso,
    }


def set_fracnet_shares(model, *, logits, distance_slope=(0.0, 0.0, 0.0)):
    """Give a fracnet known shares: softmax(logits + distance_slope * r) in a pixel at `CentreDistance` r.

    Every weight is set to zero except the bias of ``logits_low`` (the constant ``logits``) and the
    central tap of ``logits_edges`` on the distance channel (``distance_slope``), so the shares of a pixel
    can be computed by hand from its distance to the central pixel, r = hypot(y - S/2, x - S/2) / (S/2).
    """
    for layer in model.layers:
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    low_kernel, _ = model.get_layer("logits_low").get_weights()
    model.get_layer("logits_low").set_weights([low_kernel, np.asarray(logits, np.float32)])
    edge_kernel, edge_bias = model.get_layer("logits_edges").get_weights()
    edge_kernel[1, 1, 1, :] = distance_slope  # input channels: stretch, distance, then the 3 logits
    model.get_layer("logits_edges").set_weights([edge_kernel, edge_bias])
    return model
