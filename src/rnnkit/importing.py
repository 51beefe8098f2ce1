"""Models into rnnkit: weights trained in PyTorch become a model directory of a task.

    rnnkit import lm --weights lm.safetensors --out models/imported --data corpus.txt --hidden 256 --cell lstm

The weights are a state dict under rnnkit's names, which are PyTorch's (``rnn.weight_ih_l0``,
``embedding.weight``, ``head.weight`` …; ``rnnkit info DIR`` of a model of the same options, or
the error below, lists them): a ``.safetensors`` file, read without running code, or a
``.pt``/``.pth`` file, read only through ``torch.load(weights_only=True)`` when torch is
installed, never by pickle otherwise.

The encoding (vocabulary, labels, scaling) is what ``rnnkit train`` would fit on the same
``--data`` with the same options and ``--seed``: the ids the weights were trained on in torch
must be those ids. The model's validation metrics on that data are computed and kept, and a
checkpoint at step 0 holds the imported weights, so ``rnnkit train --resume DIR --steps N``
fine-tunes them. The directory follows ``train``'s rules: checked before the data is read,
written under its lock, a model replaced only with ``overwrite``, nothing else deleted.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .files import open_regular
from .nn import no_grad
from .tasks.base import get_task
from .training import model_dir as md
from .training.trainer import Trainer, TrainingOptions
from .version import __version__

#: the suffixes --weights takes: safetensors always, torch's own files only through torch.load(weights_only=True)
SAFETENSORS_SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = (".pt", ".pth")
#: the dtypes a tensor may have; each is cast to the model's float32
FLOAT_DTYPES = ("float16", "float32", "float64")
STATUS = "imported"


class WeightsError(ValueError):
    """--weights cannot be read as a state dict, or does not fit the task and options it is imported
    into; the message names the file and the tensor."""


def read_state_dict(path) -> dict[str, np.ndarray]:
    """``{name: array}`` of a .safetensors or (with torch) .pt/.pth state dict; every tensor
    floating point and finite, else a one-line error naming the tensor."""
    path = Path(path)
    os.close(open_regular(path, "--weights", WeightsError))  # a missing file or a directory, named as such
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        arrays = _read_safetensors(path)
    elif suffix in TORCH_SUFFIXES:
        arrays = _read_torch(path)
    else:
        raise WeightsError(f"--weights: {path}: expected a {' or '.join(SAFETENSORS_SUFFIXES)} state dict (or, with torch "
                           f"installed, {' or '.join(TORCH_SUFFIXES)}), got a {suffix or 'name without a suffix'}")
    if not arrays:
        raise WeightsError(f"--weights: {path} holds no tensors")
    for name, array in arrays.items():
        if not np.isfinite(array).all():
            raise WeightsError(f"--weights: tensor {name!r} in {path} holds NaN or infinite values")
    return arrays


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    import safetensors

    # the dtypes first, from the header alone: NumPy has no bfloat16, which would read as damage
    try:
        with safetensors.safe_open(str(path), framework="numpy") as f:
            dtypes = {name: f.get_slice(name).get_dtype() for name in f.keys()}
    except (safetensors.SafetensorError, OSError, ValueError):
        dtypes = {}  # md.load_weights names the damage (or the missing file) below
    for name, dtype in dtypes.items():
        if dtype not in ("F16", "F32", "F64"):
            raise WeightsError(f"--weights: tensor {name!r} in {path} is {dtype}; expected floating point "
                               f"({', '.join(FLOAT_DTYPES)}): convert it, e.g. tensor.float() in torch")
    try:
        return md.load_weights(path, "write it again with safetensors' save_file")
    except md.ModelDirError as exc:
        raise WeightsError(f"--weights: {exc}") from None


def _read_torch(path: Path) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError:
        raise WeightsError(f"--weights: {path} is a torch file, which only torch reads safely (weights_only=True), and "
                           f"torch is not installed: install torch, or save the state dict with safetensors' "
                           f"save_file as a .safetensors file") from None
    fd = open_regular(path, "--weights", WeightsError)
    if os.fstat(fd).st_size > md.WEIGHTS_LIMIT:
        os.close(fd)
        raise WeightsError(f"--weights: {path} holds more than the {md.WEIGHTS_LIMIT} bytes a model's weights may have")
    try:
        with os.fdopen(fd, "rb") as f:
            state = torch.load(f, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch's unpickler refuses anything but tensors and plain containers, in its own types
        # (torch's message suggests weights_only=False, which would run the file's code: not repeated)
        raise WeightsError(f"--weights: {path} is not a state dict that torch.load(weights_only=True) reads "
                           f"({type(exc).__name__}); save it with torch.save(module.state_dict(), FILE), or with "
                           f"safetensors' save_file as a .safetensors file") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise WeightsError(f"--weights: {path} holds a {type(state).__name__}; expected a state dict (name → tensor), "
                           f"as torch.save(module.state_dict(), FILE) writes it")
    arrays = {}
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f"--weights: entry {name!r} in {path} is a {type(value).__name__}, not a tensor; save "
                               f"module.state_dict() alone")
        if str(value.dtype).removeprefix("torch.") not in FLOAT_DTYPES:
            raise WeightsError(f"--weights: tensor {name!r} in {path} is {value.dtype}; expected floating point "
                               f"({', '.join(FLOAT_DTYPES)}): convert it, e.g. tensor.float()")
        arrays[name] = value.detach().cpu().numpy().copy()
    return arrays


def untie(arrays: dict[str, np.ndarray], model, path) -> dict[str, np.ndarray]:
    """The state dict with each tied weight under its first name alone: torch's state_dict holds a
    tied weight under every name (``embedding.weight`` and ``head.weight`` of an lm with --tie),
    rnnkit's once; the copies must be equal."""
    first = {id(p): name for name, p in model.named_parameters()}
    arrays = dict(arrays)
    for name, p in model.named_parameters(remove_duplicate=False):
        kept = first[id(p)]
        if name == kept or name not in arrays:
            continue
        copy = arrays.pop(name)
        if kept not in arrays:
            arrays[kept] = copy
        elif arrays[kept].shape != copy.shape or not np.array_equal(arrays[kept], copy):
            raise WeightsError(f"--weights: tensors {kept!r} and {name!r} in {path} differ, but they are one tied "
                               f"weight in this model (--tie): give equal tensors, or train without --tie")
    return arrays


def check_fits(arrays: dict[str, np.ndarray], model, what: str) -> None:
    """Refuse a state dict whose names and shapes are not the model's: one line naming each
    missing, extra and misshapen tensor (name, expected shape, got shape)."""
    own = {name: p.data.shape for name, p in model.named_parameters()}
    shape = lambda s: str(tuple(s))  # noqa: E731 - (48, 12), (48,)
    missing = [f"{k} {shape(own[k])}" for k in own if k not in arrays]
    extra = [f"{k} {shape(arrays[k].shape)}" for k in arrays if k not in own]
    misshapen = [f"{k}: expected {shape(own[k])}, got {shape(arrays[k].shape)}" for k in own
                 if k in arrays and arrays[k].shape != own[k]]
    problems = [f"{label}: {'; '.join(items)}" for label, items in (("missing tensors", missing), ("extra tensors", extra),
                                                                   ("misshapen tensors", misshapen)) if items]
    if problems:
        raise WeightsError(f"--weights does not fit {what}: {' | '.join(problems)} (the options set the shapes: "
                           f"--hidden, --embed, --layers, --cell, …; the names are rnnkit's, which are PyTorch's)")


def import_weights(task_name: str, weights, out, task_options: dict, seed: int = 0, quiet: bool = False,
                   overwrite: bool = False) -> dict:
    """Write a model directory of ``task_name`` with ``task_options`` into ``out`` whose weights
    are the state dict in ``weights``; returns the validation metrics of the imported model.

    The encoding is fitted on ``task_options["data"]`` as ``train`` fits it (with ``seed``, which
    also makes the validation split), with the task's ``Options.IMPORTED`` set (classify: a
    validation split, not a cross-validation that would train folds to choose steps). Every check
    (the directory, the options, the file, the data, the names and shapes) runs before anything in
    ``out`` is written."""
    task = get_task(task_name)
    out = Path(out)
    md.check_out_dir(out, overwrite)
    training = TrainingOptions(seed=seed)
    options = task.Options(**{**task_options, **getattr(task.Options, "IMPORTED", {})})
    arrays = read_state_dict(weights)
    model, run, config = task.build(options, training, out, quiet)
    arrays = untie(arrays, model, weights)
    check_fits(arrays, model, f"a {task.name} model of these options")
    model.load_state_dict(arrays)
    source = Path(weights)
    config.update(task=task.name, rnnkit_version=__version__, task_options=asdict(options), training=asdict(training),
                  imported={"weights": source.name, "size": source.stat().st_size})
    with no_grad():  # before the directory is touched: a model that --overwrite replaces stays until this works
        model.eval()
        metrics = run.evaluate()
    with md.writing(out):
        md.check_out_dir(out, overwrite, locked=True)
        if overwrite:
            md.clear_model_dir(out)
        trainer = Trainer(model, run, out, config, training, quiet, task.monitors[training.monitor])
        # the imported weights are the best so far: a fine-tuning run (--resume) keeps them until it does better
        trainer.best = metrics[training.monitor] * (-1 if trainer.direction == "max" else 1)
        md.save_model(out, dict(config, status=STATUS, metrics=dict(metrics, step=0)), model.state_dict())
        md.append_metrics(out, {"step": 0, **{f"valid_{k}": v for k, v in metrics.items()}})
        trainer.save_checkpoint()
    return metrics

