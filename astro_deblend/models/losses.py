"""Training losses: pure functions of tensors plus thin `keras.losses.Loss` wrappers.

- Fluxes: mean absolute percentage error (MAPE, in per cent), the loss of Boucaud et al. (2020).
  It is relative, so bright and faint galaxies weigh the same, and it is what the paper reports.
- Fluxes, alternatively: the mean absolute log ratio ``100 |ln(pred / true)|``, also in per cent
  for small errors. Unlike MAPE it costs the same to halve or to double a flux, so it does not
  let the network under-estimate hard cases (MAPE never costs more than 100 % for any
  under-estimate); it is ``100 |dmag| / 1.086``, the quantity behind sigma(dmag) and the outliers.
- Maps: binary cross-entropy between the predicted fractional maps and the true fractions (soft
  targets in [0, 1]) or binary masks.
- Both together (blend2mask2flux end to end, fracnet): ``MAPE + 0.1 * BCE`` as in the paper.
  In `astro_deblend.training.train` this sum is made by Keras from the two wrappers and the loss
  weights of `~astro_deblend.training.TrainingConfig`; `combined_loss` is the same number as a
  function.

All functions accept any backend tensor or NumPy array and return one value per sample, shape (N,).
"""

from keras import losses, ops, saving

__all__ = [
    "mape",
    "log_ratio",
    "binary_cross_entropy",
    "combined_loss",
    "MAPELoss",
    "LogRatioLoss",
    "MapBCELoss",
]


def mape(flux_true, flux_pred, *, eps=1e-7):
    """Mean absolute percentage error of the fluxes, per sample.

    Parameters
    ----------
    flux_true, flux_pred : tensor, shape (N, 2)
        True and predicted fluxes (central, companion), same units.
    eps : float, optional
        Floor on ``|flux_true|`` to avoid a division by zero [default: 1e-7, in image units].

    Returns
    -------
    loss : tensor, shape (N,)
        ``100 * mean_i |pred_i - true_i| / |true_i|``, in per cent.
    """
    flux_true = ops.cast(flux_true, flux_pred.dtype)
    rel = ops.abs(flux_pred - flux_true) / ops.maximum(ops.abs(flux_true), eps)
    return 100.0 * _mean_over_sources(rel, flux_true)


def log_ratio(flux_true, flux_pred, *, floor=1e-3):
    """Mean absolute log ratio of predicted to true fluxes, per sample, in per cent.

    Parameters
    ----------
    flux_true, flux_pred : tensor, shape (N, 2)
        True and predicted fluxes (central, companion), same units; true fluxes <= 0 (no such source in
        the stamp) are left out of the mean.
    floor : float, optional
        Predictions are floored at ``floor * flux_true`` before the logarithm, so a zero or
        negative prediction costs ``100 |ln(floor)|`` (691 %) and keeps a finite gradient-free
        value [default: 1e-3].

    Returns
    -------
    loss : tensor, shape (N,)
        ``100 * mean_i |ln(pred_i / true_i)|``, equal to the MAPE to first order.
    """
    flux_true = ops.cast(flux_true, flux_pred.dtype)
    present = flux_true > 0
    ratio = ops.maximum(flux_pred / ops.where(present, flux_true, 1.0), floor)
    return 100.0 * _mean_over_sources(ops.abs(ops.log(ratio)), flux_true)


def _mean_over_sources(values, flux_true):
    """Mean over the fluxes of each sample whose true value is positive (all of them in a pair; a view of a
    lone galaxy has no companion light, a view of a spurious detection no central one: their flux terms are
    left out, the maps teach those shares)."""
    present = ops.cast(flux_true > 0, values.dtype)
    values = ops.where(flux_true > 0, values, 0.0)
    return ops.sum(values * present, axis=-1) / ops.maximum(ops.sum(present, axis=-1), 1.0)


def binary_cross_entropy(maps_true, maps_pred, *, eps=1e-7):
    """Pixel-averaged binary cross-entropy of fractional maps, per sample.

    Parameters
    ----------
    maps_true : tensor, shape (N, 2, ny, nx)
        Target share of each pixel for each galaxy, in [0, 1] (fractions or binary masks).
    maps_pred : tensor, shape (N, 2, ny, nx)
        Predicted share, in [0, 1].
    eps : float, optional
        Predictions are clipped to [eps, 1 - eps] [default: 1e-7].

    Returns
    -------
    loss : tensor, shape (N,)
        Mean over maps and pixels of ``-(t log p + (1 - t) log(1 - p))``, in nats.
    """
    maps_true = ops.cast(maps_true, maps_pred.dtype)
    p = ops.clip(maps_pred, eps, 1.0 - eps)
    bce = -(maps_true * ops.log(p) + (1.0 - maps_true) * ops.log(1.0 - p))
    return ops.mean(ops.reshape(bce, (ops.shape(bce)[0], -1)), axis=-1)


def combined_loss(flux_true, flux_pred, maps_true, maps_pred, *, map_weight=0.1):
    """Flux MAPE plus ``map_weight`` times the map cross-entropy, per sample.

    Parameters
    ----------
    flux_true, flux_pred : tensor, shape (N, 2)
        Fluxes, same units.
    maps_true, maps_pred : tensor, shape (N, 2, ny, nx)
        Fractional maps in [0, 1].
    map_weight : float, optional
        Weight of the map term [default: 0.1, the value used by Boucaud et al. 2020].

    Returns
    -------
    loss : tensor, shape (N,)
    """
    return mape(flux_true, flux_pred) + map_weight * binary_cross_entropy(maps_true, maps_pred)


@saving.register_keras_serializable(package="astro_deblend")
class MAPELoss(losses.Loss):
    """`mape` as a Keras loss (batch mean of the per-sample values)."""

    def __init__(self, name="mape", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return mape(y_true, y_pred)


@saving.register_keras_serializable(package="astro_deblend")
class LogRatioLoss(losses.Loss):
    """`log_ratio` as a Keras loss (batch mean of the per-sample values)."""

    def __init__(self, name="log_ratio", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return log_ratio(y_true, y_pred)


@saving.register_keras_serializable(package="astro_deblend")
class MapBCELoss(losses.Loss):
    """`binary_cross_entropy` of fractional maps as a Keras loss."""

    def __init__(self, name="map_bce", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return binary_cross_entropy(y_true, y_pred)
