"""The model directory: one on-disk format for every task, written atomically, read without running code.

::

    MODEL_DIR/
      config.json        task, architecture, hyperparameters, vocabulary, data, rnnkit version, metrics
      model.safetensors  the best weights by validation, under PyTorch's names
      checkpoint/        the last resumable state
        weights.safetensors    the weights at that step
        optimizer.safetensors  the optimizer's array buffers (moments, momentum buffers)
        state.json             step, epoch, data position, RNG state, ... and the optimizer's scalars
      metrics.jsonl      one JSON object per logged step

Crash safety. Every file is written to a temporary file in the same directory, synced, and
renamed over its target, so a reader sees the old file or the new one, never a mix.
``save_model`` writes ``model.safetensors`` before ``config.json``: ``config.json`` is what
marks a directory as a model, so a crash during the first save leaves no model rather than a
config without weights. A checkpoint is several files, so it is built whole in a temporary
directory ``.checkpoint-tmp-*`` and swapped in with two renames (``checkpoint`` →
``checkpoint.old``, temporary → ``checkpoint``); whenever ``checkpoint/`` exists it is
complete, and ``load_checkpoint`` falls back to ``checkpoint.old/`` for a crash between the
renames. One process writes a directory at a time.

Loading never executes code: weights are safetensors, everything else JSON (Python's JSON,
which also writes and reads ``NaN`` and ``Infinity``). JSON turns tuples into lists and
dictionary keys into strings: keep vocabularies as lists of tokens.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path

import numpy as np
import safetensors
import safetensors.numpy

__all__ = [
    "ACTIONS",
    "ModelDirError",
    "atomic_write_bytes",
    "atomic_write_json",
    "save_weights",
    "load_weights",
    "save_model",
    "load_config",
    "load_model_weights",
    "save_checkpoint",
    "load_checkpoint",
    "rng_state",
    "restore_rng",
    "append_metrics",
    "read_metrics",
    "rewind_metrics",
]

#: each task's action verb: ``rnnkit VERB DIR`` uses a trained model of that task
ACTIONS = {"lm": "generate", "classify": "classify", "tag": "tag", "translate": "translate",
           "forecast": "forecast", "detect": "detect"}

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CHECKPOINT = "checkpoint"
METRICS = "metrics.jsonl"
#: the version of this layout; a directory written by a later layout is refused, not misread
FORMAT = 1

_OLD_CHECKPOINT = CHECKPOINT + ".old"
_TMP_CHECKPOINT = ".checkpoint-tmp-"
_RNG_KINDS = ("PCG64", "PCG64DXSM")  # their states are plain integers, so JSON holds them exactly


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


def _read_weights(path: Path, fix: str) -> dict[str, np.ndarray]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelDirError(f"no {path.name} in {path.parent}; {fix}") from None
    except OSError as exc:
        raise ModelDirError(f"cannot read {path}: {exc.strerror}") from None
    try:
        arrays = safetensors.numpy.load(data)
    except (safetensors.SafetensorError, KeyError, ValueError) as exc:
        raise ModelDirError(f"{path.name} in {path.parent} is truncated or corrupt: {exc}; {fix}") from None
    return {k: v if v.flags.writeable else v.copy() for k, v in arrays.items()}


def load_weights(path) -> dict[str, np.ndarray]:
    """Read a safetensors file into ``{name: array}``; a missing or damaged file is a ModelDirError."""
    return _read_weights(Path(path), "retrain or restore it")


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
    from rnnkit import __version__

    if not isinstance(config, dict) or not isinstance(config.get("task"), str):
        raise ValueError("config: expected a dict with a 'task' entry naming the task")
    text = _dumps({**config, "rnnkit_version": __version__, "model_dir_format": FORMAT}, "config") + "\n"
    data = _safetensors_bytes(weights, "weights")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(d / WEIGHTS, data)
    atomic_write_bytes(d / CONFIG, text.encode("utf-8"))


def load_config(directory, expect_task: str | None = None, action: str | None = None) -> dict:
    """Read ``config.json``; with ``expect_task``, refuse a model of another task.

    ``action`` is the verb the user ran (default: ``expect_task``'s verb in ``ACTIONS``), for
    the message, which names the verb that fits the model instead.
    """
    d = _existing_dir(directory)
    path = d / CONFIG
    if not path.is_file():
        hint = (f"; its checkpoint can be resumed with `rnnkit train --resume {d}`"
                if (d / CHECKPOINT).is_dir() or (d / _OLD_CHECKPOINT).is_dir()
                else "; pass the directory `rnnkit train --out` wrote")
        raise ModelDirError(f"{d} holds no finished model (no {CONFIG}){hint}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise ModelDirError(f"{CONFIG} in {d} is truncated or not valid JSON ({exc}); retrain or restore it") from None
    except OSError as exc:
        raise ModelDirError(f"cannot read {path}: {exc.strerror}") from None
    if not isinstance(config, dict) or not isinstance(config.get("task"), str):
        raise ModelDirError(f"{CONFIG} in {d} has no 'task' entry; retrain or restore it")
    fmt = config.get("model_dir_format", FORMAT)
    if not isinstance(fmt, int) or fmt > FORMAT:
        raise ModelDirError(f"{d} was written by a newer rnnkit (model-directory format {fmt!r}, "
                            f"this rnnkit reads format {FORMAT}); upgrade rnnkit")
    task = config["task"]
    if expect_task is not None and task != expect_task:
        action = action or ACTIONS.get(expect_task, expect_task)
        if task in ACTIONS:
            fix = f"use `rnnkit {ACTIONS[task]} {d}`"
        else:
            fix = f"this rnnkit knows the tasks {', '.join(ACTIONS)}; upgrade rnnkit"
        raise ModelDirError(f"`rnnkit {action}` needs a model of task {expect_task!r}, "
                            f"but {d} holds a {task!r} model; {fix}")
    return config


def load_model_weights(directory) -> dict[str, np.ndarray]:
    """The best weights, ``model.safetensors``, as ``{name: array}``."""
    return _read_weights(_existing_dir(directory) / WEIGHTS, "retrain or restore it")


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
        raise ModelDirError(f"no checkpoint in {d} to resume from; start a new run without --resume")
    fix = f"remove {ckpt} and start a new run without --resume"
    weights = _read_weights(ckpt / "weights.safetensors", fix)
    arrays = _read_weights(ckpt / "optimizer.safetensors", fix)
    try:
        saved = json.loads((ckpt / "state.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelDirError(f"no state.json in {ckpt}; {fix}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelDirError(f"state.json in {ckpt} is truncated or not valid JSON ({exc}); {fix}") from None
    if not (isinstance(saved, dict) and isinstance(saved.get("state"), dict)
            and isinstance(saved.get("optimizer_scalars"), dict)
            and isinstance(saved.get("optimizer_tuples"), list)):
        raise ModelDirError(f"state.json in {ckpt} is not a checkpoint state; {fix}")
    if not isinstance(saved.get("format"), int) or saved["format"] > FORMAT:
        raise ModelDirError(f"the checkpoint in {d} was written by a newer rnnkit; upgrade rnnkit")
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
    with open(d / METRICS, "a+b") as f:
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
    try:
        lines = path.read_bytes().split(b"\n")
    except FileNotFoundError:
        return []
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
        if not isinstance(record, dict):
            raise ModelDirError(f"{METRICS} in {path.parent}: line {number} is not a JSON object; delete that line")
        records.append(record)
    return records


def rewind_metrics(directory, step: int) -> None:
    """Drop the records logged after ``step``, for a run resumed from a checkpoint at ``step``.

    Records without a ``"step"`` entry are kept. The file is rewritten atomically.
    """
    path = Path(directory) / METRICS
    if not path.exists():
        return
    kept = [r for r in read_metrics(directory) if not isinstance(r.get("step"), (int, float)) or r["step"] <= step]
    atomic_write_bytes(path, "".join(_dumps(r, "record", indent=None) + "\n" for r in kept).encode("utf-8"))
