"""Atomic file writing: an output appears under its final name only once it is complete."""

import os
import secrets
from pathlib import Path

from .exceptions import InputError

__all__ = []


def make_folders(folder):
    """Create ``folder`` and its missing parents; return the folders created, innermost first."""
    folder = Path(os.path.abspath(os.fspath(folder)))
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    if not folder.is_dir():  # said with the user's path, not the temporary file's that would fail in it
        raise NotADirectoryError(f"{folder} is a file, not a folder: give an output path in a folder")
    for made in reversed(missing):
        made.mkdir(exist_ok=True)
    return missing


def remove_empty(folders):
    """Remove the folders of `make_folders` again, innermost first; those no longer empty stay."""
    for folder in folders:
        try:
            os.rmdir(folder)
        except OSError:
            continue


def atomic_write(path, write, *, overwrite=True):
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then move it onto ``path``.

    Readers never see a half-written file and an interrupted write leaves nothing behind.

    Parameters
    ----------
    path : str or `pathlib.Path`
        Final name. Its folder is created if needed.
    write : callable
        Writes the complete content to the path it is given (pass the format explicitly: the
        temporary name ends in ``.tmp``).
    overwrite : bool, optional
        Replace an existing file [default: True]; False raises `FileExistsError` instead.

    Returns
    -------
    path : `pathlib.Path`
    """
    path = Path(path)
    if path.is_dir():  # said with the user's name, not the temporary one that os.replace would name
        raise IsADirectoryError(f"{path} is a folder; give a file name for this output")
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    made = make_folders(path.parent)
    # same folder, hence same file system: os.replace is atomic
    tmp = path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        remove_empty(made)
        raise
    return path


def check_writable(path):
    """Raise `PermissionError` (or `NotADirectoryError`) now if ``path`` could not be written later.

    The nearest existing folder on the way to ``path`` must be a folder in which a file can be made (tried
    with a temporary file, removed at once): a long job then fails before its work, not after.
    """
    folder = Path(os.path.abspath(os.fspath(path))).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise NotADirectoryError(f"cannot write {path}: {folder} is a file, not a folder")
    probe = folder / f".astro_deblend-write-check.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    try:
        probe.touch(exist_ok=False)
    except OSError as exc:
        raise PermissionError(f"cannot write {path}: {folder} is not writable ({exc.strerror})") from None
    probe.unlink()


def atomic_write_text(path, text, *, overwrite=True):
    """Write ``text`` (UTF-8) to ``path`` atomically."""

    def _write(tmp):
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)

    return atomic_write(path, _write, overwrite=overwrite)


def atomic_write_all(writers, *, overwrite=True):
    """Write several files all or nothing: ``writers`` maps each final path to ``write(tmp_path)``.

    Every file is first written under a temporary name beside its final one; only when all are complete
    are they moved onto their names. A failure (or an interruption) before that leaves no output behind.

    Returns
    -------
    paths : list of `pathlib.Path`
    """
    items = [(Path(p), w) for p, w in writers.items()]
    finals = [os.path.realpath(p) for p, _ in items]
    if len(set(finals)) != len(finals):
        raise InputError(f"two outputs share one file name: {[str(p) for p, _ in items]}; give each its own")
    for path, _ in items:
        if path.is_dir():
            raise IsADirectoryError(f"{path} is a folder; give a file name for this output")
        if not overwrite and path.exists():
            raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    tmps, backups, placed, made = [], {}, [], []
    try:
        for path, write in items:
            made += make_folders(path.parent)
            tmp = path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
            tmps.append(tmp)
            try:
                write(tmp)
            except OSError as exc:  # name the output, not its temporary name
                raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from exc
        # all complete: put them in place, keeping the files they replace until every one is placed
        for (path, _), tmp in zip(items, tmps, strict=True):
            if path.exists():
                backup = path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.bak"
                backups[path] = backup  # named before the move: an interruption between the two is undone too
                os.replace(path, backup)
            os.replace(tmp, path)
            placed.append(path)
    except BaseException:
        for path in placed:  # roll back: no mix of new and old outputs
            if os.path.exists(path):
                os.remove(path)
        for path, backup in backups.items():
            if os.path.exists(backup):
                os.replace(backup, path)
        backups = {}
        for tmp in tmps:  # before the folders they sit in
            if os.path.exists(tmp):
                os.remove(tmp)
        remove_empty(sorted(made, key=lambda f: len(f.parts), reverse=True))
        raise
    finally:
        for tmp in tmps:
            if os.path.exists(tmp):
                os.remove(tmp)
        for backup in backups.values():
            if os.path.exists(backup):
                os.remove(backup)
    return [p for p, _ in items]
