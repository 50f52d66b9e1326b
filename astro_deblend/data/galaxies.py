"""A sample of isolated galaxy stamps: the parent set from which blends are made.

`GalaxySample` holds the stamps, their masks and catalogue, whether simulated (`simulate_galaxies`) or
read from the public CANDELS set (`read_candels`), and owns its HDF5 save/load.
"""

import hashlib
import json
import numbers
import os
from dataclasses import dataclass, field

import h5py
import numpy as np
from astropy.table import Table

from .._io import atomic_write
from ..conventions import DEFAULT_PIXEL_SCALE, DEFAULT_ZEROPOINT
from ..exceptions import DataFileError, InputError

__all__ = ["GalaxySample"]

_CATALOG_COLUMNS = ("id", "mag", "radius", "galtype", "flux", "flux_stamp", "flux_auto")


@dataclass(frozen=True, eq=False)
class GalaxySample:
    """Isolated galaxy stamps with their masks and catalogue.

    Parameters
    ----------
    images : ndarray, shape (N, ny, nx), float32
        Observed (noisy) stamps, galaxy centred on pixel (ny // 2, nx // 2), in image units (electron/s
        by default).
    segmaps : ndarray, shape (N, ny, nx), uint8
        1 on the pixels SExtractor (sep) assigns to the galaxy, 0 elsewhere.
    catalog : `~astropy.table.Table`
        One row per stamp with ``id``, ``mag`` (AB), ``radius`` (Sersic semi-major axis, px), ``galtype``,
        ``flux`` (true total flux, image units), ``flux_stamp`` (true flux inside the stamp; equal to
        ``flux`` for observed stamps, where only the catalogue magnitude is known) and ``flux_auto``
        (SExtractor FLUX_AUTO measured by sep on the noisy stamp: the paper's definition of truth).
    noiseless : ndarray, shape (N, ny, nx), float32, or None
        Noise-free stamps (simulations only).
    pixel_scale : float
        Arcsec per pixel (0.06 for CANDELS F160W mosaics).
    zeropoint : float
        AB magnitude of a source of unit flux.
    noise_sigma : float or None
        Standard deviation of the background noise per pixel, in image units, when it is known.
    config : dict
        The configuration that produced the sample (saved with it).
    """

    images: np.ndarray
    segmaps: np.ndarray
    catalog: Table
    noiseless: np.ndarray | None = None
    pixel_scale: float = DEFAULT_PIXEL_SCALE
    zeropoint: float = DEFAULT_ZEROPOINT
    noise_sigma: float | None = None
    config: dict = field(default_factory=dict)

    def __post_init__(self):
        # the blends' noise, magnitudes and sizes follow from these: a NaN noise made every blend NaN
        for name, allowed, want in (("pixel_scale", lambda v: v > 0, "a positive number (arcsec per pixel)"),
                                    ("zeropoint", lambda v: True, "a finite number (AB magnitude)"),
                                    ("noise_sigma", lambda v: v >= 0, "None or a number >= 0 (image units)")):
            value = getattr(self, name)
            if value is None and name == "noise_sigma":
                continue
            number = isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)
            if not (number and np.isfinite(value) and allowed(value)):
                raise InputError(f"GalaxySample.{name} must be {want}; got {value!r}", value=value)
        n = len(self.catalog)
        for name in ("images", "segmaps", "noiseless"):
            arr = getattr(self, name)
            if arr is None:
                continue
            if arr.ndim != 3:
                raise InputError(f"GalaxySample.{name} must have shape (N, ny, nx); got {arr.shape}")
            if arr.shape[0] != n:
                raise InputError(
                    f"GalaxySample.{name} holds {arr.shape[0]} stamps but the catalogue has {n} rows; "
                    "they must describe the same galaxies in the same order"
                )
            if arr.shape[1:] != self.images.shape[1:]:
                raise InputError(
                    f"GalaxySample.{name} stamps are {arr.shape[1:]}, images are {self.images.shape[1:]}"
                )
        missing = [c for c in _CATALOG_COLUMNS if c not in self.catalog.colnames]
        if missing:
            raise InputError(f"GalaxySample.catalog lacks the columns {missing}")
        for name in ("images", "noiseless"):
            arr = getattr(self, name)
            if arr is not None and not np.all(np.isfinite(arr)):
                raise InputError(f"GalaxySample.{name} contains NaN or infinite pixels")
        # the pairing draws distances in units of the radii (a NaN radius never satisfies it: it hung)
        for name in ("mag", "radius", "flux", "flux_stamp"):
            try:
                values = np.asarray(self.catalog[name], dtype=np.float64)
            except (TypeError, ValueError):
                raise InputError(f"GalaxySample.catalog['{name}'] must hold numbers") from None
            bad = ~np.isfinite(values) | ((values <= 0) if name == "radius" else False)
            if bad.any():
                want = "finite and positive" if name == "radius" else "finite"
                raise InputError(f"GalaxySample.catalog['{name}'] must be {want}; it is not for rows "
                                 f"{np.flatnonzero(bad)[:10].tolist()}", value=np.flatnonzero(bad))

    def __len__(self):
        return len(self.catalog)

    @property
    def stamp_shape(self):
        """(ny, nx) of the stamps in pixels."""
        return self.images.shape[1:]

    def write(self, path, *, overwrite=False):
        """Write the sample to an HDF5 file (atomically: temporary name, then rename)."""
        def _write(tmp):
            with h5py.File(tmp, "w") as f:
                _write_sample_group(f.create_group("galaxies"), self)

        atomic_write(path, _write, overwrite=overwrite)

    @classmethod
    def read(cls, path):
        """Read a sample written by `write`."""
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"galaxy sample file {path} does not exist")
        try:
            with h5py.File(path, "r") as f:
                return _read_sample_group(f["galaxies"], path)
        except DataFileError:  # corrupted or altered: said as such
            raise
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise DataFileError(
                f"{path} is not a galaxy sample written by astro_deblend ({exc}); regenerate it with "
                "simulate_galaxies(...).write(path)"
            ) from exc


def _write_sample_group(group, sample):
    ny, nx = sample.stamp_shape
    chunks = (min(64, max(1, len(sample))), ny, nx)
    group.create_dataset("images", data=sample.images, chunks=chunks)
    group.create_dataset("segmaps", data=sample.segmaps, chunks=chunks, compression="gzip")
    if sample.noiseless is not None:
        group.create_dataset("noiseless", data=sample.noiseless, chunks=chunks)
    cat = sample.catalog
    for name in cat.colnames:
        data = np.asarray(cat[name])
        if data.dtype.kind == "U":
            data = data.astype("S")
        group.create_dataset(f"catalog/{name}", data=data)
    group.attrs["catalog_columns"] = json.dumps(cat.colnames)
    group.attrs["pixel_scale"] = sample.pixel_scale
    group.attrs["zeropoint"] = sample.zeropoint
    group.attrs["noise_sigma"] = np.nan if sample.noise_sigma is None else sample.noise_sigma
    group.attrs["config"] = json.dumps(sample.config, sort_keys=True)
    seal(group)


def content_digest(group):
    """SHA-256 of every dataset under an HDF5 group (names and bytes, in name order): catches corruption."""
    h = hashlib.sha256()

    def add(name, obj):
        if isinstance(obj, h5py.Dataset):
            h.update(name.encode())
            h.update(np.ascontiguousarray(obj[()]).tobytes())

    group.visititems(add)
    return h.hexdigest()


#: The attributes that hold digests, left out of the digest of the attributes.
_DIGEST_ATTRS = ("sha256", "attrs_sha256")


def attrs_digest(group):
    """SHA-256 of a group's own attributes (names, types and bytes, in name order; the digests left out): the
    pixel scale, zero point and configuration that `content_digest` does not cover."""
    h = hashlib.sha256()
    for name in sorted(set(group.attrs) - set(_DIGEST_ATTRS)):
        value = np.asarray(group.attrs[name])
        # as text (kind and values): the same on any byte order, and no object addresses
        h.update(json.dumps([name, value.dtype.kind, value.tolist()]).encode())
    return h.hexdigest()


def seal(group):
    """Write the digests of a group's datasets and of its attributes (last: after every attribute)."""
    group.attrs["sha256"] = content_digest(group)
    group.attrs["attrs_sha256"] = attrs_digest(group)


def check_digest(group, path):
    """Raise `~astro_deblend.exceptions.DataFileError` if a group's digests do not match its data or its
    attributes (files written before the attributes had a digest are checked on their data alone)."""
    recorded = group.attrs.get("sha256")
    if recorded is not None and content_digest(group) != recorded:
        raise DataFileError(
            f"{path}: the data of '{group.name}' do not match the checksum written with them (the file is "
            "corrupted); make it again"
        )
    recorded = group.attrs.get("attrs_sha256")
    if recorded is not None and attrs_digest(group) != recorded:
        raise DataFileError(
            f"{path}: the attributes of '{group.name}' (pixel scale, zero point, configuration) do not match "
            "the checksum written with them (the file was altered or is corrupted); make it again"
        )


def _read_sample_group(group, path=""):
    check_digest(group, path)
    cat = Table()
    for name in json.loads(group.attrs["catalog_columns"]):
        data = group[f"catalog/{name}"][()]
        cat[name] = data.astype("U") if data.dtype.kind == "S" else data
    sigma = float(group.attrs["noise_sigma"])
    return GalaxySample(
        images=group["images"][()],
        segmaps=group["segmaps"][()],
        catalog=cat,
        noiseless=group["noiseless"][()] if "noiseless" in group else None,
        pixel_scale=float(group.attrs["pixel_scale"]),
        zeropoint=float(group.attrs["zeropoint"]),
        noise_sigma=None if np.isnan(sigma) else sigma,
        config=json.loads(group.attrs["config"]),
    )
