"""How every network of astro_deblend sees an image and returns fluxes.

All networks share one convention, implemented once in this module:

Input
    The network receives the blend **in its original flux units** (e.g. electron/s), shape
    (N, ny, nx), together with a per-stamp ``scale`` of shape (N, 1) in the same units. The scale
    is the noise standard deviation of the stamp: the ``noise_sigma`` given by the user, or else a
    robust estimate from the stamp itself (`estimate_noise_sigma`: median absolute deviation,
    iteratively clipped at 3 sigma so that galaxy pixels do not inflate it). It is floored at
    ``1e-3`` times the brightest absolute pixel value so that a noiseless stamp still gets a finite
    scale (`stamp_scale`).
    Inside the network the first layer, `AsinhStretch`, computes ``asinh(blend / scale)``: linear
    within the noise, logarithmic for bright galaxy cores, so that faint and bright blends give
    inputs of the same order (a galaxy peak at 1000 sigma becomes 7.6).

Output
    Fluxes always come out in the units of the input image, so that multiplying the image (and its
    noise) by a constant multiplies the fluxes by the same constant:

    - the direct-regression networks (blend2flux, blend2mask2flux) predict for each galaxy a
      positive share ``softplus(z)`` of a reference total ``T`` measured in the stamp
      (`ShareOfTotal`); ``T`` is the sum of all pixels of the blend (an unbiased estimate of the
      flux in the stamp for background-subtracted data), floored at ``sqrt(ny * nx) * scale`` (the
      1-sigma noise of that sum) so that it stays positive on empty stamps (`StampTotal`). Shares
      are not forced to add up to one: flux outside the stamp and noise are left for the network
      to learn;
    - fracnet assigns every pixel to the central galaxy, the companion or neither with weights that
      add up to one and returns ``sum(weight * blend)`` (`FluxFromMaps`): flux is conserved by
      construction and no output scaling is needed.

Signal
    A pixel "carries signal" when the 3x3 mean of the blend around it exceeds 1 scale (the noise
    of a 3x3 mean is a third of the noise sigma, so this is a 3-sigma detection of the local
    mean; `signal_mask`). The map targets of training are the true fractions on those pixels
    and 0 elsewhere, and `~astro_deblend.neural_deblender.NeuralDeblender` labels only those
    pixels in its segmentation images: far from both galaxies the true fractions of smooth profiles are
    ratios of vanishing numbers that no network can (or should) learn from the noisy blend.

Because the scale is estimated from the stamp with an estimator that is proportional to the image
(``scale(c * image) = c * scale(image)``), a network that is given no ``noise_sigma`` returns fluxes
exactly proportional to the image brightness, up to float32 rounding.
"""

import numpy as np
from keras import layers, ops, saving

from ..stamps import estimate_noise_sigma, per_stamp, signal_mask  # signal_mask: keras-free, re-exported

__all__ = [
    "NORMALIZATION",
    "estimate_noise_sigma",
    "stamp_scale",
    "scale_from_noise",
    "signal_mask",
    "AsinhStretch",
    "StampTotal",
    "ShareOfTotal",
    "FluxFromMaps",
]

#: Name and constants of the normalisation, stored with every saved model so that a model is never
#: fed data prepared differently from its training data.
NORMALIZATION = {
    "name": "asinh-noise-v1",
    "input": "asinh(blend / scale)",
    "scale": "noise_sigma if given, else 3-sigma-clipped MAD of the stamp (3 iterations)",
    "scale_floor_fraction_of_peak": 1e-3,
    "flux_regression": "softplus(z) * max(sum(blend), sqrt(ny * nx) * scale)",
    "flux_fracnet": "sum over pixels of weight * blend",
    "signal": "3x3 mean of the blend above 1 scale (noise sigma)",
}

_FLOOR_FRACTION = NORMALIZATION["scale_floor_fraction_of_peak"]
# Smallest scale, for an all-zero stamp: avoids a division by zero. The smallest normal float32, so that
# images in small physical units (erg/s/cm2/Hz, ~1e-30) keep their own noise scale.
_TINY = float(np.finfo(np.float32).tiny)


def stamp_scale(stack, noise_sigma=None):
    """Per-stamp scale that the networks divide the blend by.

    Parameters
    ----------
    stack : array-like, shape (N, ny, nx)
        Stamps, in image units.
    noise_sigma : float or array-like of shape (N,), optional
        Known noise standard deviation per pixel, in image units. If None (default) it is estimated
        from each stamp with `estimate_noise_sigma`.

    Returns
    -------
    scale : `numpy.ndarray`, shape (N, 1), float32
        ``max(noise_sigma, 1e-3 * max|stamp|)``, in image units.

    Raises
    ------
    ValueError
        If ``noise_sigma`` is not positive and finite or does not have one value per stamp.
    """
    x = np.asarray(stack, dtype=np.float64)
    sigma = per_stamp(noise_sigma, x.shape[0], "noise_sigma")
    return scale_from_noise(x, estimate_noise_sigma(x) if sigma is None else sigma)


def scale_from_noise(stack, sigma):
    """`stamp_scale` of stamps whose noise (given or estimated, >= 0) is known: the floors applied.

    Parameters
    ----------
    stack : array-like, shape (N, ny, nx)
    sigma : array-like, shape (N,)

    Returns
    -------
    scale : `numpy.ndarray`, shape (N, 1), float32
    """
    x = np.asarray(stack, dtype=np.float64)
    n = x.shape[0]
    peak = np.abs(x).reshape(n, -1).max(axis=1)
    scale = np.maximum(np.maximum(np.asarray(sigma, dtype=np.float64), _FLOOR_FRACTION * peak), _TINY)
    return scale.astype(np.float32)[:, np.newaxis]


def _per_stamp(scale):
    # (N, 1) -> (N, 1, 1) so that it broadcasts against (N, ny, nx)
    return ops.reshape(scale, (-1, 1, 1))


@saving.register_keras_serializable(package="astro_deblend")
class AsinhStretch(layers.Layer):
    """``asinh(blend / scale)``: the input every network actually sees.

    Call on ``[blend, scale]`` with blend (N, ny, nx) and scale (N, 1) in the same units;
    returns (N, ny, nx, 1), dimensionless.
    """

    def call(self, inputs):
        blend, scale = inputs
        x = ops.arcsinh(blend / _per_stamp(scale))  # (N, ny, nx)
        return ops.expand_dims(x, axis=-1)  # (N, ny, nx, 1)


@saving.register_keras_serializable(package="astro_deblend")
class StampTotal(layers.Layer):
    """Reference total flux of a stamp, ``max(sum(blend), sqrt(ny * nx) * scale)``.

    Call on ``[blend, scale]``; returns (N, 1) in image units.
    """

    def call(self, inputs):
        blend, scale = inputs
        n_pix = float(blend.shape[1] * blend.shape[2])
        total = ops.sum(blend, axis=(1, 2))[:, None]  # (N, 1)
        return ops.maximum(total, np.sqrt(n_pix) * scale)


@saving.register_keras_serializable(package="astro_deblend")
class ShareOfTotal(layers.Layer):
    """Fluxes as positive shares of the stamp total: ``softplus(z + b0) * total``.

    The constant ``b0 = log(e^0.5 - 1)`` makes an untrained network (z near 0) start from half the
    total for each galaxy.

    Call on ``[z, total]`` with z (N, 2) unconstrained and total (N, 1); returns (N, 2) fluxes in
    image units.
    """

    def call(self, inputs):
        z, total = inputs
        return ops.softplus(z + np.log(np.expm1(0.5))) * total


@saving.register_keras_serializable(package="astro_deblend")
class FluxFromMaps(layers.Layer):
    """Flux of each galaxy as ``sum over pixels of weight * blend``.

    Call on ``[weights, blend]`` with weights (N, ny, nx, 2) and blend (N, ny, nx); returns (N, 2)
    in image units.
    """

    def call(self, inputs):
        weights, blend = inputs
        return ops.sum(weights * ops.expand_dims(blend, axis=-1), axis=(1, 2))  # (N, 2)
