"""The classical baseline: SExtractor-style detection and photometry of blends with ``sep``.

`SepDeblender` detects sources with the cold/hot two-pass procedure of Boucaud et al. (2020),
associates them with the central and companion galaxy of each stamp and measures their fluxes,
either as the paper's script did (isophotal flux, ``mode='paper'``) or with a SExtractor
FLUX_AUTO measurement in which neighbouring sources are masked (``mode='auto'``, the default
and the stronger baseline).

It is a `~astro_deblend.deblender.Deblender`: the input path and the common measurement table
(`astro_deblend.catalog`) are shared with `~astro_deblend.neural_deblender.NeuralDeblender`, so a user can
swap one for the other in a script and stack their tables.
"""

import warnings

import numpy as np
import sep
from astropy import units as u
from photutils.segmentation import SegmentationImage
from tqdm.auto import tqdm

from .deblender import Deblended, Deblender
from .exceptions import InputError, InputTypeError, OutOfDomainWarning
from .flags import Flag
from .photometry import KRON_ANALYSIS_RADIUS, flux_auto
from .stamps import noise_correlation_factor, per_stamp
from .uncertainty import ErrorModel

__all__ = ["SepDeblender", "SEP_FEATURES", "bundled_error_model"]

#: Detection passes of Boucaud et al. (2020), Table 3: thresholds in units of the background rms,
#: minimum areas in pixels. The cold pass finds the large components of a blend; the hot pass,
#: more sensitive to small structures, is run only on stamps where the cold pass found fewer than
#: two objects.
_COLD_PASS = {"thresh": 5.0, "minarea": 10, "deblend_cont": 0.01, "deblend_nthresh": 64}
_HOT_PASS = {"thresh": 4.0, "minarea": 6, "deblend_cont": 1e-4, "deblend_nthresh": 64}

#: Stacks longer than this get a progress bar (when ``progress=True``).
_PROGRESS_MIN_STAMPS = 200

#: sep keeps the pixels of the objects it is extracting on a stack that it allocates at every
#: call, so its size costs time (about 30 ms per call for 10**6 pixels). A stamp can never hold
#: more active pixels than it has pixels, so `SepDeblender.measure` sets the stack to the stamp
#: size (at least this) while it runs and restores the previous value afterwards.
_MIN_PIXSTACK = 4096

#: A stamp whose estimated background rms is below this fraction of its bright pixels is noiseless
#: (float32 rounding alone leaves about 1e-7).
_NOISELESS_RMS_RATIO = 1e-6

#: The bright pixels of that test: this percentile of |stamp| (the 82nd brightest of 128 x 128 px), not the
#: peak, which one hot pixel sets.
_BRIGHT_PERCENTILE = 99.5

_MODES = {"auto": "sep-auto", "paper": "sep-paper"}

#: Range of noise rms (image units) that sep measures as given; outside it the stamp is rescaled.
_SAFE_RMS = (1e-10, 1e10)


class _Noiseless(Exception):
    """A stamp without noise, measured without noise_sigma: flagged, or an InputError if all are."""

    def __init__(self, index, message):
        super().__init__(message)
        self.index = index


class SepDeblender(Deblender):
    """Measure the fluxes of the two galaxies of a blend with ``sep`` (SExtractor as a library).

    Detection follows Boucaud et al. (2020): a 'cold' pass (5 sigma, minimum area 10 px,
    deblending contrast 0.01 over 64 thresholds) and, only on stamps where it finds fewer than two
    objects, a 'hot' pass (4 sigma, 6 px, contrast 1e-4, 64 thresholds). The found sources are
    then associated with the central galaxy (pinned at the stamp centre) and its companion.

    Parameters
    ----------
    mode : {'auto', 'paper'}, optional
        How fluxes are measured. ``'paper'`` reproduces the paper's script: sep's isophotal flux
        (the sum of the background-subtracted pixels of each object's segment). ``'auto'``
        (default) measures SExtractor's FLUX_AUTO: an elliptical Kron aperture in which the pixels
        of the other detected objects are replaced by their mirror image through the object's
        centre (SExtractor's default ``MASK_TYPE CORRECT``). FLUX_AUTO captures the wings that
        the isophote misses and is the fairer baseline.
    background_box : int, optional
        Size in pixels of the meshes in which sep estimates the background when
        ``noise_sigma`` is not given to `measure`. Default 32, which splits a 128x128 stamp into
        4x4 meshes; the stamp's background level and rms are the medians over the meshes, so the
        few meshes covered by the galaxies do not bias them.
    background_filter : int, optional
        Size, in meshes, of the median filter applied to the background meshes. Default 3.
    kron_factor : float, optional
        Factor k of the Kron radius defining the FLUX_AUTO aperture (first value of SExtractor's
        ``PHOT_AUTOPARAMS``). Default 2.5, which loses about 6 % of the flux of a typical galaxy
        instead of 10 % for k = 2, at a small cost in signal-to-noise ratio.
    kron_min_radius : float, optional
        Smallest aperture, in units of the object's isophotal (a, b) (second value of
        ``PHOT_AUTOPARAMS``): when k times the Kron radius is smaller, this value is used, as in
        SExtractor, so noisy compact objects keep an aperture larger than their footprint.
        Default 3.5.
    central_tolerance : float, optional
        Distance in pixels from the stamp centre within which a lone detection is taken for the
        central galaxy when `measure` gets no ``radius_central`` (the paper's association); with two
        or more detections the central galaxy is the closer of the two kept, as the paper did, and it
        is flagged 4 (ambiguous) when neither its peak nor its centroid lies within this distance.
        Default 3 px (0.18 arcsec at 0.06 arcsec/px), i.e. the paper's 0.5 R rule for a galaxy of
        radius R = 6 px, and the off-centre limit of the networks' pair check
        (`astro_deblend.pair_check`).
    central_flux_ratio : float, optional
        Used only in ``mode='auto'`` when more than two sources are found. The two brightest
        sources (by FLUX_AUTO) are kept, except that the source closest to the stamp centre is
        never dropped if it lies within the central tolerance and is at least this fraction of
        the flux of the fainter of the two brightest: it is then kept as the central galaxy, with
        the brightest other source as companion. This protects a central galaxy up to 2.5 mag
        fainter than the pieces of an over-deblended bright companion. Default 0.1.
    gain : float, optional
        Electrons per image unit (for electron/s images, the exposure time in s); when given the flux
        errors include the source's Poisson noise. Default None (background noise only).
    error_model : 'default', None or `~astro_deblend.uncertainty.ErrorModel`, optional
        The deblending term added to sep's noise in ``flux_err``: 'default' is the model calibrated for
        this mode on held-out simulated blends (``benchmarks/calibrate_errors.py --method sep-auto``),
        when the package ships one; None reports sep's noise alone, which in blends is far too small.

    Notes
    -----
    Background: stamps simulated with Gaussian noise around a zero background should be measured
    with ``noise_sigma`` given, which takes the background as exactly zero and the rms as known.
    When ``noise_sigma`` is None, the rms of each stamp is estimated as for every deblender
    (`astro_deblend.stamps.estimate_noise_sigma`) and a constant residual background level, estimated
    with `sep.Background` in meshes of ``background_box`` pixels, is subtracted first (SExtractor's
    local background).

    Flux errors are the pixel noise summed over the aperture ('auto') or the segment ('paper'):
    ``rms * sqrt(area)``, or ``sqrt(sum sigma_p**2)`` with a per-pixel noise map; with ``gain`` (electrons
    per image unit: the exposure time for electron/s images) the source's Poisson noise is added, as
    SExtractor does with ``GAIN``. With the default ``error_model='default'`` a calibrated deblending term
    is added to them (`astro_deblend.uncertainty`); ``error_model=None`` gives the noise alone.

    Examples
    --------
    >>> import numpy as np
    >>> from astro_deblend.sep_deblender import SepDeblender
    >>> y, x = np.mgrid[:128, :128]
    >>> stamp = 100 * np.exp(-((x - 64) ** 2 + (y - 64) ** 2) / 18.0)
    >>> table, segments = SepDeblender().measure(stamp, noise_sigma=1.0)
    >>> table["role"].tolist()
    ['central', 'companion']
    """

    def __init__(
        self,
        mode="auto",
        *,
        background_box=32,
        background_filter=3,
        kron_factor=2.5,
        kron_min_radius=3.5,
        central_tolerance=3.0,
        central_flux_ratio=0.1,
        gain=None,
        error_model="default",
    ):
        if mode not in _MODES:
            raise InputError(
                f"mode must be one of {sorted(_MODES)} ('auto': FLUX_AUTO with neighbours "
                f"masked, 'paper': isophotal flux as in Boucaud et al. 2020); got {mode!r}"
            )
        for name, value in (
            ("background_box", background_box),
            ("background_filter", background_filter),
        ):
            if int(value) != value or value < 1:
                raise InputError(
                    f"{name} must be a positive integer (pixels/meshes); got {value!r}"
                )
        for name, value in (
            ("kron_factor", kron_factor),
            ("central_tolerance", central_tolerance),
        ):
            if not np.isfinite(value) or value <= 0:
                raise InputError(f"{name} must be a positive finite number; got {value!r}")
        if not np.isfinite(kron_min_radius) or kron_min_radius < 0:
            raise InputError(f"kron_min_radius must be >= 0; got {kron_min_radius!r}")
        if not 0 <= central_flux_ratio <= 1:
            raise InputError(f"central_flux_ratio must lie in [0, 1]; got {central_flux_ratio!r}")
        self.mode = mode
        self.background_box = int(background_box)
        self.background_filter = int(background_filter)
        self.kron_factor = float(kron_factor)
        self.kron_min_radius = float(kron_min_radius)
        self.central_tolerance = float(central_tolerance)
        self.central_flux_ratio = float(central_flux_ratio)
        if gain is not None and not (np.isfinite(gain) and gain > 0):
            raise InputError(f"gain must be a positive number of electrons per image unit; got {gain!r}",
                             value=gain)
        self.gain = None if gain is None else float(gain)
        bundled = isinstance(error_model, str) and error_model == "default"
        if bundled:
            error_model = bundled_error_model(self.method)
        if error_model is not None and not isinstance(error_model, ErrorModel):
            raise InputTypeError("error_model must be 'default', None or an astro_deblend.uncertainty."
                                 f"ErrorModel; got {type(error_model).__name__}")
        self.error_model = error_model
        #: `~astro_deblend.uncertainty.ErrorModel` of flux_err on whole images (`measure_image`), fitted on
        #: simulated fields with the bundled stamp model (``benchmarks/calibrate_image_errors.py --method``);
        #: None: the views' stamp errors, not calibrated there
        self.image_error_model = bundled_error_model(self.method, "image_error_model") if bundled else None

    def __repr__(self):
        return (
            f"{type(self).__name__}(mode={self.mode!r}, background_box={self.background_box}, "
            f"background_filter={self.background_filter}, kron_factor={self.kron_factor}, "
            f"kron_min_radius={self.kron_min_radius}, central_tolerance={self.central_tolerance}, "
            f"central_flux_ratio={self.central_flux_ratio}, gain={self.gain})"
        )

    @property
    def method(self):
        """str: Name of the method in the output Table ('sep-auto' or 'sep-paper')."""
        return _MODES[self.mode]

    def config(self):
        """Return the configuration as a dict (stored in ``table.meta['config']``)."""
        return {
            "mode": self.mode,
            "cold_pass": dict(_COLD_PASS),
            "hot_pass": dict(_HOT_PASS),
            "background_box": self.background_box,
            "background_filter": self.background_filter,
            "kron_factor": self.kron_factor,
            "kron_min_radius": self.kron_min_radius,
            "kron_analysis_radius": KRON_ANALYSIS_RADIUS,
            "central_tolerance_px": self.central_tolerance,
            "central_flux_ratio": self.central_flux_ratio,
            "gain": self.gain,
        }

    options = ("radius_central", "return_diagnostics")
    per_stamp_options = ("radius_central",)
    noise_map = True

    def measure(self, data, *, zeropoint=None, noise_sigma=None, pixel_scale=None, radius_central=None,
                progress=True, return_diagnostics=False, **unknown):
        """Detect, associate and measure the central and companion galaxy of each stamp.

        Parameters
        ----------
        data : array-like, `~astropy.units.Quantity`, or FITS path / HDUList / HDU
            One stamp (ny, nx) or a stack (N, ny, nx), in image units (e.g. electron/s). The
            central galaxy is expected at pixel (ny // 2, nx // 2) (0-based, numpy order). A FITS
            input also provides the zero point, noise and unit when its header has them (see
            `astro_deblend.fitsio`).
        zeropoint : float, optional
            AB zero point; when given the Table gets a ``mag`` column.
        noise_sigma : float, array of shape (N,) or of the data's shape, `~astropy.units.Quantity`, optional
            Rms of the per-pixel noise, in image units, for all stamps, per stamp or per pixel (a noise
            map; infinite where a pixel holds no information). When given,
            the background is taken as exactly zero (simulated stamps); when None (default) the
            rms is estimated from each stamp and a constant background level is subtracted (see Notes).
        pixel_scale : float, optional
            Arcsec per pixel; checked, not used (detection works in pixels).
        radius_central : float or array of shape (N,), optional
            Radius R of the central galaxy in pixels. A lone detection is the central galaxy if it
            lies within 0.5 R of the stamp centre, else the companion; a central galaxy of a pair
            farther than that is flagged 4. Default: the ``central_tolerance`` given at construction
            is used as the distance limit.
        progress : bool, optional
            Show a progress bar for stacks of more than 200 stamps. Default True.
        return_diagnostics : bool, optional
            Also return a dict of (N, 2) arrays: ``flux_err_noise`` (the noise part of ``flux_err``), the
            features of the deblending term (`SEP_FEATURES`) and ``noise_correlation``, the factor by which
            the noise part was raised for noise correlated between pixels
            (`astro_deblend.stamps.noise_correlation_factor`). Default False.
        **unknown
            Any other keyword is refused with `~astro_deblend.exceptions.InputTypeError`, as by every method.

        Returns
        -------
        table : `~astropy.table.QTable`
            The common measurement Table: two rows per stamp (central, companion) with
            ``blend_index, role, flux, flux_err, [mag,] x, y, label, n_detected, flag, method``.
            ``flag`` bits: 1 galaxy not detected (its flux is masked), 2 the hot pass was used for
            this stamp, 4 more than two sources were found and two were kept, or the source taken for
            the central galaxy lies off the centre (beyond the central tolerance), 8 the stamp fails
            the input checks of every method (noise, residual sky, cosmic rays, saturation, bad lines),
            is blank, looks noiseless without noise_sigma, or sep's extraction overflowed, 32 the
            noise map is infinite on the galaxy's aperture; every trigger is in
            `astro_deblend.flags.FLAG_DESCRIPTIONS`.
        segments : list of `~photutils.segmentation.SegmentationImage`
            One per stamp: label 1 the central galaxy, 2 the companion, 3 and more the other
            sources (by decreasing flux); all zeros where nothing was found.

        Raises
        ------
        astro_deblend.exceptions.InputError
            (a `ValueError`) If ``data`` is not one or a stack of 2-D stamps, holds NaN or infinite
            pixels, or if ``noise_sigma`` or ``radius_central`` have a wrong shape or non-positive values.
        """
        return super().measure(data, zeropoint=zeropoint, noise_sigma=noise_sigma, pixel_scale=pixel_scale,
                               progress=progress, radius_central=radius_central,
                               return_diagnostics=return_diagnostics, **unknown)  # refused there, typed

    def _deblend(self, batch, *, progress, radius_central=None, return_diagnostics=False, noise_factor=None):
        stack = batch.data
        n, ny, nx = stack.shape
        noise = batch.noise_per_stamp()
        if radius_central is None:
            tolerance = np.full(n, self.central_tolerance)
        else:
            tolerance = 0.5 * per_stamp(radius_central, n, "radius_central", unit=u.pix)
        segments = []
        results = _Results(n)
        show = progress and n > _PROGRESS_MIN_STAMPS
        previous_pixstack = sep.get_extract_pixstack()
        sep.set_extract_pixstack(max(_MIN_PIXSTACK, ny * nx))
        has_map = batch.noise_sigma is not None and batch.noise_sigma.ndim == 3
        noiseless = []  # stamps without noise and without noise_sigma: no threshold in units of sigma
        try:
            for i in tqdm(range(n), desc=f"{self.method} stamps", disable=not show):
                pixel_noise = batch.noise_sigma[i] if has_map else None
                try:
                    segments.append(self._measure_stamp(stack[i], noise[i], batch.noise_given, tolerance[i],
                                                        i, results, pixel_noise))
                except _Noiseless as exc:
                    noiseless.append(exc)
                    results.flag[i] |= Flag.NOT_DETECTED | Flag.OUT_OF_DOMAIN
                    segments.append(SegmentationImage(np.zeros(stack[i].shape, np.int32)))
        finally:
            sep.set_extract_pixstack(previous_pixstack)
        if noiseless and len(noiseless) == n:  # nothing measured: the error says what to pass
            raise InputError(str(noiseless[0])) from None
        if noiseless:
            warnings.warn(
                f"{len(noiseless)} of {n} stamps (e.g. {[e.index for e in noiseless[:5]]}) look noiseless, "
                "so sep's thresholds in units of their noise are undefined: they are flagged 9 without a "
                "flux, the others measured. Pass noise_sigma (the noise they would have) to measure them",
                OutOfDomainWarning, stacklevel=4,  # the caller of measure()
            )
        background = ("zero; rms = noise_sigma" if batch.noise_given
                      else "sep.Background constant level per stamp; rms estimated per stamp")
        features = results.features()
        # pixels whose noise is correlated (drizzled mosaics) add up faster than independent ones
        if noise_factor is None:
            usable = np.isfinite(batch.noise_sigma) if has_map else None
            correlation = noise_correlation_factor(stack, usable=usable)
        else:  # judged by the caller (measure_image, on the image's sky)
            correlation = np.asarray(noise_factor, float)
        noise_err = results.flux_err * correlation[:, None]
        # a noise map without information (inf) on the galaxy's pixels: a flux whose error is unknown
        results.flag[np.isfinite(results.flux) & ~np.isfinite(noise_err)] |= Flag.INCOMPLETE
        if self.error_model is not None:
            flux_err = self.error_model.sigma(np.nan_to_num(results.flux), noise_err, features)
            flux_err = np.where(np.isfinite(results.flux), flux_err, np.nan)
            how = (f"sep's noise (+) calibrated deblending term ({self.error_model.name}, features "
                   f"{list(self.error_model.features)}); see astro_deblend.uncertainty; "
                   + self.error_model.describe_intervals())
        else:
            flux_err = noise_err
            how = "sep's noise only (no deblending term: an underestimate in blends)"
        diagnostics = {"flux_err_noise": noise_err, **features,
                       "noise_correlation": np.repeat(correlation[:, None], 2, axis=1)}
        extra = (diagnostics,) if return_diagnostics else ()
        return Deblended(flux=results.flux, flux_err=flux_err, x=results.x, y=results.y,
                         label=results.label, n_detected=results.n_detected, flag=results.flag,
                         segments=segments, extra=extra, meta={"background": background, "flux_err": how})

    def _deblend_views(self, batch, *, progress):
        # measure_image judges the noise's correlation on the image's sky and raises the noise term by it
        # itself: a view's own factor (its other sources replaced by white noise) would be replaced
        result = self._deblend(batch, progress=progress, return_diagnostics=True,
                               noise_factor=np.ones(len(batch)))
        diag = result.extra[0]
        return self._central_views(result, np.asarray(diag["flux_err_noise"])[:, 0])

    def _measure_stamp(self, stamp, noise_sigma, noise_given, tolerance, i, results, pixel_noise=None):
        """Measure stamp ``i``, fill row ``i`` of ``results`` and return its segmentation."""
        if np.ptp(stamp) == 0:  # blank (a cutout off the image, a zeroed area): nothing to find
            results.flag[i] |= Flag.NOT_DETECTED | Flag.OUT_OF_DOMAIN  # warned: deblender._flag_blank
            return SegmentationImage(np.zeros(stamp.shape, np.int32))
        image, rms = self._subtract_background(stamp, noise_sigma, noise_given, i)
        err = rms if pixel_noise is None else np.ascontiguousarray(pixel_noise, dtype=np.float64)
        # sep works partly in float32 with absolute limits: an image in very small or large units (e.g.
        # erg/s/cm2/Hz, ~1e-30) is measured scaled by a power of two, which is exact, and scaled back
        unit_scale = 1.0
        if not _SAFE_RMS[0] <= rms <= _SAFE_RMS[1]:
            unit_scale = 2.0 ** np.round(np.log2(rms))
            image, rms, err = image / unit_scale, rms / unit_scale, err / unit_scale
        try:
            objects, segmap, hot = _detect(image, rms, i)
        except _SepOverflow:  # this stamp cannot be measured; the others can
            results.flag[i] |= Flag.NOT_DETECTED | Flag.OUT_OF_DOMAIN
            warnings.warn(
                "sep's source extraction overflowed on some stamps (flagged 9, no flux): this happens on "
                "stamps that are not background-subtracted or whose noise_sigma is far below the real noise",
                OutOfDomainWarning, stacklevel=2,
            )
            return SegmentationImage(np.zeros(stamp.shape, np.int32))
        n_found = len(objects)
        results.n_detected[i] = n_found
        if hot:
            results.flag[i] = Flag.HOT_PASS
        if n_found == 0:
            results.flag[i] |= Flag.NOT_DETECTED
            return SegmentationImage(np.zeros(stamp.shape, np.int32))
        if self.mode == "paper":
            obj_flux = objects["flux"].astype(np.float64)
            if np.ndim(err) == 0:  # sep's isophotal area
                obj_err = err * np.sqrt(objects["npix"].astype(np.float64))
            else:  # the segment's pixels in the noise map
                obj_err = np.sqrt(np.bincount(segmap.ravel(), weights=(err**2).ravel(),
                                              minlength=len(objects) + 1)[1:len(objects) + 1])
            if self.gain is not None:  # the source's Poisson noise, as SExtractor with GAIN
                poisson = np.clip(obj_flux * unit_scale, 0, None) / self.gain / unit_scale**2
                obj_err = np.sqrt(obj_err**2 + poisson)
        else:
            obj_flux, obj_err = self._flux_auto(image, err, objects, segmap, unit_scale)
        obj_flux, obj_err = obj_flux * unit_scale, obj_err * unit_scale
        ny, nx = stamp.shape
        # roles follow the paper's association, on the centroids' distances to the centre
        dist = np.hypot(objects["x"] - nx // 2, objects["y"] - ny // 2)
        roles, ambiguous = self._associate(obj_flux, dist, tolerance)
        if ambiguous:
            results.flag[i] |= Flag.AMBIGUOUS
        # a "central" galaxy whose peak and centroid both lie off the centre is doubtful: flag 4 (its peak
        # counts, as in astro_deblend.pair_check, because a neighbour's light can pull a centroid away)
        near = np.minimum(dist, np.hypot(objects["xpeak"] - nx // 2, objects["ypeak"] - ny // 2))
        if roles[0] >= 0 and near[roles[0]] > tolerance:
            results.flag[i] |= Flag.AMBIGUOUS
        for role, k in enumerate(roles):
            if k < 0:
                results.flag[i, role] |= Flag.NOT_DETECTED
                continue
            results.flux[i, role] = obj_flux[k]
            results.flux_err[i, role] = obj_err[k]
            results.x[i, role] = objects["x"][k]
            results.y[i, role] = objects["y"][k]
            results.label[i, role] = role + 1
            results.size[i, role] = 2.0 * np.sqrt(max(float(objects["a"][k] * objects["b"][k]), 0.0))
        return _relabel(segmap, roles, obj_flux)

    def _subtract_background(self, stamp, noise_sigma, noise_given, index):
        """Return the background-subtracted stamp (C-contiguous float64) and its rms."""
        if noise_given:
            return np.ascontiguousarray(stamp), float(noise_sigma)
        ny, nx = stamp.shape
        box_y, box_x = min(self.background_box, ny), min(self.background_box, nx)
        bkg = sep.Background(
            np.ascontiguousarray(stamp),
            bw=box_x,
            bh=box_y,
            fw=self.background_filter,
            fh=self.background_filter,
        )
        rms = float(noise_sigma)
        # the bright end without its few brightest pixels: one hot pixel or a saturated core is no sign of a
        # noiseless stamp (the defect checks flag it), a whole galaxy without noise is
        bright = float(np.percentile(np.abs(stamp), _BRIGHT_PERCENTILE))
        if np.ptp(stamp) == 0 or not rms > _NOISELESS_RMS_RATIO * bright:
            raise _Noiseless(
                index,
                f"stamp {index} looks noiseless (constant, or background rms {rms:.3g} for bright pixels "
                f"of {bright:.3g}), so detection thresholds in units of sigma are undefined; "
                "pass noise_sigma (e.g. the noise level the stamp would have) instead"
            )
        return stamp - float(bkg.globalback), rms

    def _flux_auto(self, image, rms, objects, segmap, unit_scale=1.0):
        """FLUX_AUTO and its error (background, and the source's Poisson noise with a gain), image units."""
        return flux_auto(
            image, objects, segmap, np.arange(len(objects)), noise_sigma=rms,
            gain=None if self.gain is None else self.gain * unit_scale,
            kron_factor=self.kron_factor, kron_min_radius=self.kron_min_radius,
        )

    def _associate(self, obj_flux, dist, tolerance):
        """Choose the detections of the central and companion galaxy.

        Parameters
        ----------
        obj_flux : ndarray, shape (n_objects,)
            Flux of each detected object (image units).
        dist : ndarray, shape (n_objects,)
            Distance of each object to the stamp centre, in pixels.
        tolerance : float
            Distance (px) within which a lone detection is the central galaxy.

        Returns
        -------
        roles : tuple of int
            Index of the central and of the companion object (-1 if none).
        ambiguous : bool
            True if more than two objects were found.
        """
        n_obj = len(obj_flux)
        if n_obj == 1:
            return ((0, -1) if dist[0] <= tolerance else (-1, 0)), False
        # Sort by decreasing flux; NaN fluxes go last.
        order = np.argsort(-np.nan_to_num(obj_flux, nan=-np.inf), kind="stable")
        keep = order[:2]
        if n_obj > 2 and self.mode == "auto":
            closest = int(np.argmin(dist))
            if (
                closest not in keep
                and dist[closest] <= tolerance
                and obj_flux[closest] >= self.central_flux_ratio * obj_flux[keep[1]]
            ):
                keep = np.array([closest, order[0]])
        first, second = (int(k) for k in keep)
        central, companion = (first, second) if dist[first] <= dist[second] else (second, first)
        return (central, companion), n_obj > 2


#: Features of SepDeblender's deblending error term (`astro_deblend.uncertainty.ErrorModel`), per galaxy:
#: ``contamination`` its neighbour's flux over its own times ``proximity``; ``proximity``
#: exp(-d / (s_1 + s_2)) with d the distance between the two sources and s = 2 sqrt(a b) their sizes from
#: sep's moments (0 without a neighbour); ``single`` 1 when sep found one source only (a merged pair
#: or a lone galaxy); ``crowded`` 1 when it found more than two.
SEP_FEATURES = ("contamination", "proximity", "single", "crowded")


class _Results:
    """Per-stamp measurements of a stack, (N, 2) arrays (central, companion); NaN if missing."""

    def __init__(self, n):
        self.flux = np.full((n, 2), np.nan)
        self.flux_err = np.full((n, 2), np.nan)
        self.x = np.full((n, 2), np.nan)
        self.y = np.full((n, 2), np.nan)
        self.size = np.full((n, 2), np.nan)
        self.label = np.zeros((n, 2), np.int32)
        self.n_detected = np.zeros(n, np.int32)
        self.flag = np.zeros((n, 2), np.int32)

    def features(self):
        """The features of `SEP_FEATURES`, (N, 2) arrays."""
        d = np.hypot(self.x[:, 0] - self.x[:, 1], self.y[:, 0] - self.y[:, 1])[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            proximity = np.exp(-d / np.maximum(self.size.sum(axis=1, keepdims=True), 1e-3))
            ratio = np.clip(np.abs(self.flux[:, ::-1]) / np.abs(self.flux), 0, 100)
        proximity = np.where(np.isfinite(proximity), proximity, 0.0) * np.ones((1, 2))
        ratio = np.where(np.isfinite(ratio), ratio, 0.0)
        n = self.n_detected[:, None] * np.ones((1, 2))
        return {"contamination": ratio * proximity, "proximity": proximity,
                "single": (n == 1).astype(float), "crowded": (n > 2).astype(float)}


def bundled_error_model(method, key="error_model"):
    """The calibrated error model shipped for a sep method (``weights/<method>_errors.json``; ``key``
    ``'image_error_model'`` for whole images), or None."""
    import json
    from importlib import resources

    path = resources.files("astro_deblend") / "weights" / f"{method}_errors.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text()).get(key)
    return None if record is None else ErrorModel.from_dict(record)


def _detect(image, rms, index):
    """Run the cold pass and, if it finds fewer than two objects, the hot pass.

    Returns the objects, the segmentation map (object ``k`` has label ``k + 1``) and whether the
    hot pass was used. The hot pass replaces the cold one unless it finds nothing.
    """
    objects, segmap = _extract(image, rms, _COLD_PASS, index)
    if len(objects) >= 2:
        return objects, segmap, False
    hot_objects, hot_segmap = _extract(image, rms, _HOT_PASS, index)
    if len(hot_objects) == 0:
        return objects, segmap, False
    return hot_objects, hot_segmap, True


def _extract(image, rms, params, index):
    """Run `sep.extract` with the parameters of one detection pass (thresholds in rms units)."""
    try:
        return sep.extract(image, err=rms, segmentation_map=True, **params)
    except Exception as exc:  # sep raises a bare Exception for its internal overflows
        if not any(words in str(exc).lower() for words in ("buffer full", "overflow", "limit")):
            raise  # not one of sep's limits: a real error, shown as it is
        raise _SepOverflow(f"sep.extract failed on stamp {index} ({exc})") from exc


class _SepOverflow(RuntimeError):
    """sep's extraction ran out of its internal buffers on one stamp."""


def _relabel(segmap, roles, obj_flux):
    """Relabel sep's segmentation map: 1 central, 2 companion, 3+ others by decreasing flux."""
    n_obj = len(obj_flux)
    lut = np.zeros(n_obj + 1, np.int32)
    for role, k in enumerate(roles):
        if k >= 0:
            lut[k + 1] = role + 1
    others = [
        k
        for k in np.argsort(-np.nan_to_num(obj_flux, nan=-np.inf), kind="stable")
        if k not in roles
    ]
    lut[np.asarray(others, np.intp) + 1] = np.arange(3, 3 + len(others), dtype=np.int32)
    return SegmentationImage(lut[segmap])
