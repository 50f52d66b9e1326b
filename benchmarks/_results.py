"""What every benchmark script writes: its result as JSON, with the machine it ran on, atomically."""

import json
import os
import platform
import time
from pathlib import Path

from astro_deblend._io import atomic_write_text


def write_result(path, result):
    """Write ``result`` (a dict) to ``path`` as JSON after the machine, core count, Python and date.

    The folder is created if needed; the file appears complete or not at all (temporary name, then
    rename). Returns the path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"machine": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
              "date": time.strftime("%Y-%m-%d"), **result}
    return atomic_write_text(path, json.dumps(record, indent=2))


def install_model(record_path, key, model):
    """Write an error model (`astro_deblend.uncertainty.ErrorModel`) under ``key`` of a weights record
    (a JSON file such as the bundled ``fracnet.json``), atomically, keeping the rest of the record."""
    record_path = Path(record_path)
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    record[key] = model.to_dict()
    atomic_write_text(record_path, json.dumps(record, indent=2))
    print(f"installed {key} in {record_path}")
