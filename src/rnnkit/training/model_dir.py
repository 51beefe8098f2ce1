"""The model directory: one on-disk format for every task, written atomically, read without running code.

::

    MODEL_DIR/
      config.json        task, architecture, hyperparameters, vocabulary, data, rnnkit version, metrics
      model.safetensors  the best weights by validation, under PyTorch's names
      checkpoint/        the last resumable state
        weights.safetensors    the weights at that step (and the run's arrays, ``run.…``: a classify
                               run's fold networks, all but --final refit; with --ema the averages, ``ema.…``)
        optimizer.safetensors  the optimizer's array buffers (moments, momentum buffers)
        state.json             step, epoch, data position, RNG state, ... and the optimizer's scalars
      metrics.jsonl      one JSON object per logged step
      members.safetensors  a classify ensemble's networks after the first (``member1.`` … before the names)
                         and the fold networks of --final both or folds (``fold0.`` …; folds from ``fold1.``)
      member-run/        the training of the ensemble's next network: a model directory of its own

Crash safety. Every file is written to a temporary file in the same directory, synced, and
renamed over its target, so a reader sees the old file or the new one, never a mix.
``save_model`` writes ``model.safetensors`` before ``config.json``: ``config.json`` is what
marks a directory as a model, so a crash during the first save leaves no model rather than a
config without weights. A checkpoint is several files, so it is built whole in a temporary
directory ``.checkpoint-tmp-*`` and swapped in with two renames (``checkpoint`` →
``checkpoint.old``, temporary → ``checkpoint``); whenever ``checkpoint/`` exists it is
complete, and ``load_checkpoint`` falls back to ``checkpoint.old/`` for a crash between the
renames.

One run writes a directory at a time: ``writing(directory)`` holds an OS lock (``flock`` on
``.rnnkit.lock``, released by the kernel when the process dies, even by SIGKILL), and a second
writer gets an error naming the first one's PID. ``--overwrite`` deletes only the entries
rnnkit writes (``MODEL_ENTRIES``), and only in a directory that holds nothing else.

Reading is bounded and checked: files are opened only if they are regular files
(``rnnkit.files``), each kind of file has a size limit, a safetensors header is read and
checked against the file's size before the tensors are, and the JSON files are validated
against a schema (``check_json``), so a damaged or hostile field is one error naming the file
and the field.

Loading never executes code: weights are safetensors, everything else JSON (Python's JSON,
which also writes and reads ``NaN`` and ``Infinity``). JSON turns tuples into lists and
dictionary keys into strings: keep vocabularies as lists of tokens.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import shutil
import struct
from pathlib import Path

import numpy as np
import safetensors
import safetensors.numpy

from ..files import open_regular, read_regular
from ..version import __version__

__all__ = [
    "ModelDirError",
    "MODEL_ENTRIES",
    "atomic_write_bytes",
    "atomic_write_json",
    "read_json",
    "check_json",
    "writing",
    "check_out_dir",
    "foreign_entries",
    "clear_model_dir",
    "save_weights",
    "load_weights",
    "save_model",
    "is_model_dir",
    "load_config",
    "load_model_weights",
    "save_checkpoint",
    "has_checkpoint",
    "load_checkpoint",
    "rng_state",
    "restore_rng",
    "append_metrics",
    "read_metrics",
    "rewind_metrics",
]

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CHECKPOINT = "checkpoint"
METRICS = "metrics.jsonl"
#: the version of this layout; a directory written by a later layout is refused, not misread
FORMAT = 1

#: a classify ensemble's other networks (``member1.`` … prefixed names), and the run of the one training
MEMBERS = "members.safetensors"
MEMBER_RUN = "member-run"
LOCK = ".rnnkit.lock"
_OLD_CHECKPOINT = CHECKPOINT + ".old"
_TMP_CHECKPOINT = ".checkpoint-tmp-"
#: every name rnnkit writes in a model directory (plots of the tasks' verbs included); the only
#: entries ``--overwrite`` deletes, beside temporary files (``.NAME.*.tmp``, ``.checkpoint-tmp-*``)
MODEL_ENTRIES = frozenset({CONFIG, WEIGHTS, MEMBERS, MEMBER_RUN, CHECKPOINT, _OLD_CHECKPOINT, METRICS, LOCK, "loss.png", "diagnostics",
                           "confusion.png", "detection.png", "backtest.png", "forecast.png"})
#: size limits of what a model directory holds: far above any real model, far below a hostile file
JSON_LIMIT = 256 * 2**20
WEIGHTS_LIMIT = 16 * 2**30
SAFETENSORS_HEADER_LIMIT = 100 * 2**20  # safetensors' own limit
METRICS_LIMIT = 2**30
_RNG_KINDS = ("PCG64", "PCG64DXSM")  # their states are plain integers, so JSON holds them exactly
#: the JSON schema of ``rng_state``: what ``restore_rng`` accepts (128-bit state and increment)
_UINT128 = {"type": "integer", "minimum": 0, "maximum": 2**128 - 1}
RNG_SCHEMA = {"type": "object", "required": ["bit_generator", "state", "has_uint32", "uinteger"],
              "properties": {"bit_generator": {"enum": list(_RNG_KINDS)},
                             "state": {"type": "object", "required": ["state", "inc"],
                                       "properties": {"state": _UINT128, "inc": _UINT128}},
                             "has_uint32": {"enum": [0, 1]}, "uinteger": {"type": "integer", "minimum": 0,
                                                                         "maximum": 2**32 - 1}}}


class ModelDirError(ValueError):
    """A model directory is missing, damaged or of another task; the message says what to do."""


# ---- atomic writes ------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a directory; the rename still happened
        pass
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes) -> None:
    """Create ``path`` (it must not exist) with ``data`` on disk before returning."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_bytes(path, data: bytes) -> None:
    """Replace ``path`` by ``data`` so that a crash leaves the old file or the new one, whole.

    The bytes go to a hidden temporary file in the same directory, are synced, and the file
    is renamed over ``path``; the directory is synced so that the rename survives power loss.
    Temporary files left by a killed earlier write of the same target are removed first.
    """
    path = Path(path)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        _write_synced(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _dumps(obj, what: str, indent: int | None = 2) -> str:
    """JSON text of ``obj``; NumPy scalars and arrays become numbers and lists."""
    try:
        return json.dumps(obj, indent=indent, ensure_ascii=False, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what}: cannot be written as JSON ({exc})") from None


def atomic_write_json(path, obj) -> None:
    """Write ``obj`` as indented UTF-8 JSON, atomically (see ``atomic_write_bytes``)."""
    atomic_write_bytes(path, (_dumps(obj, Path(path).name) + "\n").encode("utf-8"))


# ---- weights ----------------------------------------------------------------------------


def _safetensors_bytes(arrays: dict, what: str, metadata: dict[str, str] | None = None) -> bytes:
    if not isinstance(arrays, dict):
        raise TypeError(f"{what}: expected a dict of name -> array, got {type(arrays).__name__}")
    tensors = {}
    for name, arr in arrays.items():
        if not isinstance(name, str):
            raise TypeError(f"{what}: names must be strings, got {name!r}")
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
            raise TypeError(f"{what}[{name!r}]: expected a numeric NumPy array, got {type(arr).__name__}")
        # safetensors copies raw memory without looking at strides
        tensors[name] = np.require(arr, requirements="C")
    return safetensors.numpy.save(tensors, metadata=metadata)


def save_weights(path, arrays: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> None:
    """Write ``{name: array}`` as a safetensors file, atomically; dtypes and shapes are kept."""
    atomic_write_bytes(path, _safetensors_bytes(arrays, "arrays", metadata))


_SAFETENSORS_DTYPES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2,
                       "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


def _check_safetensors_header(header, size: int, where: str) -> None:
    """Every tensor's dtype, shape and byte range agree, and the ranges tile the data exactly."""
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    ranges = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not (isinstance(entry, dict) and isinstance(entry.get("dtype"), str) and entry["dtype"] in _SAFETENSORS_DTYPES
                and isinstance(entry.get("shape"), list) and isinstance(entry.get("data_offsets"), list)
                and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                        for n in entry["shape"] + entry["data_offsets"])
                and len(entry["data_offsets"]) == 2):
            raise ValueError(f"tensor {name!r}: expected dtype, shape and data_offsets, got {str(entry)[:80]}")
        begin, end = entry["data_offsets"]
        if end - begin != int(np.prod(entry["shape"], dtype=object)) * _SAFETENSORS_DTYPES[entry["dtype"]]:
            raise ValueError(f"tensor {name!r}: {entry['dtype']} of shape {entry['shape']} does not fill bytes {begin}..{end}")
        ranges.append((begin, end))
    position = 0
    for begin, end in sorted(ranges):
        if begin != position:
            raise ValueError(f"the tensors' bytes overlap or leave a gap at byte {position}")
        position = end
    if position != size:
        raise ValueError(f"the tensors take {position} bytes but the file holds {size} after its header")


def _read_weights(path: Path, fix: str) -> dict[str, np.ndarray]:
    """Read a safetensors file: its header is read and checked against the file's size first,
    so a header that promises more than the file holds is refused before the tensors are read."""
    what = path.name
    if not os.path.lexists(path):
        raise ModelDirError(f"no {path.name} in {path.parent}; {fix}")
    fd = open_regular(path, what, ModelDirError)
    try:
        with os.fdopen(fd, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > WEIGHTS_LIMIT:
                raise ModelDirError(f"{path}: {size} bytes, more than the {WEIGHTS_LIMIT} a model's weights may have")
            try:
                if size < 8:
                    raise ValueError(f"it holds {size} bytes, fewer than the 8 that give its header's length")
                (n,) = struct.unpack("<Q", f.read(8))
                if n > min(size - 8, SAFETENSORS_HEADER_LIMIT):
                    raise ValueError(f"its header claims {n} bytes, the file has {size}")
                header = json.loads(f.read(n))
                _check_safetensors_header(header, size - 8 - n, str(path))
                f.seek(0)
                data = f.read(size)
                arrays = safetensors.numpy.load(data)
            except RecursionError:
                raise ModelDirError(f"{path.name} in {path.parent} has a header nested too deeply to be a "
                                    f"safetensors header; {fix}") from None
            except (struct.error, ValueError, UnicodeDecodeError, KeyError, safetensors.SafetensorError) as exc:
                raise ModelDirError(f"{path.name} in {path.parent} is truncated or corrupt: {exc}; {fix}") from None
    except OSError as exc:
        raise ModelDirError(f"cannot read {path}: {exc.strerror or exc}") from None
    return {k: v if v.flags.writeable else v.copy() for k, v in arrays.items()}


def load_weights(path, fix: str = "retrain or restore it") -> dict[str, np.ndarray]:
    """Read a safetensors file into ``{name: array}``; a missing or damaged file is a ModelDirError
    whose message ends with ``fix``."""
    return _read_weights(Path(path), fix)


# ---- JSON files, read and validated -----------------------------------------------------


def read_json(path: Path, fix: str, limit: int = JSON_LIMIT):
    """The JSON value of a regular file of at most ``limit`` bytes; any damage is a ModelDirError
    naming the file (``NaN`` and ``Infinity`` are read, as Python's JSON writes them)."""
    if not os.path.lexists(path):
        raise ModelDirError(f"no {path.name} in {path.parent}; {fix}")
    data = read_regular(path, limit, path.name, ModelDirError)
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise ModelDirError(f"{path.name} in {path.parent} is truncated or not valid JSON ({exc}); {fix}") from None
    except RecursionError:
        raise ModelDirError(f"{path.name} in {path.parent} is nested too deeply to be rnnkit's; {fix}") from None


def _finite(checker, instance) -> bool:
    """A number whose float is neither NaN nor infinite (an integer beyond float's range is not)."""
    if not checker.is_type(instance, "number"):
        return False
    try:
        return math.isfinite(instance)
    except OverflowError:
        return False


def _same_count(validator, names, instance, schema):
    """The keyword ``sameCount: [name, ...]``: those entries of an object (those present) hold as
    many items, an integer counting as itself (``channels`` and the per-channel ``mean``)."""
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "object"):
        return
    counts = {n: len(instance[n]) if validator.is_type(instance[n], "array") else instance[n] for n in names
              if n in instance and (validator.is_type(instance[n], "array") or validator.is_type(instance[n], "integer"))}
    if len(set(counts.values())) > 1:
        first, *others = counts
        yield ValidationError(f"expected {' and '.join(others)} to hold as many entries as {first}, got "
                              + ", ".join(f"{n}: {c}" for n, c in counts.items()))


def check_json(value, schema: dict, where: str, prefix: str = "") -> None:
    """Validate ``value`` against a JSON schema (draft 2020-12, with the extra type ``"finite"``:
    a number that is neither NaN nor infinite, and the keyword ``sameCount``, see
    ``_same_count``); the first error is a ModelDirError naming
    ``where`` (the file) and the field, e.g. ``config.json in m: training.steps: expected …``;
    ``prefix``: the path of ``value`` inside its file, e.g. ``"state."``."""
    import jsonschema  # only when a model directory is read

    base = jsonschema.Draft202012Validator
    checker = base.TYPE_CHECKER.redefine("finite", _finite)
    validator = jsonschema.validators.extend(base, {"sameCount": _same_count}, type_checker=checker)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is not None:
        # a key with a line break or another control character is shown quoted: the error stays one line
        field = prefix + ".".join(str(p) if str(p).isprintable() else repr(p) for p in error.absolute_path)
        field = field.rstrip(".") or "the top level"
        found = repr(error.instance)
        text = error.message
        if len(found) > 60:  # jsonschema's message quotes the value whole, however large
            found = found[:57] + "..."
            text = text.replace(repr(error.instance), found)
        expected = {"type": f"expected {error.validator_value}", "required": "missing an entry",
                    "additionalProperties": "unexpected entry"}.get(error.validator, text)
        message = f"{expected}: {text}" if error.validator in ("required", "additionalProperties") else \
            f"{expected}, got {found}" if error.validator == "type" else text
        raise ModelDirError(f"{where}: {field}: {message}")


#: what every config.json holds, whatever the task; the task checks its own entries
CONFIG_SCHEMA = {
    "type": "object",
    "required": ["task"],
    "properties": {
        "task": {"type": "string"},
        "model_dir_format": {"type": "integer", "minimum": 1},
        "rnnkit_version": {"type": "string"},
        "status": {"type": "string"},
        "task_options": {"type": "object"},
        "training": {"type": "object"},
        "metrics": {"type": "object", "additionalProperties": {"type": ["number", "string", "null"]}},
        "history": {"type": "array", "items": {"type": "object"}},
    },
}

#: state.json of a checkpoint
STATE_SCHEMA = {
    "type": "object",
    "required": ["format", "state", "optimizer_scalars", "optimizer_tuples"],
    "properties": {
        "format": {"type": "integer", "minimum": 1},
        "optimizer_scalars": {"type": "object"},
        "optimizer_tuples": {"type": "array", "items": {"type": "string"}},
        "state": {"type": "object"},
    },
}


# ---- the model: config.json and model.safetensors -------------------------------------


def _existing_dir(directory) -> Path:
    d = Path(directory)
    if not d.exists():
        raise ModelDirError(f"no model directory at {d}; train one with `rnnkit train TASK --out {d}`")
    if not d.is_dir():
        raise ModelDirError(f"{d} is a file, not a model directory; pass the directory `rnnkit train --out` wrote")
    return d


def save_model(directory, config: dict, weights: dict[str, np.ndarray]) -> None:
    """Write ``model.safetensors`` and then ``config.json`` into ``directory`` (created if needed).

    ``config`` must name its ``task``; the rnnkit version and the layout version are added.
    Both files are checked before either is written, and the weights go first: a directory
    without ``config.json`` is not a model, so a crash never leaves a config without weights.
    """
    if not isinstance(config, dict) or not isinstance(config.get("task"), str):
        raise ValueError("config: expected a dict with a 'task' entry naming the task")
    text = _dumps({**config, "rnnkit_version": __version__, "model_dir_format": FORMAT}, "config") + "\n"
    data = _safetensors_bytes(weights, "weights")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(d / WEIGHTS, data)
    atomic_write_bytes(d / CONFIG, text.encode("utf-8"))


def is_model_dir(directory) -> bool:
    """True if ``directory`` holds a ``config.json`` written by rnnkit (with its layout version)."""
    try:
        config = json.loads(read_regular(Path(directory) / CONFIG, JSON_LIMIT, CONFIG, ModelDirError))
    except (ModelDirError, ValueError, UnicodeDecodeError, RecursionError):
        return False
    return isinstance(config, dict) and isinstance(config.get("model_dir_format"), int) \
        and isinstance(config.get("task"), str)


def load_config(directory) -> dict:
    """Read and validate ``config.json`` (``CONFIG_SCHEMA``: the entries every task has).

    The task's own entries are checked by the task (``Task.check_config``).
    """
    d = _existing_dir(directory)
    path = d / CONFIG
    if not os.path.lexists(path):
        hint = (f"; its checkpoint can be resumed with `rnnkit train --resume {d}`"
                if has_checkpoint(d)
                else "; pass the directory `rnnkit train --out` wrote")
        raise ModelDirError(f"{d} holds no finished model (no {CONFIG}){hint}")
    config = read_json(path, "retrain or restore it")
    if not isinstance(config, dict) or not isinstance(config.get("task"), str):
        raise ModelDirError(f"{CONFIG} in {d} has no 'task' entry; retrain or restore it")
    fmt = config.get("model_dir_format", FORMAT)
    if not isinstance(fmt, int) or fmt > FORMAT:
        raise ModelDirError(f"{d} was written by a newer rnnkit (model-directory format {fmt!r}, "
                            f"this rnnkit reads format {FORMAT}); upgrade rnnkit")
    check_json(config, CONFIG_SCHEMA, f"{CONFIG} in {d}")
    return config


def load_model_weights(directory) -> dict[str, np.ndarray]:
    """The best weights, ``model.safetensors``, as ``{name: array}``."""
    return _read_weights(_existing_dir(directory) / WEIGHTS, "retrain or restore it")


# ---- who writes a directory, and what --overwrite may delete ------------------------------


def _is_rnnkit_entry(name: str) -> bool:
    return name in MODEL_ENTRIES or name.startswith(_TMP_CHECKPOINT) or (name.startswith(".") and name.endswith(".tmp"))


def foreign_entries(directory) -> list[str]:
    """The names in ``directory`` that rnnkit did not write, sorted."""
    try:
        return sorted(name for name in os.listdir(directory) if not _is_rnnkit_entry(name))
    except FileNotFoundError:
        return []


def check_out_dir(directory, overwrite: bool, flag: str = "--out", locked: bool = False) -> None:
    """Refuse a directory a new run must not write: ``/``, the home directory, the current
    directory or one above it; one that another run is writing (unless ``locked``: the caller
    holds its lock); a directory holding anything rnnkit did not write; a model already there
    unless ``overwrite``. Touches nothing."""
    d = Path(directory)
    where = d.resolve()
    if where == Path(where.anchor) or where == Path.home().resolve() or where in [Path.cwd(), *Path.cwd().parents]:
        raise ModelDirError(f"{flag}: {d} is the root, the home or the current directory (or above it); "
                            f"give a directory of its own for the model, e.g. {flag} models/NAME")
    if d.exists() and not d.is_dir():
        raise ModelDirError(f"{flag}: {d} is a file; give a directory for the model")
    if os.path.lexists(d / LOCK) and not locked:
        with writing(d, flag):  # only to see that no run holds it: the error names the one that does
            pass
    foreign = foreign_entries(d)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ModelDirError(f"{flag}: {d} holds files rnnkit did not write ({shown}); rnnkit writes a model only "
                            f"into a new or empty directory (or its own model directory), and never deletes those "
                            f"files: choose another directory")
    if os.path.lexists(d / CONFIG) and not overwrite:
        if has_checkpoint(d) or is_model_dir(d):
            raise ModelDirError(f"{flag}: {d} already holds a model; continue its run with `rnnkit train --resume {d}`, "
                                f"replace it with --overwrite, or choose another directory")
        raise ModelDirError(f"{flag}: {d} holds a damaged model; replace it with --overwrite or choose another directory")


def clear_model_dir(directory) -> None:
    """Delete what rnnkit wrote in ``directory`` (its lock kept), after ``check_out_dir`` passed."""
    d = Path(directory)
    for name in os.listdir(d):
        if _is_rnnkit_entry(name) and name != LOCK:
            path = d / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)


@contextlib.contextmanager
def writing(directory, flag: str = "--out"):
    """Hold ``directory``'s write lock (created with the directory if needed) for the block.

    ``flock`` on ``.rnnkit.lock``: the kernel releases it when the process ends however it
    ends, so a killed run never leaves a stale lock. A second writer gets a ModelDirError
    naming the holder's PID. Where ``fcntl`` does not exist (Windows) nothing is locked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(d / LOCK, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise ModelDirError(f"{flag}: cannot write into {d} ({exc.strerror or exc})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise ModelDirError(f"{flag}: {d} is being written by another rnnkit run (PID {holder}); wait for it "
                                f"to end or stop it, or choose another directory") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays, since deleting a lock file races with its next holder


# ---- the checkpoint ---------------------------------------------------------------------


def _split_optimizer_state(optimizer_state: dict) -> tuple[dict, dict, list]:
    """Arrays (ndim >= 1) for safetensors; scalars as JSON values, tuples listed by key."""
    if not isinstance(optimizer_state, dict):
        raise TypeError(f"optimizer_state: expected the dict of Optimizer.state_dict(), got "
                        f"{type(optimizer_state).__name__}")

    def scalar(key, value):
        if isinstance(value, (np.ndarray, np.generic)) and np.ndim(value) == 0:
            return value.item()
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise TypeError(f"optimizer_state[{key!r}]: expected an array or a scalar, got {type(value).__name__}")

    arrays, scalars, tuples = {}, {}, []
    for key, value in optimizer_state.items():
        if isinstance(value, np.ndarray) and value.ndim >= 1:
            arrays[key] = value
        elif isinstance(value, tuple):
            scalars[key] = [scalar(key, v) for v in value]
            tuples.append(key)
        else:
            scalars[key] = scalar(key, value)
    return arrays, scalars, tuples


def save_checkpoint(directory, weights: dict[str, np.ndarray], optimizer_state: dict, state: dict) -> None:
    """Replace ``directory/checkpoint/`` by a new one, whole or not at all.

    ``optimizer_state`` is ``Optimizer.state_dict()``: its arrays go to
    ``optimizer.safetensors``, its scalars to ``state.json``. ``state`` is everything else
    the trainer needs to continue (step, epoch, data position, ``rng_state(...)``, schedule
    state, best validation loss, early-stopping counter, ...) and must be JSON-able.
    """
    d = Path(directory)
    arrays, scalars, tuples = _split_optimizer_state(optimizer_state)
    if not isinstance(state, dict):
        raise TypeError(f"state: expected a dict, got {type(state).__name__}")
    files = {
        "weights.safetensors": _safetensors_bytes(weights, "weights"),
        "optimizer.safetensors": _safetensors_bytes(arrays, "optimizer_state"),
        "state.json": (_dumps({"format": FORMAT, "state": state, "optimizer_scalars": scalars,
                               "optimizer_tuples": tuples}, "state") + "\n").encode("utf-8"),
    }
    d.mkdir(parents=True, exist_ok=True)
    for stale in d.glob(_TMP_CHECKPOINT + "*"):  # left by a killed earlier save
        shutil.rmtree(stale, ignore_errors=True)
    current, old = d / CHECKPOINT, d / _OLD_CHECKPOINT
    tmp = d / f"{_TMP_CHECKPOINT}{secrets.token_hex(6)}"
    tmp.mkdir()
    try:
        for name, data in files.items():
            _write_synced(tmp / name, data)
        _fsync_dir(tmp)
        if os.path.lexists(current):
            if os.path.lexists(old):  # a crash after an earlier swap left it; current is complete
                shutil.rmtree(old)
            os.rename(current, old)
            _fsync_dir(d)
        # from here until the next rename only checkpoint.old exists, and load_checkpoint reads it
        os.rename(tmp, current)
        _fsync_dir(d)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def has_checkpoint(directory) -> bool:
    d = Path(directory)
    return (d / CHECKPOINT).is_dir() or (d / _OLD_CHECKPOINT).is_dir()


def load_checkpoint(directory) -> tuple[dict[str, np.ndarray], dict, dict]:
    """``(weights, optimizer_state, state)`` as ``save_checkpoint`` was given them.

    The optimizer state comes back as one flat dict, scalars with their Python types
    (tuples included), ready for ``Optimizer.load_state_dict``. Reads only: temporary
    directories of interrupted saves are ignored here and removed by the next save.
    """
    d = _existing_dir(directory)
    for name in (CHECKPOINT, _OLD_CHECKPOINT):
        ckpt = d / name
        if ckpt.is_dir():
            break
    else:
        raise ModelDirError(f"no checkpoint in {d} to resume from")
    fix = "restore it, or start the run again with --overwrite"
    weights = _read_weights(ckpt / "weights.safetensors", fix)
    arrays = _read_weights(ckpt / "optimizer.safetensors", fix)
    saved = read_json(ckpt / "state.json", fix)
    if isinstance(saved, dict) and isinstance(saved.get("format"), int) and saved["format"] > FORMAT:
        raise ModelDirError(f"the checkpoint in {d} was written by a newer rnnkit; upgrade rnnkit")
    check_json(saved, STATE_SCHEMA, f"state.json in {ckpt}")
    scalars = saved["optimizer_scalars"]
    for key in saved["optimizer_tuples"]:
        if not isinstance(scalars.get(key), list):
            raise ModelDirError(f"state.json in {ckpt} is not a checkpoint state; {fix}")
        scalars[key] = tuple(scalars[key])
    return weights, {**scalars, **arrays}, saved["state"]


# ---- random state -----------------------------------------------------------------------


def rng_state(gen: np.random.Generator) -> dict:
    """The generator's state as a JSON-able dict, for ``restore_rng``."""
    if not isinstance(gen, np.random.Generator):
        raise TypeError(f"gen: expected a numpy Generator, got {type(gen).__name__}")
    state = gen.bit_generator.state
    if state["bit_generator"] not in _RNG_KINDS:
        raise TypeError(f"gen: only {' and '.join(_RNG_KINDS)} generators can be saved "
                        f"(np.random.default_rng gives PCG64), got {state['bit_generator']}")
    return state


def restore_rng(state: dict) -> np.random.Generator:
    """A Generator that continues the random stream exactly where ``rng_state`` saw it."""
    kind = state.get("bit_generator") if isinstance(state, dict) else None
    if kind not in _RNG_KINDS:
        raise ModelDirError(f"RNG state: expected a saved {' or '.join(_RNG_KINDS)} state, got {kind!r}")
    bit_generator = getattr(np.random, kind)()
    try:
        bit_generator.state = state
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelDirError(f"RNG state: the saved {kind} state is damaged ({exc})") from None
    return np.random.Generator(bit_generator)


# ---- metrics ---------------------------------------------------------------------------


def append_metrics(directory, record: dict) -> None:
    """Append ``record`` as one JSON line to ``metrics.jsonl``, synced to disk.

    A partial last line left by a killed writer is cut off first, so lines never run together.
    """
    if not isinstance(record, dict):
        raise TypeError(f"record: expected a dict, got {type(record).__name__}")
    line = (_dumps(record, "record", indent=None) + "\n").encode("utf-8")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    # O_NOFOLLOW: a symlink planted in the directory must not make rnnkit append to another file
    fd = os.open(d / METRICS, os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0), 0o666)
    with os.fdopen(fd, "a+b") as f:
        size = f.seek(0, os.SEEK_END)
        if size:
            f.seek(size - 1)
            if f.read(1) != b"\n":
                f.seek(0)
                f.truncate(f.read().rfind(b"\n") + 1)
        f.write(line)  # append mode: always at the end
        f.flush()
        os.fsync(f.fileno())


def read_metrics(directory) -> list[dict]:
    """Every record of ``metrics.jsonl`` in order (none if the file is absent).

    A final line cut short by a crash is skipped; a damaged line elsewhere is a ModelDirError.
    """
    path = Path(directory) / METRICS
    if not os.path.lexists(path):
        return []
    lines = read_regular(path, METRICS_LIMIT, METRICS, ModelDirError).split(b"\n")
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, UnicodeDecodeError) as exc:
            if number == len(lines):  # no newline after it: the write was cut short
                break
            raise ModelDirError(f"{METRICS} in {path.parent} is damaged at line {number} ({exc}); "
                                f"delete that line") from None
        except RecursionError:
            raise ModelDirError(f"{METRICS} in {path.parent}: line {number} is nested too deeply to be rnnkit's; "
                                f"delete that line") from None
        # a step is a count, and a record with a loss (drawn in loss.png against its step) has one
        losses = [k for k in ("train_loss", "valid_loss") if isinstance(record, dict) and k in record]
        if not (isinstance(record, dict) and type(record.get("step", 0)) is int and record.get("step", 0) >= 0
                and all(type(record[k]) in (int, float) for k in losses) and (not losses or "step" in record)):
            raise ModelDirError(f"{METRICS} in {path.parent}: line {number} is not a record rnnkit wrote (a JSON object "
                                f"with a step count and numeric losses); delete that line")
        records.append(record)
    return records


def rewind_metrics(directory, step: int) -> None:
    """Drop the records logged after ``step``, for a run resumed from a checkpoint at ``step``.

    Records without a ``"step"`` entry are kept. The file is rewritten atomically.
    """
    path = Path(directory) / METRICS
    if not path.exists():
        return
    kept = [r for r in read_metrics(directory) if r.get("step", 0) <= step]
    atomic_write_bytes(path, "".join(_dumps(r, "record", indent=None) + "\n" for r in kept).encode("utf-8"))
