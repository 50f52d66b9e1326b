"""Survey scale: `measure_image` on mosaics larger than memory, tile by tile, on Dask.

The mosaic is cut into square *cores* of ``tile_size`` pixels. Each task reads its core and a ``margin``
around it (from a memory-mapped FITS file, a Dask array or an array), measures every source of that
cutout with `astro_deblend.images.measure_image`, and keeps the rows of the sources whose positions fall in
its core: every source is measured once. With the default margin of 256 px a source's view (64 px around
it) and the views that share its pixels (64 px further) lie inside the cutout, so a tiled run gives the
in-memory catalogue when the sources are given; detected sources may differ where a footprint crosses a
cutout's edge. Memory grows with the tile, not with the mosaic.

Tasks run on a local Dask scheduler (threads) by default, or on a `dask.distributed` cluster when a
``client`` is given. When the noise is not given, one rms is estimated once from a subsample of the whole
mosaic, so that every tile uses the same value.
"""

import os

import numpy as np

from .exceptions import AstroDeblendWarning, DataFileError, InputError, InputTypeError, ZeroPatchWarning

__all__ = ["RmsAsError", "WeightAsError", "measure_tiled", "tile_cores"]

#: Pixels read around each core; at least two view radii of the networks (2 x 64 px) plus a segment.
DEFAULT_MARGIN = 256


def check_tiling(tile_size, margin=DEFAULT_MARGIN, reach=128):
    """Refuse tiles smaller than 64 px and a margin below ``reach`` (a view's side: a source's view and the
    views that share its pixels reach that far)."""
    if not (isinstance(tile_size, int | np.integer) and tile_size >= 64):
        raise InputError(
            f"tile_size must be an integer of at least 64 px; got {tile_size!r}", value=tile_size
        )
    if not (isinstance(margin, int | np.integer) and margin >= 0):
        raise InputError(f"margin must be a non-negative integer; got {margin!r}", value=margin)
    if margin < reach:
        raise InputError(
            f"margin={margin} px is less than {reach} px, the reach of a source's view and of the views that "
            "share its pixels: sources near the tiles' edges would be measured on cut views (fluxes off by "
            f"up to tens of per cent, with flag 0). Give margin >= {reach} [default {DEFAULT_MARGIN}]",
            value=margin,
        )


def tile_cores(shape, tile_size):
    """The cores that cover an image: a list of ``(y0, y1, x0, x1)``, row-major."""
    ny, nx = shape
    return [
        (y0, min(ny, y0 + tile_size), x0, min(nx, x0 + tile_size))
        for y0 in range(0, ny, tile_size)
        for x0 in range(0, nx, tile_size)
    ]


class _Reader:
    """Lazy access to a 2-D array held in memory, in a FITS file (memory-mapped) or in a Dask array."""

    def __init__(self, data, name, hdu=None):
        if isinstance(hdu, str) and hdu.strip().isdigit():  # from the command line: an index
            hdu = int(hdu)
        self.path, self.hdu, self.header = None, hdu, None
        if isinstance(data, str | os.PathLike):
            from astropy.io import fits

            self.path = os.fspath(data)
            if not os.path.exists(self.path):
                raise FileNotFoundError(
                    f"{name}: FITS file {self.path} does not exist"
                    + (" (a number given as text? give it as a number)" if _is_number(self.path) else ""))
            try:
                with fits.open(self.path, memmap=True, do_not_scale_image_data=True) as hdul:
                    self.hdu = hdu if hdu is not None else _first_image(hdul, self.path)
                    try:
                        chosen = hdul[self.hdu]
                    except (KeyError, IndexError):
                        names = ", ".join(f"{i} {h.name or '(no name)'}" for i, h in enumerate(hdul))
                        raise DataFileError(
                            f"{self.path} has no HDU {self.hdu!r}; it holds: {names}"
                        ) from None
                    shape, self.header = tuple(chosen.shape), chosen.header.copy()
                    # degenerate leading axes, (1, ny, nx) or (1, 1, ny, nx), are read through
                    self.lead = (0,) * max(0, len(shape) - 2) if all(n == 1 for n in shape[:-2]) else ()
                    self.shape = shape[len(self.lead):]
                    if len(self.shape) == 2 and 0 not in self.shape:
                        # the last pixel now: a truncated file fails here, not hours later in a tile
                        chosen.section[(*self.lead, self.shape[0] - 1, slice(self.shape[1] - 1, None))]
            except (DataFileError, InputError):
                raise
            except (OSError, TypeError, ValueError, KeyError, IndexError) as exc:
                raise DataFileError(
                    f"{self.path} is not a readable FITS image, or is truncated (a copy cut short?): {exc}"
                ) from exc
            self.array = None
        else:
            if not hasattr(data, "shape") or not hasattr(data, "__getitem__"):
                raise InputTypeError(
                    f"{name} must be an array, a Dask array or a FITS path; got {type(data).__name__}"
                )
            self.array, self.shape = data, tuple(data.shape)
            if not all(np.isfinite(n) for n in self.shape):  # a Dask array of unknown chunk sizes
                raise InputError(f"{name} has an unknown shape {self.shape}: call its compute_chunk_sizes() "
                                 "first", value=self.shape)
        if len(self.shape) != 2:
            where = f" (HDU {self.hdu} of {self.path})" if self.path is not None else ""
            raise InputError(
                f"{name} must be a 2-D image; got shape {self.shape}{where}"
                + (": that HDU holds no data" if self.shape == () else "")
                + (": a cube of stamps is measured without tiles (measure(), or the command line without "
                   "--tile-size)" if len(self.shape) == 3 else ""), value=self.shape)

    @property
    def dtype_kind(self):
        """numpy's kind of the pixels ('f' float, 'i' integer, 'b' bool, ...)."""
        if self.array is not None:
            return np.dtype(self.array.dtype).kind
        scaled = float(self.header.get("BSCALE", 1.0)) != 1.0
        return "f" if int(self.header.get("BITPIX", -32)) < 0 or scaled else "i"

    def read(self, ys, xs):
        if self.array is not None:
            part = self.array[ys, xs]
            return np.asarray(part.compute() if hasattr(part, "compute") else part, dtype=np.float64)
        from astropy.io import fits

        # raw integers, scaled here: astropy refuses to memory-map BSCALE/BZERO/BLANK images
        with fits.open(self.path, memmap=True, do_not_scale_image_data=True) as hdul:
            chosen = hdul[self.hdu]
            try:
                raw = np.asarray(chosen.section[(*self.lead, ys, xs)])
            except (OSError, TypeError, ValueError) as exc:  # the file changed or was cut since it was opened
                raise DataFileError(f"cannot read rows {ys.start}-{ys.stop} of {self.path}: {exc}") from exc
            header = chosen.header
            part = raw.astype(np.float64)
            if raw.dtype.kind in "iu" and "BLANK" in header:
                part[raw == int(header["BLANK"])] = np.nan
            return part * float(header.get("BSCALE", 1.0)) + float(header.get("BZERO", 0.0))

    def subsample(self, step):
        rows = range(0, self.shape[0], step)
        return np.concatenate(
            [self.read(slice(r, r + 1), slice(0, self.shape[1], step)).ravel() for r in rows]
        )


class WeightAsError:
    """An inverse-variance weight map (FITS path or array) read as the rms map ``1 / sqrt(weight)``, cutout by
    cutout; a weight of 0 is a pixel without information (an infinite rms)."""

    ndim = 2
    dtype = np.dtype(np.float64)
    what = "weight map"
    meaning = "an inverse-variance weight is >= 0 (0 = no information)"

    def __init__(self, source):
        from .fitsio import weight_hdu

        self.reader = _Reader(source, f"the {self.what}", weight_hdu(source, self._extensions()))
        self.shape = self.reader.shape

    @staticmethod
    def _extensions():
        from .fitsio import WEIGHT_EXTENSIONS

        return WEIGHT_EXTENSIONS

    @staticmethod
    def _as_rms(w):
        with np.errstate(divide="ignore"):
            return np.where(w > 0, 1.0 / np.sqrt(np.where(w > 0, w, 1.0)), np.inf)

    def __array__(self, dtype=None, copy=None):  # the whole map, for an in-memory run
        whole = self[slice(0, self.shape[0]), slice(0, self.shape[1])]
        return whole if dtype is None else whole.astype(dtype)

    def __getitem__(self, key):
        values = self.reader.read(*key)
        if np.any(values < 0):
            raise InputError(
                f"the {self.what} has {int(np.count_nonzero(values < 0))} negative pixels in rows "
                f"{key[0].start}-{key[0].stop}: {self.meaning}; check the file"
            )
        return self._as_rms(values)


class RmsAsError(WeightAsError):
    """An rms map (FITS path, or its ``ERR``/``RMS``/``SIGMA`` extension; or an array) read cutout by cutout;
    a zero, NaN or infinite rms is a pixel without information (as JWST's ERR marks pixels without data)."""

    what = "rms map"
    meaning = "an rms is >= 0 (0, NaN = no information)"

    @staticmethod
    def _extensions():
        from .fitsio import ERROR_EXTENSIONS

        return ERROR_EXTENSIONS

    @staticmethod
    def _as_rms(r):
        return np.where(np.isfinite(r) & (r > 0), r, np.inf)


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _first_image(hdul, path):
    import warnings

    from .exceptions import AstroDeblendWarning

    names = [h.name for h in hdul if h.is_image and h.header.get("NAXIS", 0) >= 2]
    if names and names[0] not in ("", "PRIMARY") and names.count(names[0]) > 1:
        warnings.warn(
            f"{path} holds {names.count(names[0])} image HDUs named {names[0]!r}; the first one is measured. "
            "Give hdu= to measure another, one call each", AstroDeblendWarning, stacklevel=4,
        )
    for i, h in enumerate(hdul):
        naxes = [h.header.get(f"NAXIS{k}", 0) for k in range(1, int(h.header.get("NAXIS", 0)) + 1)]
        # from the header, so that the pixels stay on disk; (1, ny, nx) and (1, 1, ny, nx) are images too
        if h.is_image and len(naxes) >= 2 and all(n == 1 for n in naxes[2:]):
            return i
    shapes = ", ".join(f"{i}: {h.shape}" for i, h in enumerate(hdul)
                       if h.is_image and h.header.get("NAXIS", 0))
    raise InputError(f"{path} holds no 2-D image HDU" + (
        f" (its images: {shapes}; a cube of stamps is measured without tiles)" if shapes else ""))


def measure_tiled(
    deblender,
    data,
    *,
    sources=None,
    error=None,
    mask=None,
    wcs=None,
    zeropoint=None,
    pixel_scale=None,
    tile_size=2048,
    margin=DEFAULT_MARGIN,
    client=None,
    hdu=None,
    detection=None,
    seed=0,
    checkpoint=None,
    progress=True,
):
    """Measure every source of a mosaic tile by tile (see the module notes).

    Parameters
    ----------
    deblender : `~astro_deblend.deblender.Deblender`
        The method.
    data : array-like, Dask array or FITS path
        The background-subtracted mosaic (a FITS file is memory-mapped, never read whole).
    sources : `~astropy.table.Table`, optional
        Positions in mosaic pixels (``x``/``y``) or on the sky (with ``wcs`` or the FITS header's); ids from
        ``id``. None: detected in every cutout, ids ``tile_index * 10**7 + label``.
    error, mask : scalar, array-like, Dask array or FITS path, optional
        The per-pixel rms (None: one value estimated from the mosaic; a weight map:
        ``WeightAsError(path)``) and the bad-pixel mask (non-zero = ignore).
    tile_size, margin : int
        Side of the cores and pixels read around them [default: 2048 and 256].
    client : `dask.distributed.Client` or str, optional
        A Dask cluster (or its scheduler address) [default: the local threaded scheduler].
    checkpoint : str or path, optional
        A folder where each finished tile's rows are kept (one ECSV file per tile, written atomically): a
        run interrupted, or stopped by one bad tile, is resumed by the same call, which measures only the
        tiles not yet kept. The folder remembers its run (the mosaic, the maps, the sources, the method and
        the tiling) and refuses another's: a FITS file by its size and time of change, an array in memory
        by the subsample the noise is judged on (an edit of a few pixels between two runs goes unseen: give
        another folder). Remove it once the catalogue is written.

    Returns
    -------
    table : `~astropy.table.QTable`
        The catalogue of `~astro_deblend.deblender.Deblender.measure_image`, one row per source (in the
        order of ``sources``; detected ones sorted by id), with a ``tile`` column.
    """
    import dask
    from astropy.table import Table, vstack

    from .images import (
        _check_ids_positions,
        _header_wcs,
        _table_positions,
        _warn_nothing_on_image,
        _zero_filled,
        check_wcs,
        estimated_noise,
        shows_noise,
        wcs_pixel_scale,
    )

    check_tiling(tile_size, margin, int(getattr(deblender, "stamp_size", 128)))
    _check_client(client)
    from .stamps import own_or_given_error, unwrap_container

    inner = unwrap_container(data)  # NDData/CCDData and Masked: their mask, WCS and uncertainty are used
    data = inner.data

    def join_mask(own):  # the data's own mask and mask=, in one array
        if isinstance(mask, str | os.PathLike):
            raise InputError("the data carry a mask of their own and mask= is a file: give the mask in one "
                             "place (combine them, or pass the data's pixels without their mask)")
        return own if mask is None else (np.asarray(mask, bool) | own)

    if inner.mask is not None:
        mask = join_mask(inner.mask)
    error = own_or_given_error(error, inner.error, name="error", stacklevel=3)
    if np.ma.isMaskedArray(error):  # its masked pixels are pixels without information
        error = np.where(np.ma.getmaskarray(error), np.inf, np.ma.getdata(error))
    if wcs is None and getattr(inner.wcs, "has_celestial", False):
        wcs = inner.wcs.celestial
    wcs = check_wcs(wcs)
    from .stamps import _plain_pixel_scale, _plain_zeropoint

    pixel_scale, zeropoint = _plain_pixel_scale(pixel_scale), _plain_zeropoint(zeropoint)  # Quantities too
    pixel_given = pixel_scale  # the user's own: then the pixel area is its square
    unit = None
    if hasattr(data, "unit") and hasattr(data, "value"):  # a Quantity: measured in its unit
        from .stamps import _in_data_unit, _is_flux_unit, not_a_brightness

        unit = data.unit
        if not _is_flux_unit(unit):
            raise not_a_brightness(unit, "the mosaic")
        error = None if error is None else _in_data_unit(error, unit, "error")
        data = data.value
    if np.ma.isMaskedArray(data):  # its mask joins the mask
        mask = join_mask(np.ma.getmaskarray(data))
        data = np.ma.getdata(data)
    if (
        mask is not None
        and not isinstance(mask, str | os.PathLike)
        and np.asarray(mask).dtype.kind not in "biu"
    ):
        raise InputTypeError(
            f"mask must be boolean (True = ignore the pixel); got dtype {np.asarray(mask).dtype}"
        )
    image = _Reader(data, "data", hdu)
    if min(image.shape) < 8:
        raise InputError(f"the mosaic is {image.shape[0]} x {image.shape[1]} px; it takes at least 8 x 8",
                         value=image.shape)
    kind = image.dtype_kind
    if kind == "c":
        raise InputError("the mosaic is complex; give its real pixels (e.g. data.real)", value=kind)
    if kind not in "fiu":
        raise InputTypeError(
            f"the mosaic's pixels must be numbers; got dtype kind {kind!r}"
            + (" (booleans: a mask? it goes in as mask=)" if kind == "b" else ""))
    if wcs is None and image.header is not None:
        wcs = _header_wcs(image.header)
    if image.header is not None:  # what the in-memory path reads from the same header
        from .fitsio import header_metadata
        from .stamps import _is_flux_unit

        meta = header_metadata(image.header)
        zeropoint = meta["zeropoint"] if zeropoint is None else zeropoint
        pixel_scale = meta["pixel_scale"] if pixel_scale is None else pixel_scale
        if unit is None and meta["unit"] is not None:
            unit = meta["unit"]
            if not _is_flux_unit(unit):
                from .stamps import not_a_brightness

                raise not_a_brightness(unit, "the mosaic", origin=" (its BUNIT)")
    if pixel_scale is None and wcs is not None:
        pixel_scale = wcs_pixel_scale(wcs)
    from .conventions import ab_zeropoint, resolve_zeropoint
    from .stamps import per_pixel_flux

    area = None
    if wcs is not None and (image.header is None or "PIXSCALE" not in image.header) and pixel_given is None:
        from astropy.wcs.utils import proj_plane_pixel_area

        area = float(proj_plane_pixel_area(wcs) * 3600.0**2)  # arcsec2: right for non-square pixels
    # a surface brightness: refused now if no scale
    factor, flux_unit = per_pixel_flux(unit, pixel_scale, pixel_area=area)
    # Jy-like: the unit gives the AB zero point (and overrides one that contradicts it, warned once here)
    if ab_zeropoint(flux_unit) is not None:
        per_pixel = None if zeropoint is None else zeropoint + 2.5 * np.log10(factor)
        zeropoint = resolve_zeropoint(per_pixel, flux_unit, stacklevel=3) - 2.5 * np.log10(factor)
    if isinstance(error, str | os.PathLike) or np.ndim(error) == 2:  # np.ndim reads .ndim: WeightAsError
        from .fitsio import ERROR_EXTENSIONS, weight_hdu

        err = _Reader(error, "error", weight_hdu(error, ERROR_EXTENSIONS))  # a map, read per cutout
    else:
        err = error  # None or one value
    bad = None if mask is None else _Reader(mask, "mask")
    if bad is not None and bad.dtype_kind not in "biu":
        raise InputTypeError(
            "mask must be boolean or integer (non-zero = ignore the pixel); got float pixels "
            f"({'BITPIX ' + str(bad.header.get('BITPIX')) if bad.path else bad.array.dtype}). A weight map "
            "goes in as error = 1 / sqrt(weight), not as a mask"
        )
    for reader, name in ((err, f"the {getattr(error, 'what', 'error')}"), (bad, "mask")):
        if isinstance(reader, _Reader) and reader.shape != image.shape:
            raise InputError(f"{name} has shape {reader.shape}, the mosaic {image.shape}", value=reader.shape)
    # judged once, on a subsample of the whole mosaic, so that every tile uses the same: whether it has noise
    # (then patches of exact zeros are unfilled gaps, masked in every cutout, even one that holds nothing
    # else), and its rms when none is given, over the pixels the in-memory run would use
    step = max(1, int(np.sqrt(image.shape[0] * image.shape[1] / 4e6)))
    pixels = image.subsample(step)
    usable = np.isfinite(pixels)
    if bad is not None:
        usable &= ~bad.subsample(step).astype(bool)
    noisy = kind == "f" and shows_noise(pixels[usable])
    if err is None:
        if not usable.any():
            raise InputError("every pixel sampled for the noise is masked, NaN or infinite: an empty mosaic? "
                             "If it holds data between the sampled pixels, give error=")
        if noisy:  # a coverage gap filled with zeros is not sky
            usable &= pixels != 0
        err = estimated_noise(pixels[usable], "mosaic")

    positions = None
    if sources is not None:
        if not isinstance(sources, Table):
            raise InputTypeError("a tiled run takes sources as an astropy Table of positions (or None)")
        ids, x, y = _table_positions(sources, None if wcs is None else wcs.celestial, stacklevel=3)
        # the whole table at once: repeated ids and NaN positions are errors, off-image ones are flagged rows
        ids, x, y, on_image = _check_ids_positions(ids, x, y, _Shape(image.shape))
        _warn_nothing_on_image(ids.size, on_image, image.shape, stacklevel=3)
        positions = (ids, x, y)

    cores = tile_cores(image.shape, int(tile_size))
    kept = None
    if checkpoint is not None:
        identity = {
            "data": _fingerprint(image, pixels), "shape": list(image.shape), "tile_size": int(tile_size),
            "margin": int(margin), "tiles": len(cores), "seed": int(seed), "detection": detection,
            "method": deblender.method, "config": deblender.config(),
            "error": _fingerprint(err, err.subsample(step)) if isinstance(err, _Reader) else err,
            "mask": None if bad is None else _fingerprint(bad, bad.subsample(step)),
            "sources": None if positions is None else _digest(*positions),
            "zeropoint": zeropoint, "pixel_scale": pixel_scale,
        }
        kept = _Kept(checkpoint, identity)
        kept.resumed = sum(kept.has(i) for i in range(len(cores)))

    def one_tile(index, core):
        if kept is not None and kept.has(index):
            return kept.read(index)
        part = measure_one(index, core)
        if kept is not None:
            kept.write(index, part)
        return part

    def measure_one(index, core):
        y0, y1, x0, x1 = core
        ys = slice(max(0, y0 - margin), min(image.shape[0], y1 + margin))
        xs = slice(max(0, x0 - margin), min(image.shape[1], x1 + margin))
        cut = image.read(ys, xs)
        cut_err = err.read(ys, xs) if isinstance(err, _Reader) else err
        cut_mask = bad.read(ys, xs).astype(bool) if bad is not None else np.zeros(cut.shape, bool)
        known = cut_mask | ~np.isfinite(cut)
        if np.ndim(cut_err) == 2:
            known |= ~np.isfinite(cut_err)
        if noisy:  # the mosaic's verdict, not the cutout's (a cutout of a coverage gap holds only zeros)
            gaps = _zero_filled(cut, known, noisy=True) & ~known
            if gaps.any():
                import warnings

                from .images import ZERO_PATCH_MESSAGE

                warnings.warn(ZERO_PATCH_MESSAGE.format(n=int(gaps.sum())), ZeroPatchWarning, stacklevel=2)
                cut_mask, known = cut_mask | gaps, known | gaps
        tile_sources = None
        if positions is not None:
            ids, x, y = positions
            inside = (x >= xs.start - 0.5) & (x < xs.stop - 0.5) & (y >= ys.start - 0.5) & (y < ys.stop - 0.5)
            inside &= on_image  # the others get their rows once, below
            if not inside.any():
                return None
            tile_sources = Table({"id": ids[inside], "x": x[inside] - xs.start, "y": y[inside] - ys.start})
        if known.all():  # a cutout without data (a coverage gap): nothing found, its sources get no flux
            if positions is None:
                return None
            ids, x, y = positions
            core_rows = inside & (np.floor(y + 0.5) >= y0) & (np.floor(y + 0.5) < y1) \
                & (np.floor(x + 0.5) >= x0) & (np.floor(x + 0.5) < x1)
            return _off_image_rows(positions, core_rows, deblender.method, tile=index) if core_rows.any() \
                else None
        table, _ = deblender.measure_image(
            cut,
            sources=tile_sources,
            error=cut_err,
            mask=cut_mask,
            zeropoint=zeropoint,
            pixel_scale=pixel_scale,
            detection=detection,
            seed=seed,
            progress=False,
        )
        if len(table) == 0:
            return None
        table["x"] = np.asarray(table["x"]) + xs.start
        table["y"] = np.asarray(table["y"]) + ys.start
        if positions is None:
            table["id"] = index * 10**7 + np.asarray(table["id"])
            table["group_id"] = index * 10**7 + np.asarray(table["group_id"])
        x, y = np.asarray(table["x"]), np.asarray(table["y"])
        own = (
            (np.floor(y + 0.5) >= y0)
            & (np.floor(y + 0.5) < y1)
            & (np.floor(x + 0.5) >= x0)
            & (np.floor(x + 0.5) < x1)
        )
        table = table[own]
        table["tile"] = np.full(len(table), index)
        return table

    tasks = [dask.delayed(one_tile)(i, core) for i, core in enumerate(cores)]
    if isinstance(client, str):  # a scheduler's address: a client of this run's own, closed after it
        from dask.distributed import Client

        try:
            own = Client(client, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(f"cannot connect to the Dask scheduler at {client!r}: {exc}") from exc
        with own:
            parts = own.gather(own.compute(tasks))
    elif client is not None:
        parts = client.gather(client.compute(tasks))
    else:
        import warnings

        # each tile's measurement warns about its own cutout: said once per kind, with how many tiles said it
        with warnings.catch_warnings(record=True) as said, _progress(progress, len(tasks)):
            warnings.simplefilter("always")
            parts = dask.compute(*tasks, scheduler="threads")
        _say_once(said, len(tasks))
    parts = [p for p in parts if p is not None]
    if positions is not None and not on_image.all():
        parts.append(_off_image_rows(positions, ~on_image, deblender.method))
    if not parts:  # nothing found: an empty table with the columns and notes of a full one
        from .images import ImageData, Sources, _image_table

        if positions is None:
            import warnings

            warnings.warn(
                f"photutils found no source in any of the {len(tasks)} tiles of the mosaic "
                f"({image.shape[1]} x {image.shape[0]} px): nothing was measured. Check that error= is the "
                "mosaic's rms (not a variance or a weight), or pass sources= (a catalogue)",
                AstroDeblendWarning, stacklevel=3)

        empty = Sources.none((0, 0), "none")
        table = _image_table(
            empty,
            ImageData(np.zeros((1, 1)), np.zeros((1, 1), bool), 1.0),
            np.zeros(0),
            np.zeros(0),
            np.zeros(0, np.int32),
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            deblender.method,
            noise_err=np.zeros(0),
        )
        table["tile"] = np.zeros(0, np.int64)
    else:
        table = vstack(parts, metadata_conflicts="silent")
    if positions is None:
        table.sort("id")
    else:  # the catalogue's own order, as the in-memory run keeps it
        ids = positions[0]
        sorter = np.argsort(ids, kind="stable")
        row = sorter[np.searchsorted(ids, np.asarray(table["id"]), sorter=sorter)]
        table = table[np.argsort(row, kind="stable")]
    if unit is not None:
        for name in ("flux", "flux_err", "flux_err_noise"):  # summed pixels; a surface brightness: x area
            table[name] = table[name] * factor
            table[name].unit = flux_unit
        if "zeropoint_AB" in table.meta:  # the cutouts' zero point was their pixel sums': now the fluxes'
            table.meta["zeropoint_AB"] = float(table.meta["zeropoint_AB"]) + 2.5 * np.log10(factor)
    if wcs is not None:  # where the in-memory table has it, after x and y
        sky = wcs.celestial.pixel_to_world(np.asarray(table["x"]), np.asarray(table["y"]))
        table.add_column(sky, name="sky_centroid", index=table.colnames.index("y") + 1)
    table.meta.update(
        tiles=len(cores),
        tile_size=int(tile_size),
        margin=int(margin),
        error="given" if error is not None else f"estimated once from the mosaic ({err:.4g})",
    )
    if kept is not None:
        table.meta["tiles_resumed"] = kept.resumed
    return table


def _digest(*arrays):
    import hashlib

    digest = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(str((a.dtype.str, a.shape)).encode())
        digest.update(a.tobytes())
    return digest.hexdigest()[:16]


def _fingerprint(reader, sample):
    """What names a mosaic or map: its file (path, size, time of change) or, in memory, a digest of the
    subsample read from it."""
    if reader.path is not None:
        info = os.stat(reader.path)
        return {"path": os.path.abspath(reader.path), "hdu": str(reader.hdu), "bytes": info.st_size,
                "mtime_ns": info.st_mtime_ns}
    return {"array": _digest(np.asarray(sample, np.float64)), "shape": list(reader.shape)}


class _Kept:
    """The finished tiles of a run, one ECSV file each in a checkpoint folder (see `measure_tiled`)."""

    def __init__(self, folder, identity):
        import json
        from pathlib import Path

        from ._io import atomic_write_text, make_folders

        self.folder = Path(folder).resolve()  # the same folder for workers that run elsewhere
        if self.folder.exists() and not self.folder.is_dir():
            raise InputError(f"checkpoint={os.fspath(folder)!r} is a file; give a folder")
        make_folders(self.folder)
        text = json.dumps(identity, sort_keys=True, default=repr)
        record = self.folder / "run.json"
        if record.exists() and record.read_text() != text:
            raise InputError(
                f"the checkpoint folder {self.folder} holds the tiles of another run (another mosaic, maps, "
                "sources, method or tiling): remove it to start again, or give another folder")
        if not record.exists():
            atomic_write_text(record, text)
        self.resumed = 0

    def _path(self, index, suffix):
        return self.folder / f"tile_{index:06d}.{suffix}"

    def has(self, index):
        return self._path(index, "ecsv").exists() or self._path(index, "none").exists()

    def read(self, index):
        from astropy.table import QTable

        if self._path(index, "none").exists():
            return None
        try:
            return QTable.read(self._path(index, "ecsv"), format="ascii.ecsv")
        except Exception as exc:  # written atomically, so only a file changed by hand gets here
            raise DataFileError(
                f"tile {index} of the checkpoint folder {self.folder} cannot be read ({exc}); remove that "
                "file to measure the tile again") from exc

    def write(self, index, part):
        from ._io import atomic_write, atomic_write_text

        if part is None:
            atomic_write_text(self._path(index, "none"), "")
        else:
            atomic_write(self._path(index, "ecsv"), lambda tmp: part.write(tmp, format="ascii.ecsv"))


class _Shape:
    """Just a shape, for the position checks of `astro_deblend.images`."""

    def __init__(self, shape):
        self.shape = shape


def _check_client(client):
    """A ``client`` of `measure_tiled`: None, a scheduler address, or something that computes like a
    `dask.distributed.Client`."""
    if client is None or isinstance(client, str) and client.strip():
        return
    if not (hasattr(client, "compute") and hasattr(client, "gather")) or isinstance(client, str):
        raise InputTypeError(
            "client must be a dask.distributed.Client, a scheduler address (e.g. 'tcp://host:8786') or None "
            f"(the local threaded scheduler); got {client!r}")


def _off_image_rows(positions, off, method, tile=-1):
    """Rows of the sources ``off`` (off the mosaic, or in a cutout without data): flux masked, flags 1 and
    32."""
    from astropy.table import MaskedColumn, QTable

    from .flags import Flag

    ids, x, y = positions
    n = int(off.sum())
    table = QTable({"id": ids[off], "x": x[off], "y": y[off]})
    for name in ("flux", "flux_err", "flux_err_noise"):
        table[name] = MaskedColumn(np.zeros(n), mask=np.ones(n, bool))
    table["flag"] = np.full(n, int(Flag.NOT_DETECTED | Flag.INCOMPLETE), np.int32)
    table["group_id"] = ids[off]
    table["group_size"] = np.ones(n, np.int64)
    table["method"] = np.full(n, method)
    table["tile"] = np.full(n, tile)
    return table


def _say_once(said, n_tiles):
    """Warn once per kind of the warnings ``said`` by the tiles (kinds: the message without its numbers)."""
    import re
    import warnings

    kinds = {}
    for w in said:
        key = (w.category, re.sub(r"[-+]?\d[\d.e+-]*", "#", str(w.message)))
        kinds.setdefault(key, []).append(w)
    from .images import NO_DETECTION

    for found in kinds.values():
        first = found[0]
        text = str(first.message)
        # empty sky in a tile is no news (the whole run's emptiness is said once, at its end); and what
        # photutils and astropy say inside detect(), whose own filters other tiles' threads may have undone
        # (warning filters are not thread-safe), is said there in the package's words
        if text.startswith(NO_DETECTION) or "nan_treatment" in text or \
                type(first.message).__name__ == "NoDetectionsWarning":
            continue
        if n_tiles > 1:
            text += (f" [said by {len(found)} tile(s) of {n_tiles}; counts are each tile's, its margin "
                     "included]")
        warnings.warn_explicit(text, first.category, first.filename, first.lineno)


class _progress:
    """A Dask progress bar while tasks run (when asked and there are several tiles)."""

    def __init__(self, on, n):
        self.bar = None
        if on and n > 1:
            from dask.diagnostics import ProgressBar

            self.bar = ProgressBar()

    def __enter__(self):
        if self.bar is not None:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)
        return False
