"""Saved networks on disk: a folder with ``config.json`` (what the network is, how it was trained, a
checksum of its weights) and ``model.weights.h5`` (the Keras weights; no pickles, no code).

``config.json`` carries SHA-256 digests: ``weights_sha256`` of the weights file, and
``model_config_sha256`` of the network's name and model config (``model``, ``model_config``), so that a
hand-edited ``stamp_size`` or stride, which changes no weight shape and would otherwise load silently, is
caught on reading; and ``domain_sha256`` of the training domain (``provenance['domain']``), which sets the
limits of the out-of-domain flag, so that widening it by hand is caught too. Saves made before a digest
existed load without that check.

The bundled weights are the same two files renamed ``astro_deblend/weights/<model>.json`` and
``astro_deblend/weights/<model>.weights.h5``.
"""

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import keras

from .._io import atomic_write_all
from ..exceptions import DataFileError
from . import build_model
from .normalization import NORMALIZATION

__all__ = ["KINDS", "WEIGHTS_DIR", "FORMAT_VERSION", "read_record", "bundled", "file_sha256",
           "model_config_sha256", "domain_sha256", "write_network"]

#: Networks a NeuralDeblender can run (the U-Net alone measures no flux).
KINDS = ("fracnet", "blend2flux", "blend2mask2flux")
#: Folder of the bundled weights.
WEIGHTS_DIR = Path(__file__).parents[1] / "weights"
#: Version of the save format.
FORMAT_VERSION = 1


def write_network(path, model, config, provenance, *, overwrite=False, extra=None):
    """Write a network to a folder, ``model.weights.h5`` and ``config.json``, both or neither.

    Parameters
    ----------
    path : str or `pathlib.Path`
        Folder to create.
    model : `keras.Model`
        The network.
    config : dataclass
        Its model config (`astro_deblend.models`).
    provenance : dict
        Where the weights come from and how they were trained (JSON-serialisable).
    overwrite : bool, optional
        Replace the files of an existing save [default: False].
    extra : dict, optional
        Further entries of ``config.json`` (e.g. the calibrated error model).
    """
    path = Path(path)
    if (path / "config.json").exists() and not overwrite:
        raise FileExistsError(f"{path} already holds a saved network; pass overwrite=True")
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path} is a file; a saved network is a folder: give a folder name")
    path.mkdir(parents=True, exist_ok=True)
    record = {
        "format_version": FORMAT_VERSION,
        "model": type(config).kind,
        "model_config": dataclasses.asdict(config),
        "model_config_sha256": model_config_sha256(type(config).kind, dataclasses.asdict(config)),
        "domain_sha256": domain_sha256((provenance or {}).get("domain")),
        "normalization": NORMALIZATION,
        "provenance": provenance,
        "keras_version": keras.__version__,
        **(extra or {}),
    }
    # both files or neither: an interruption leaves the previous save as it was (the weights replaced before
    # the record lost it), and a folder with a config.json is always complete
    tmp_weights = path / f".model-{os.getpid()}.weights.h5"  # Keras wants the .weights.h5 suffix
    try:
        # the network's weights alone: a copy that was never compiled holds no optimizer state
        # (which would triple the file and means nothing to a user)
        bare = build_model(config)
        bare.set_weights(model.get_weights())
        bare.save_weights(tmp_weights, overwrite=True)
        record["weights_sha256"] = file_sha256(tmp_weights)
        text = json.dumps(record, indent=2)
        atomic_write_all({path / "model.weights.h5": lambda tmp: os.replace(tmp_weights, tmp),
                          path / "config.json": lambda tmp: Path(tmp).write_text(text, encoding="utf-8")})
    finally:
        if tmp_weights.exists():
            tmp_weights.unlink()


def read_record(path):
    if not path.is_file():
        raise FileNotFoundError(
            f"no {path.name} in {path.parent}; expected a folder written by NeuralDeblender.save"
        )
    try:
        record = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataFileError(f"{path} is not a readable JSON record of a saved network ({exc})") from exc
    if not isinstance(record, dict) or type(record.get("format_version")) is not int \
            or record.get("format_version") != FORMAT_VERSION \
            or record.get("model") not in KINDS or not isinstance(record.get("model_config"), dict):
        got = record if not isinstance(record, dict) else {k: record.get(k) for k in ("format_version",
                                                                                       "model")}
        raise DataFileError(
            f"{path} is not a NeuralDeblender save of format {FORMAT_VERSION} with a 'model' in "
            f"{list(KINDS)} and a 'model_config' (got {got!r}); point to a folder written by "
            "NeuralDeblender.save"
        )
    _check_fields(path, record)
    digest = record.get("model_config_sha256")
    if digest is not None and digest != model_config_sha256(record["model"], record["model_config"]):
        raise DataFileError(
            f"{path}: 'model' and 'model_config' ({record['model']}, {record['model_config']}) no longer "
            "match the network the weights were saved with (its model_config_sha256 differs): the record was "
            "edited. Restore the config.json written by NeuralDeblender.save; to run the network on another "
            "stamp size or architecture, train one with fit()"
        )
    digest = record.get("domain_sha256")
    if digest is not None and digest != domain_sha256(record["provenance"].get("domain")):
        raise DataFileError(
            f"{path}: the training domain in 'provenance' no longer matches the one the network was saved "
            "with (its domain_sha256 differs): the record was edited, which would move the limits of the "
            "out-of-domain flag (8). Restore the config.json written by NeuralDeblender.save"
        )
    name = record["normalization"].get("name")
    if name != NORMALIZATION["name"]:
        raise DataFileError(
            f"{path} was trained with input normalisation {name!r} but this version of "
            f"astro_deblend uses {NORMALIZATION['name']!r}; retrain the network"
        )
    return record


#: The digests of a record: present in every save of this format (older saves lack them, and load unchecked).
_DIGESTS = ("model_config_sha256", "domain_sha256", "weights_sha256")


def _check_fields(path, record):
    """The types of a record's fields, checked once before the network is built: a damaged field is a
    `DataFileError` that names it, not a traceback later in ``measure``."""
    def damaged(what):
        raise DataFileError(f"{path}: {what}; restore the config.json written by NeuralDeblender.save")

    for key in _DIGESTS:
        value = record.get(key, "")
        if key in record and not (isinstance(value, str) and len(value) == 64
                                  and all(c in "0123456789abcdef" for c in value)):
            damaged(f"{key} is {value!r}, not a SHA-256 digest (a removed digest would turn its check off)")
    missing = [key for key in _DIGESTS if key not in record]
    if missing:
        import warnings

        from ..exceptions import AstroDeblendWarning

        warnings.warn(f"{path} has no {', '.join(missing)}: a save older than those checks, or an edited "
                      "one; its weights and architecture cannot be checked against it. Save the network "
                      "again",
                      AstroDeblendWarning, stacklevel=4)
    if not isinstance(record.get("provenance", {}), dict):
        damaged(f"'provenance' is {type(record['provenance']).__name__}, not a dict")
    record.setdefault("provenance", {})
    stage, depth = record["provenance"], 0
    while stage is not None:  # the fine-tunes' chain: each stage a dict, its parts dicts (read by measure)
        where = "'provenance'" + " 'previous'" * depth
        for key in ("training", "previous", "notes", "domain"):
            if stage.get(key) is not None and not isinstance(stage[key], dict):
                damaged(f"{where} '{key}' is {stage[key]!r}, not a dict")
        if stage.get("weights") is not None and not isinstance(stage["weights"], str):
            damaged(f"{where} 'weights' is {stage['weights']!r}, not a name")
        stage, depth = stage.get("previous"), depth + 1
    if not isinstance(record.get("normalization"), dict):
        damaged(f"'normalization' is {record.get('normalization')!r}, not a dict")
    domain = record["provenance"].get("domain")
    if domain is not None:
        if not isinstance(domain, dict):
            damaged(f"the training domain ('provenance' 'domain') is {domain!r}, not a dict")
        for key in ("noise_sigma", "total_flux", "pixel_scale_validated"):
            value = domain.get(key)
            if value is not None and not (isinstance(value, list) and len(value) == 2
                                          and all(isinstance(v, int | float) and not isinstance(v, bool)
                                                  for v in value)):
                damaged(f"the training domain's {key} is {value!r}, not a [low, high] pair of numbers")


def domain_sha256(domain):
    """SHA-256 (hex) of a network's training domain (``provenance['domain']``) as canonical JSON."""
    canonical = json.dumps(domain, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def model_config_sha256(model, model_config):
    """SHA-256 (hex) of a network's name and model config (the dict of ``config.json``), as canonical
    JSON: sorted keys, tuples as lists, so that it is the same before and after a JSON round trip."""
    canonical = json.dumps({"model": model, "model_config": model_config}, sort_keys=True,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def bundled(kind):
    config_file = WEIGHTS_DIR / f"{kind}.json"
    weights_file = WEIGHTS_DIR / f"{kind}.weights.h5"
    if not (config_file.is_file() and weights_file.is_file()):
        raise FileNotFoundError(
            f"no bundled weights for {kind} in this installation ({config_file.name} and "
            f"{weights_file.name} in {WEIGHTS_DIR}). Train a network with "
            f"NeuralDeblender({kind!r}, weights=None).fit(blends, output_dir=...), or pass "
            "weights=<folder written by NeuralDeblender.save>"
        )
    return read_record(config_file), weights_file


