"""Fingerprints of the files a model learnt from, so that a loaded model re-reads only those.

A model directory's config.json names its data by path (``task_options.data``, ``.test``), and
``evaluate``, ``forecast``, ``detect`` and ``--resume`` read that path again. But a config.json
is only a file: one from elsewhere may name any path (``/etc/passwd``), and what a reader says
about a file it cannot parse shows some of it. So a path that comes from config.json, not from
the command line, is read only while it still is the very data the model was trained on:
training records the size and SHA-256 of each data file (of a directory: every visible file in
it, by relative path), and before a loaded or resumed model parses that path again, its sizes
are compared (no byte read), then its hashes.

    encoding["data_files"] = record_data(opts, is_built_in)   # at training: {"data": {"size", "sha256"}}
    check_data(opts, stored.get("data_files"), is_built_in)    # a loaded or resumed model, before reading

Built-in data sets (``shakespeare``, ``polarity``, ``co2``, ``ucr:NAME``, ``bible`` …) are not
paths: ``is_built_in`` (each task's) tells them apart.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..files import open_regular
from .corpora import CORPUS_LIMIT, visible_files
from .errors import DataError

_CHUNK = 2**20


def _sha256(path: Path, size: int) -> str:
    """The SHA-256 of a regular file's first ``size`` bytes (its whole content when unchanged)."""
    fd = open_regular(path, "data file", DataError)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "rb", closefd=False) as f:
            left = size + 1  # one more: a file that grew no longer matches
            while left > 0 and (chunk := f.read(min(_CHUNK, left))):
                digest.update(chunk)
                left -= len(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest()


def fingerprint(path) -> dict:
    """``{"size", "sha256"}`` of a file; ``{"files": [[relative path, size, sha256], …]}`` of a
    directory (its visible files, sorted)."""
    path = Path(path)
    if path.is_dir():
        return {"files": [[p.relative_to(path).as_posix(), *fingerprint(p).values()] for p in visible_files(path)]}
    size = os.stat(path).st_size
    return {"size": size, "sha256": _sha256(path, size)}


def data_paths(options, is_built_in=lambda spec: False) -> dict[str, str]:
    """``{option: path}`` of a task's data options (``data``, ``test``) that name files: neither
    empty nor a built-in data set."""
    specs = {name: getattr(options, name, "") for name in ("data", "test")}
    return {name: spec for name, spec in specs.items() if spec and not is_built_in(spec)}


def record_data(options, is_built_in=lambda spec: False) -> dict[str, dict]:
    """``{option: fingerprint}`` of the files a task's options name, for its config.json."""
    return {option: fingerprint(path) for option, path in data_paths(options, is_built_in).items()}


def check_data(options, recorded: dict | None, is_built_in=lambda spec: False) -> None:
    """``check_fingerprints`` of the files a loaded or resumed model's options name."""
    check_fingerprints(data_paths(options, is_built_in), recorded)


def _well_formed(entry) -> bool:
    """Whether ``entry`` is a fingerprint as ``fingerprint`` writes it (config.json may be edited)."""
    if not isinstance(entry, dict):
        return False
    if "files" in entry:
        return isinstance(entry["files"], list) and all(
            isinstance(f, list) and len(f) == 3 and isinstance(f[0], str) and type(f[1]) is int and isinstance(f[2], str)
            for f in entry["files"])
    return type(entry.get("size")) is int and isinstance(entry.get("sha256"), str)


def _difference(path: Path, recorded: dict) -> str | None:
    """Why ``path`` is not the data ``recorded`` describes, or None when it is. Sizes first (from
    ``stat``, no byte read), so another file is refused without reading it; then the hashes."""
    if "files" in recorded:
        if not path.is_dir():
            return "it is not a directory"
        expected = [(name, size) for name, size, _ in recorded["files"]]
        found = visible_files(path, most=len(expected))  # a forged fingerprint of / stops after a few files
        listed = [(p.relative_to(path).as_posix(), p.stat().st_size) for p in found]
        if listed != expected:
            return "its files or their sizes differ"
        hashes = [_sha256(p, size) for p, (_, size) in zip(found, listed)]
        return None if hashes == [h for _, _, h in recorded["files"]] else "the content of its files differs"
    try:
        size = os.stat(path).st_size
    except OSError:
        return "it cannot be found"
    if path.is_dir() or size != recorded["size"]:
        return f"its size differs: {size:,} bytes, trained on {recorded['size']:,}"
    if size > CORPUS_LIMIT:  # a forged size must not make rnnkit hash a huge file
        return "it is larger than any data file rnnkit reads"
    return None if _sha256(path, size) == recorded["sha256"] else "its content differs (SHA-256)"


def check_fingerprints(paths: dict[str, str], recorded: dict | None) -> None:
    """Refuse, before anything is parsed, each of ``paths`` (``{option: path}``, taken from a
    model's config.json) that is not the data ``recorded`` (``record_data`` at training) describes:
    a DataError naming the path. A model without fingerprints (older) has its paths refused."""
    for option, path in paths.items():
        what = "data" if option == "data" else f"--{option.replace('_', '-')} file"
        advice = (f"pass --data FILE to evaluate on a file of your choice; to resume training, restore the {what} "
                  "the run started with")
        entry = recorded.get(option) if isinstance(recorded, dict) else None
        if not _well_formed(entry):
            raise DataError(f"config.json names {path} as its {what}, but records no fingerprint of the file it was "
                            f"trained on (an older rnnkit wrote it, or it was edited), so it is not read; {advice}")
        why = _difference(Path(path), entry)
        if why:
            raise DataError(f"config.json names {path} as its {what}, but that is not the file this model was "
                            f"trained on ({why}); {advice}")


__all__ = ["check_data", "check_fingerprints", "data_paths", "fingerprint", "record_data"]
