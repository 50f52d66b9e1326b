"""SExtractor's FLUX_AUTO (Kron photometry) with sep.

Shared by the data simulator (the paper's truth) and `SepDeblender` (the baseline).
"""

import numpy as np
import sep

__all__ = ["flux_auto"]

#: SExtractor's PHOT_AUTOPARAMS: Kron factor k and minimum radius R_min (both in units of a, b).
KRON_FACTOR = 2.5
KRON_MIN_RADIUS = 3.5
#: Extent, in isophotal radii (a, b), of the ellipse where the Kron radius is computed (SExtractor: 6).
KRON_ANALYSIS_RADIUS = 6.0


def flux_auto(image, objects, segmap, indices, *, noise_sigma=None, kron_factor=KRON_FACTOR,
              kron_min_radius=KRON_MIN_RADIUS, gain=None):
    """FLUX_AUTO of some of the objects found by ``sep.extract``, as SExtractor measures it.

    The aperture is the ellipse of the object's isophotal ``a``, ``b``, ``theta`` scaled by
    ``max(kron_factor * r_Kron, kron_min_radius)`` (SExtractor's ``PHOT_AUTOPARAMS 2.5, 3.5``), with
    the Kron radius measured within 6 (a, b) while skipping the other objects' pixels. In the sum, a
    pixel of another object takes the value of the pixel mirrored through the measured object's
    centre (zero if that one is unusable): SExtractor's default ``MASK_TYPE CORRECT``. Pixels count whole (no
    sub-sampling), as in SExtractor.

    Parameters
    ----------
    image : ndarray (ny, nx), float64, C-contiguous
        Background-subtracted image, image units.
    objects : structured ndarray
        Output of ``sep.extract``.
    segmap : ndarray (ny, nx), int
        Segmentation map from ``sep.extract(..., segmentation_map=True)``: object ``k`` has label
        ``k + 1``.
    indices : sequence of int
        Indices into ``objects`` to measure.
    noise_sigma : float or ndarray (ny, nx), optional
        Background noise per pixel (image units): one value or a per-pixel map, for the flux errors.
    gain : float, optional
        Electrons per image unit (for electron/s images: the exposure time); when given, the source's
        Poisson noise is added to the errors, as SExtractor's ``GAIN``.
    kron_factor, kron_min_radius : float
        SExtractor's ``PHOT_AUTOPARAMS``.

    Returns
    -------
    flux, flux_err : ndarray
        In image units; ``flux_err`` is NaN when ``noise_sigma`` is None.
    """
    idx = np.asarray(indices, dtype=int)
    n = idx.size
    flux, err = np.full(n, np.nan), np.full(n, np.nan)
    if n == 0:
        return flux, err
    obj = objects[idx]
    x = obj["x"].astype(np.float64)
    y = obj["y"].astype(np.float64)
    a = obj["a"].astype(np.float64)
    b = obj["b"].astype(np.float64)
    # sep gives theta as float32, whose nearest value to pi/2 lies just above it: its own aperture
    # functions then refuse a vertical object (a bad column, a bleed trail)
    theta = np.clip(obj["theta"].astype(np.float64), -np.pi / 2, np.pi / 2)
    # Objects too thin for a second-moment ellipse get a 1-px circle (then the minimum radius).
    bad_shape = ~((b > 0) & (a >= b) & np.isfinite(theta))
    a[bad_shape], b[bad_shape], theta[bad_shape] = 1.0, 1.0, 0.0
    seg = np.ascontiguousarray(segmap, dtype=np.int32)
    seg_id = (idx + 1).astype(np.int32)
    kron, _ = sep.kron_radius(
        image, x, y, a, b, theta, KRON_ANALYSIS_RADIUS, seg_id=seg_id, segmap=seg
    )
    kron = np.where(np.isfinite(kron) & (kron > 0), kron, 0.0)
    scale = np.maximum(kron_factor * kron, kron_min_radius)
    kwargs = {} if noise_sigma is None else {"err": noise_sigma}
    if gain is not None and noise_sigma is not None:
        kwargs["gain"] = float(gain)
    for k in range(n):
        corrected = _mirror_neighbours(image, seg, int(seg_id[k]), x[k], y[k])
        one = slice(k, k + 1)
        f, e, _ = sep.sum_ellipse(corrected, x[one], y[one], a[one], b[one], theta[one], scale[one],
                                  subpix=1, **kwargs)
        flux[k] = f[0]
        if noise_sigma is not None:
            err[k] = e[0]
    return flux, err


def _mirror_neighbours(image, segmap, own_label, xc, yc):
    """Replace the pixels of other objects by their mirror image through (xc, yc).

    This is SExtractor's ``MASK_TYPE CORRECT``: a neighbour's pixel takes the value of the pixel
    symmetric about the measured object's centre when that pixel is inside the stamp and belongs
    to no other object, else zero.
    """
    others = (segmap != 0) & (segmap != own_label)
    if not others.any():
        return image
    ny, nx = image.shape
    yy, xx = np.nonzero(others)
    ym = np.rint(2 * yc - yy).astype(np.intp)
    xm = np.rint(2 * xc - xx).astype(np.intp)
    usable = (ym >= 0) & (ym < ny) & (xm >= 0) & (xm < nx)
    usable[usable] = ~others[ym[usable], xm[usable]]
    corrected = image.copy()
    corrected[yy, xx] = 0.0
    corrected[yy[usable], xx[usable]] = image[ym[usable], xm[usable]]
    return corrected
