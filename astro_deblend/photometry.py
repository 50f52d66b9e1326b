"""SExtractor's FLUX_AUTO (Kron photometry) with sep, shared by the data simulator and `SepDeblender`."""

import numpy as np
import sep

__all__ = ["flux_auto"]

#: SExtractor's PHOT_AUTOPARAMS: Kron factor k and minimum radius R_min (both in units of a, b).
KRON_FACTOR = 2.5
KRON_MIN_RADIUS = 3.5
#: Extent, in isophotal radii, of the ellipse in which the Kron radius is computed (SExtractor: 6).
KRON_MOMENT_EXTENT = 6.0


def flux_auto(data, objects, segmap, indices, *, noise_sigma=None):
    """FLUX_AUTO of some of the objects found by ``sep.extract``.

    The aperture is the Kron ellipse of factor ``max(2.5 r_kron, 3.5)`` in units of the object's
    isophotal ``a``, ``b``, as SExtractor's defaults ``PHOT_AUTOPARAMS 2.5, 3.5``; pixels belonging to
    other detected objects are left out of both the Kron radius and the sum (sep's ``seg_id``), and a
    degenerate object (zero Kron radius) falls back to the minimum radius.

    Parameters
    ----------
    data : ndarray (ny, nx), float64, C-contiguous
        Background-subtracted image, image units.
    objects : structured ndarray
        Output of ``sep.extract``.
    segmap : ndarray (ny, nx), int
        Segmentation map from ``sep.extract(..., segmentation_map=True)`` (label = object index + 1).
    indices : sequence of int
        Indices into ``objects`` to measure.
    noise_sigma : float or ndarray, optional
        Background noise per pixel (image units), for the flux errors.

    Returns
    -------
    flux, flux_err : ndarray
        In image units; ``flux_err`` is NaN when ``noise_sigma`` is None.
    """
    idx = np.asarray(indices, dtype=int)
    if idx.size == 0:
        return np.zeros(0), np.zeros(0)
    obj = objects[idx]
    x, y = obj["x"], obj["y"]
    a, b = np.maximum(obj["a"], 1e-3), np.maximum(obj["b"], 1e-3)
    theta = np.clip(obj["theta"], -np.pi / 2, np.pi / 2)
    seg = np.ascontiguousarray(segmap, dtype=np.int32)
    seg_id = (idx + 1).astype(np.int32)
    kron, _ = sep.kron_radius(data, x, y, a, b, theta, KRON_MOMENT_EXTENT, seg_id=seg_id, segmap=seg)
    kron = np.where(np.isfinite(kron), kron, 0.0)
    r = np.maximum(KRON_FACTOR * kron, KRON_MIN_RADIUS)
    kwargs = {} if noise_sigma is None else {"err": noise_sigma}
    flux, err, _ = sep.sum_ellipse(
        data, x, y, a, b, theta, r, subpix=5, seg_id=seg_id, segmap=seg, **kwargs
    )
    if noise_sigma is None:
        err = np.full_like(flux, np.nan)
    return np.asarray(flux, float), np.asarray(err, float)
