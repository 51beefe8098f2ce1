"""Task `classify`: many-to-one sequence classification, or regression when the labels are values.

Inputs are texts (a word or character tokenizer, an embedding) or numeric series (T_i, C).
A series may be z-normalised on its own (``--znorm series``; by default not: its levels often
tell the classes apart; ``--znorm scaled`` adds its level and scale as channels of their own,
chosen by ``--znorm auto`` when the series' sizes differ so much that the training part's
standardisation would flatten most of them), is shortened to at most ``--max-length`` steps (each segment's mean, or
with ``--segments range`` its mean, minimum and maximum; by default range when a training series
is that long), then standardised per channel with the training part's statistics.
Batches group sequences of similar length (``data.batching``) and run with ``lengths``, so
padding costs little and changes nothing.

Splits: the test part is ``--test FILE``, else the data set's official test split (UCR), else
fold ``--fold`` of ``--folds`` (for cross-validation), else none. How long to train is chosen on
the rest, in one of two ways:

- a small training part (fewer than ``CV_BELOW`` examples; ``--cv-folds`` says otherwise):
  K-fold cross-validation (``tasks.cross_validation``, folds stratified by class) chooses the
  number of steps; the model's "validation" metrics are the cross-validated ones, at each step.
  What classifies then (``--final``, ``ClassifyOptions.final_of``): the K fold networks at the
  chosen step, their class probabilities averaged (folds: fold 0's network is the model's own, and
  none trains on all the data; auto's choice for numeric series), a network trained on all of it
  for those steps (refit; auto's for text), or both (auto's with ``--ensemble``), the fold
  networks stored by ``ClassifyTask.after_training``;
- otherwise ``--valid-fraction`` of it, stratified by class, held out for early stopping and
  the best weights.

Every split is a function of the data and ``--seed``, so a loaded model recomputes them exactly.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import metrics as M
from ..data import DataError, Tokenizer, make_tokenizer
from ..data.batching import BucketBatches, batches_in_order, pad
from ..data.datasets import UCR_SETS
from ..data.fingerprint import check_data, record_data
from ..export import onnx as onnx_export
from ..data.series_prep import average_down, input_width, level_and_scale, summarise_down, z_normalise
from ..data.sources import is_built_in, load_classification
from ..models.classifier import POOLINGS, SequenceClassifier
from ..data.tokenizers import TOKENIZERS, VOCABULARY_SCHEMA
from ..models.sequence_model import INPUT_BOUND, cell_choices, cell_help, cell_name, cell_option_help, init_help
from ..nn import CrossEntropyLoss, MSELoss, no_grad
from ..training import parallel
from ..training import model_dir as md
from ..training.trainer import Trainer, TrainingError, TrainingInterrupted, check_options
from ..training.plots import plot_confusion
from ..memory import within_memory
from .cross_validation import cross_validate, stratified_folds
from .base import (Exportable, export_metadata, MEAN_SCHEMA, MEANS_SCHEMA, NAMES_SCHEMA, SPREAD_SCHEMA, SPREADS_SCHEMA, BucketedRun, Task, data_schema, input_texts,
                   network_checks, register, validation_line)

#: a training part smaller than this is cross-validated (``--cv-folds -1``) with CV_FOLDS folds
CV_BELOW = 500
CV_FOLDS = 5
ZNORMS = ("auto", "none", "series", "scaled")
#: --znorm auto: scaled when more than FLAT_SHARE of the training series' channels have a standard
#: deviation below SMALL_SCALE of that channel's over the whole training part (standardised with
#: the training part's statistics, they would be nearly flat lines: PLAID's appliances), else none
SMALL_SCALE = 0.05
FLAT_SHARE = 0.5
#: --augment s: each series' channels scaled by N(1, s), each value jittered by N(0, NOISE_SHARE·s)
NOISE_SHARE = 0.3
#: how `info` describes a series model's --znorm
ZNORM_WORDS = {"none": "", "series": "z-normalised per series, ", "scaled": "z-normalised per series with its level and scale, "}
#: how --max-length shortens a series: each segment's mean, or its mean, minimum and maximum, or
#: auto: range when a training series is longer than --max-length, else mean
SEGMENTS = ("auto", "mean", "range")
#: --final: what classifies after cross-validation: the network trained on all of the training part,
#: or it and the fold networks, or the fold networks alone, or auto: folds where the training part is
#: cross-validated series (bench_classify_final.py measures them by nested cross-validation)
FINALS = ("auto", "refit", "both", "folds")
#: what ``--data`` reads (``data.sources``): the one list --help shows
DATA_FORMATS = ("a text file of `label<TAB>text` lines (.tsv, .txt or any other suffix); a .csv file of `label,text` "
                "lines, or of numeric series, one a row: `label,v1,v2,…`; an .npz file with X and y (and lengths); "
                "a .ts file of the UCR/UEA archive")


@dataclass
class ClassifyOptions:
    data: str = ""
    test: str = ""
    target: str = "auto"
    tokenizer: str = "word"
    lowercase: bool = False
    min_count: int = 1
    max_vocab: int = 0
    cell: str = "lstm"
    cell_option: dict = field(default_factory=dict)
    init: str = "rnnkit"
    embed: int = 64
    hidden: int = 128
    layers: int = 1
    bidirectional: bool = True
    pooling: str = "max"
    dropout: float = 0.0
    batch_size: int = 32
    valid_fraction: float = 0.1
    folds: int = 0
    fold: int = 0
    cv_folds: int = -1
    ensemble: int = 1
    final: str = "auto"
    znorm: str = "auto"
    max_length: int = 256
    segments: str = "auto"
    augment: float = 0.0

    # the values an option takes (the command line lists them in its usage)
    # what a model trained before an option existed was trained with (its config.json lacks the option)
    BEFORE = {"cv_folds": 0, "ensemble": 1, "final": "refit", "znorm": "none", "max_length": 0, "segments": "mean", "augment": 0.0}
    # what an imported model is made with: it trains no steps, so none are chosen by cross-validation;
    # a validation split measures it (and a fine-tuning --resume stops early on it)
    IMPORTED = {"cv_folds": 0, "ensemble": 1, "final": "refit"}
    CHOICES = {"target": ("auto", "class", "value"), "tokenizer": tuple(TOKENIZERS), "cell": cell_choices(), "pooling": POOLINGS, "znorm": ZNORMS,
               "segments": SEGMENTS, "final": FINALS}
    HELP = {
        "data": f"labelled sequences: {DATA_FORMATS}; or a built-in set: polarity, ucr:NAME ({', '.join(UCR_SETS)}), "
                "fillets-speaker:cs or :nl (which fish speaks; `rnnkit data install fillets-speech`)",
        "test": "a test file in the same format (default: the set's official test split, or --folds)",
        "target": "class, value (a regressor), or auto: values when every label is a number and some are not integers",
        "tokenizer": "text input: word or char",
        "lowercase": "text input: lowercase before tokenizing",
        "min_count": "text input: words seen fewer times in training become <unk>",
        "max_vocab": "text input: keep only the most frequent tokens (0: all)",
        "cell": cell_help(),
        "cell_option": cell_option_help(),
        "init": "how the parameters start: " + init_help(),
        "embed": "text input: embedding size",
        "hidden": "hidden size of each recurrent layer (per direction)",
        "layers": "number of stacked recurrent layers",
        "bidirectional": "read each sequence in both directions (default; --no-bidirectional: forward only)",
        "pooling": "how a sequence becomes one vector: " + ", ".join(POOLINGS),
        "dropout": "dropout on embeddings, between layers and before the output layer",
        "batch_size": "sequences per batch",
        "valid_fraction": "fraction of the training data held out for validation (stratified), when it is not "
                          "cross-validated (see --cv-folds)",
        "folds": "cross-validation: split the data into this many folds and test on --fold (0: no folds)",
        "fold": "with --folds: the fold to test on, 0 … folds−1",
        "cv_folds": f"choose the number of training steps by K-fold cross-validation on the training data "
                    f"(stratified; K trainings), then (see --final) train on all of it for that many steps: K >= 2, 0 for a "
                    f"--valid-fraction split and early stopping, or -1: {CV_FOLDS} folds when the training data has "
                    f"fewer than {CV_BELOW} examples, else 0 (default: -1)",
        "ensemble": "train K networks, with seeds --seed, --seed+1, …, and average their class probabilities (a "
                    "regressor's values): the first chooses the steps (by cross-validation or on the validation split), "
                    "the other K−1 train as it did for those steps (K−1 more trainings) (default: 1)",
        "final": "after cross-validation (see --cv-folds), what classifies: refit, the network trained on all the training "
                 "data for the chosen steps (and --ensemble's others); or both: also the K fold networks at the chosen step, "
                 "kept from the cross-validation (no more training), every network's class probabilities (a regressor's values) "
                 "averaged; the folds then read the data through the whole training part's standardisation or vocabulary, so "
                 "that every network reads the same inputs; or folds: the K fold networks alone, averaged (no network "
                 "trains on all the data: one training fewer; not with --ensemble); or auto: folds where the training data "
                 "is cross-validated numeric series (both with --ensemble), else refit (default: auto)",
        "znorm": "numeric input: series to z-normalise each series' channels on their own (mean 0, std 1) before the "
                 "per-channel standardisation; scaled to z-normalise them and add each channel's log standard deviation "
                 "and asinh(mean / std) as two more channels (constant along the series); none to keep their levels, "
                 f"which often tell the classes apart; or auto: scaled when more than a share {FLAT_SHARE} of the training "
                 f"series' channels have a standard deviation below {SMALL_SCALE} of the channel's over all of them "
                 "(standardised together, they would be nearly flat), else none (default: auto)",
        "max_length": "numeric input: average a longer series down to this many steps (means of equal segments; "
                      "0: keep every step) (default: 256)",
        "segments": "numeric input: what --max-length keeps of each segment: mean, or range: its mean, minimum and "
                    "maximum (three channels for each of the data's; a fast oscillation averages to a flat line, but its "
                    "envelope survives; a shorter series' steps are their own segments), or auto: range when a "
                    "training series is longer than --max-length, else mean (default: auto)",
        "augment": f"numeric input: each training batch's series are multiplied by a factor drawn from N(1, AUGMENT) for "
                   f"each series and channel and get noise N(0, {NOISE_SHARE}·AUGMENT) at each step, in the standardised "
                   "units the network reads (the scaling and jittering of Um et al. 2017); held-out and test data are left as "
                   "they are; 0: none (default: 0)",
    }

    def __post_init__(self):
        checks = {"target": self.target in ("auto", "class", "value"), "tokenizer": self.tokenizer in ("word", "char"),
                  "pooling": self.pooling in POOLINGS, "folds": self.folds == 0 or self.folds >= 2,
                  "fold": 0 <= self.fold < max(self.folds, 1), "valid_fraction": 0 < self.valid_fraction < 1,
                  "dropout": 0 <= self.dropout < 1, "cv_folds": self.cv_folds == -1 or self.cv_folds == 0 or self.cv_folds >= 2,
                  "ensemble": self.ensemble >= 1, "final": self.final in FINALS,
                  "znorm": self.znorm in ZNORMS, "max_length": self.max_length >= 0, "segments": self.segments in SEGMENTS,
                  "augment": 0 <= self.augment <= 1,
                  **network_checks(self)}
        check_options(self, checks)
        if self.final == "folds" and self.ensemble > 1:
            raise ValueError(f"--ensemble: {self.ensemble} networks, but an ensemble's other networks train on all the data "
                             "as its first, and with --final folds none does; give --final both (the fold networks and "
                             "the ensemble's) or --ensemble 1")

    def final_of(self, folds: int, kind: str, recorded: dict | None = None) -> str:
        """What classifies after a ``folds``-fold cross-validation (0: none) of ``kind`` data ("series"
        or "text"): "refit", the network trained on all of the training part; "both", it and the fold
        networks; or "folds", the fold networks alone. --final as given, or auto's choice: folds for
        series (both with --ensemble, whose other networks train on all the data as a refit does),
        refit for text (measured on series only: with text, every fold would read the whole training
        part's vocabulary, with untrained embeddings for the words only its held-out part has).
        ``recorded``: a model's cross-validation record, which keeps the choice (``settle``); one
        from before it did, when auto meant both for series, reads that."""
        if not folds:
            return "refit"
        if recorded is not None and "final" in recorded:
            return recorded["final"]
        if self.final != "auto":
            return self.final
        if kind == "text":
            return "refit"
        return "both" if recorded is not None or self.ensemble > 1 else "folds"

    def stored_final(self, encoding: dict) -> str:
        """``final_of`` for a model whose ``encoding`` config.json keeps (its cross-validation's record, if any)."""
        cv = encoding.get("cross_validation")
        return self.final_of(cv["folds"] if cv else 0, encoding["input"], cv)


# ---- data: splits, encoding ------------------------------------------------------------------


def _is_values(labels: list[str], target: str) -> bool:
    if target != "auto":
        return target == "value"
    try:
        values = [float(v) for v in labels]
    except ValueError:
        return False
    return any(not float(v).is_integer() for v in values)


def stratified_split(labels, fraction: float, seed: int, salt: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held out) indices: ``fraction`` of each class held out (of all, for values)."""
    rng = np.random.default_rng([seed, salt])
    labels = np.asarray(labels)
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels)] if labels.dtype.kind in "UO" else [np.arange(labels.size)]
    held = []
    for g in groups:
        g = rng.permutation(g)
        held.append(g[: int(round(len(g) * fraction))])
    held = np.sort(np.concatenate(held))
    return np.setdiff1d(np.arange(labels.size), held), held


def _folds(n: int, folds: int, seed: int) -> list[np.ndarray]:
    order = np.random.default_rng([seed, 1]).permutation(n)
    return [np.sort(order[i::folds]) for i in range(folds)]


def cv_folds(opts: ClassifyOptions, n_train: int) -> int:
    """The folds of the cross-validation that chooses the steps for ``n_train`` training examples
    (0: a validation split instead); more folds than examples is a DataError."""
    k = opts.cv_folds if opts.cv_folds >= 0 else (CV_FOLDS if n_train < CV_BELOW else 0)
    if k > n_train:
        raise DataError(f"--cv-folds: {k} folds need at least {k} training examples, but the training data has "
                        f"{n_train}; give fewer folds or --cv-folds 0")
    return k


class Splits:
    """The examples of each split, encoded: ``inputs[split]`` a list of (T_i,) ids or (T_i, C)
    floats, ``targets[split]`` class indices or standardised values.

    ``folds`` > 0: the training part is cross-validated. With ``cv_fold`` k the splits are fold
    k's (train: the other folds, valid: fold k, encoding fitted on the other folds but knowing
    every class; where the fold networks are kept, ``final_of``, fitted on all of the training
    part, as the final network's); without it, train is all of the training part and
    there is no valid split."""

    def __init__(self, opts: ClassifyOptions, seed: int, stored: dict | None = None, cv_fold: int | None = None):
        if stored is not None:  # a loaded or resumed model: its config's paths, only if still its data
            check_data(opts, stored.get("data_files"), is_built_in)
        source = load_classification(opts.data)
        items, labels = source.items, source.labels
        self.kind, self.description = source.kind, {"source": source.description}
        if opts.test:
            test_source = load_classification(opts.test)
            if test_source.kind != source.kind:
                raise DataError(f"--test: {opts.test} holds {test_source.kind}, but --data holds {source.kind}")
            test = (test_source.items, test_source.labels)
        elif source.test is not None:
            test = source.test
        elif opts.folds:
            fold = _folds(len(items), opts.folds, seed)[opts.fold]
            keep = np.setdiff1d(np.arange(len(items)), fold)
            test = ([items[i] for i in fold], [labels[i] for i in fold])
            items, labels = [items[i] for i in keep], [labels[i] for i in keep]
        else:
            test = None
        self.values = stored["values"] if stored else _is_values(labels, opts.target)
        # a stored model was cross-validated if its encoding says so (models from before --cv-folds were not)
        self.cross_validation = stored.get("cross_validation") if stored else None
        self.folds = (self.cross_validation or {}).get("folds", 0) if stored else cv_folds(opts, len(items))
        strata = labels if not self.values else np.zeros(len(labels))
        if self.folds and cv_fold is not None:
            valid_idx = stratified_folds(strata, self.folds, seed)[cv_fold]
            train_idx = np.setdiff1d(np.arange(len(items)), valid_idx)
        elif self.folds:
            train_idx, valid_idx = np.arange(len(items)), np.array([], dtype=np.int64)
        else:
            train_idx, valid_idx = stratified_split(strata, opts.valid_fraction, seed, 0)
        raw = {"train": ([items[i] for i in train_idx], [labels[i] for i in train_idx])}
        if valid_idx.size or not self.folds:
            raw["valid"] = ([items[i] for i in valid_idx], [labels[i] for i in valid_idx])
        if test is not None:
            raw["test"] = test
        for name, (xs, _) in raw.items():
            if not xs:
                raise DataError(f"data: the {name} split is empty; give more examples or change --valid-fraction")
        every_class = None if self.values else sorted(set(labels))  # a fold may lack a rare class
        fitted_on = (items, labels) if cv_fold is not None and opts.final_of(self.folds, self.kind) != "refit" else raw["train"]
        self.config = stored or dict(self._fit(opts, *fitted_on, every_class, everything=items), data_files=record_data(opts, is_built_in))
        self.fold_weights: list[dict] | None = None  # kept (all but --final refit): the fold networks at the chosen step (ClassifyTask.settle)
        if opts.augment and self.config["input"] == "text":
            raise DataError(f"--augment: scales and jitters numeric series, but --data {opts.data} holds text")
        self.inputs = {k: self._encode_inputs(opts, xs, k) for k, (xs, _) in raw.items()}
        self.targets = {k: self.encode_targets(ys, k) for k, (_, ys) in raw.items()}
        self.description.update({f"{k}_examples": len(xs) for k, (xs, _) in raw.items()})
        self.description.setdefault("valid_examples", 0)

    def _fit(self, opts: ClassifyOptions, items, labels, every_class: list[str] | None = None, everything=()) -> dict:
        """What encoding learns from the training part: vocabulary or channel statistics, how long series
        are shortened (--segments auto looks at ``everything``, all of the training part, so every
        fold of a cross-validation decides alike), label set or value scale."""
        config: dict = {"values": self.values, "input": self.kind}
        if self.kind == "text":
            text = "\n".join(t.lower() if opts.lowercase else t for t in items)
            config["vocabulary"] = make_tokenizer(opts.tokenizer, text, opts.min_count, opts.max_vocab or None).to_dict()
        else:
            config["segments"] = resolve_segments(opts, everything or items)
            config["znorm"] = resolve_znorm(opts, everything or items)
            stacked = np.concatenate(prepare_series(opts, items, config["segments"], config["znorm"])).astype(np.float64)  # float32 squares overflow above 1.8e19
            config.update(channels=int(stacked.shape[1]), mean=stacked.mean(axis=0).tolist(),
                          std=np.maximum(stacked.std(axis=0), 1e-8).tolist())
        if self.values:
            v = label_values(labels, "the train data")
            config.update(value_mean=float(v.mean()), value_std=float(max(v.std(), 1e-8)))
        else:
            config["labels"] = every_class or sorted(set(labels))
            if len(config["labels"]) < 2:
                raise DataError(f"data: every training example is labelled {config['labels'][0]!r}; a classifier needs "
                                "at least two classes (for a regressor of numeric labels, pass --target value)")
        return config

    def _encode_inputs(self, opts, items, split: str):
        return encode_inputs(self.config, opts, items, f"the {split} data")

    def encode_targets(self, labels, split: str) -> np.ndarray:
        return encode_targets(self.config, labels, f"the {split} data")


def encode_inputs(config: dict, opts: ClassifyOptions, items, where: str) -> list[np.ndarray]:
    if config["input"] == "text":
        tok = Tokenizer.from_dict(config["vocabulary"])
        out = []
        for i, t in enumerate(items):
            ids = tok.encode(t.lower() if opts.lowercase else t)
            if ids.size == 0:
                raise DataError(f"{where}: example {i + 1} has no {tok.unit} ({t!r})")
            out.append(ids)
        return out
    mean, std = np.array(config["mean"]), np.array(config["std"])
    segments = config.get("segments", "mean")  # an encoding from before --segments: means
    znorm = stored_znorm(config, opts)
    channels = len(mean) // input_width(segments, znorm)  # the data's, before --segments range and --znorm scaled widen them
    for i, s in enumerate(items):
        shape = np.shape(s)
        if len(shape) != 2 or shape[1] != channels:
            raise DataError(f"{where}: example {i + 1} has shape {shape}; the model reads series of {channels} channel(s)")
    return [np.clip((s - mean) / std, -INPUT_BOUND, INPUT_BOUND).astype(np.float32) for s in prepare_series(opts, items, segments, znorm)]


def resolve_segments(opts: ClassifyOptions, items) -> str:
    """--segments for the training series ``items``: auto becomes range when one is longer than
    --max-length (shortening would average within segments), else mean."""
    if opts.segments != "auto":
        return opts.segments
    return "range" if opts.max_length and any(len(s) > opts.max_length for s in items) else "mean"


def resolve_znorm(opts: ClassifyOptions, items) -> str:
    """--znorm for the training series ``items``: auto becomes scaled when more than FLAT_SHARE of
    the series' channels have a standard deviation below SMALL_SCALE of the channel's over all the
    series, else none."""
    if opts.znorm != "auto":
        return opts.znorm
    series = [np.asarray(s, dtype=np.float64) for s in items]
    overall = np.concatenate(series).std(axis=0)  # (C,)
    each = np.array([s.std(axis=0) for s in series])  # (N, C)
    return "scaled" if np.mean(each < SMALL_SCALE * overall) > FLAT_SHARE else "none"


def stored_znorm(encoding: dict, opts: ClassifyOptions) -> str:
    """The --znorm a model was trained with: its encoding's (resolved from auto), or, for an
    encoding from before --znorm auto, its options' (none or series)."""
    return encoding.get("znorm") or ("none" if opts.znorm == "auto" else opts.znorm)


def prepare_series(opts: ClassifyOptions, items, segments: str, znorm: str) -> list[np.ndarray]:
    """Each (T_i, C) series as the network's input before channel standardisation: z-normalised
    on its own (``znorm`` series or scaled), shortened to --max-length steps (segment means, or with
    ``segments`` range their means, minima and maxima: (T', 3C)), with scaled each channel's level
    and scale (``series_prep.level_and_scale``) as 2C more channels, the same at every step; float64."""
    shorten = summarise_down if segments == "range" else average_down
    out = []
    for s in items:
        s = np.asarray(s, dtype=np.float64)
        prepared = shorten(z_normalise(s) if znorm in ("series", "scaled") else s, opts.max_length)
        if znorm == "scaled":
            prepared = np.concatenate([prepared, np.broadcast_to(level_and_scale(s), (len(prepared), 2 * s.shape[1]))], axis=1)
        out.append(prepared)
    return out


def label_values(labels, where: str) -> np.ndarray:
    """A regressor's labels as numbers, each within float32's range as the data's values are (so
    their mean and spread stay finite)."""
    try:
        v = np.array([float(x) for x in labels])
    except ValueError as exc:
        raise DataError(f"{where}: a regressor needs numeric labels ({exc})") from None
    bad = np.flatnonzero(~(np.abs(v) <= np.finfo(np.float32).max))  # NaN too
    if bad.size:
        raise DataError(f"{where}: example {bad[0] + 1} is labelled {labels[bad[0]]!r}; a regressor's labels must be "
                        f"numbers within ±{np.finfo(np.float32).max:.3g}")
    return v


def encode_targets(config: dict, labels, where: str) -> np.ndarray:
    if config["values"]:
        v = label_values(labels, where)
        return ((v - config["value_mean"]) / config["value_std"]).astype(np.float32)
    index = {c: i for i, c in enumerate(config["labels"])}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise DataError(f"{where}: labels the model never saw: {', '.join(map(repr, unknown[:5]))}; "
                        f"it knows {', '.join(map(repr, config['labels']))}")
    return np.array([index[c] for c in labels], dtype=np.int64)


# ---- the model, predictions, metrics -----------------------------------------------------------


def build_model(opts: ClassifyOptions, config: dict, seed: int) -> SequenceClassifier:
    outputs = 1 if config["values"] else len(config["labels"])
    kw = (dict(vocab_size=len(config["vocabulary"]["tokens"]), embed_size=opts.embed) if config["input"] == "text"
          else dict(input_size=config["channels"]))
    return SequenceClassifier(outputs, opts.hidden, opts.cell, opts.layers, opts.bidirectional, opts.pooling,
                              dropout=opts.dropout, rng=np.random.default_rng(seed), cell_settings=opts.cell_option, init=opts.init, **kw)


def predict(model: SequenceClassifier, inputs: list[np.ndarray], batch_size: int) -> np.ndarray:
    """Logits (N, classes) or standardised values (N, 1), in the order of ``inputs``."""
    out = None
    with no_grad():
        model.eval()
        for idx in batches_in_order([len(s) for s in inputs], batch_size):
            x, lengths = pad([inputs[i] for i in idx])
            y = model(x, lengths)
            out = np.empty((len(inputs), y.shape[1]), np.float64) if out is None else out
            out[idx] = y
    return out if out is not None else np.empty((0, model.head.out_features), np.float64)  # no inputs (a job's rank)


def predict_ensemble(members: list[SequenceClassifier], inputs: list[np.ndarray], batch_size: int, values: bool) -> np.ndarray:
    """``predict`` for the networks of an ensemble (``--ensemble``): a regressor's mean values (N, 1),
    or the log of the mean of their class probabilities (N, classes), which ``score`` and
    ``softmax`` read as logits (softmax(log p) = p). One network: its own outputs."""
    outputs = [predict(m, inputs, batch_size) for m in members]
    if len(outputs) == 1:
        return outputs[0]
    if values:
        return np.mean(outputs, axis=0)
    with np.errstate(divide="ignore"):  # a probability that underflowed to 0: log 0 = −inf, which softmax maps back to 0
        return np.log(np.mean([softmax(o) for o in outputs], axis=0))


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def score(config: dict, outputs: np.ndarray, targets: np.ndarray) -> dict:
    """The metrics of predictions against encoded targets; "loss" is what early stopping watches."""
    if config["values"]:
        scale = config["value_std"]
        err = (outputs[:, 0] - targets) * scale
        spread = np.sum((targets * scale - np.mean(targets * scale)) ** 2)
        return {"loss": float(np.mean((outputs[:, 0] - targets) ** 2)), "mse": float(np.mean(err**2)),
                "mae": float(np.mean(np.abs(err))), "r2": float(1 - np.sum(err**2) / spread) if spread > 0 else math.nan}
    p = softmax(outputs)
    pred = outputs.argmax(axis=1)
    labels = config["labels"]
    true_names, pred_names = [labels[i] for i in targets], [labels[i] for i in pred]
    return {"loss": float(-np.mean(np.log(np.maximum(p[np.arange(len(targets)), targets], 1e-300)))),
            "accuracy": M.accuracy(true_names, pred_names), "macro_f1": M.macro_f1(true_names, pred_names, labels)}


class ClassifyRun(BucketedRun):
    """Training and validation of one classifier: the trainer's `run`. A model trained on all of a
    cross-validated training part has no validation split: its validation metrics are the
    cross-validated ones at the step it has reached. ``final``: what classifies (``final_of``); the
    run of the first network of a model that keeps its fold networks (all but refit) carries them in
    its state until they are stored."""

    def __init__(self, model: SequenceClassifier, splits: Splits, opts: ClassifyOptions, seed: int, final: str = "refit"):
        self.model, self.splits, self.opts, self.seed, self.final = model, splits, opts, seed, final
        self.carries_folds = final != "refit"
        self.steps_done = 0
        self.loss_fn = MSELoss() if splits.config["values"] else CrossEntropyLoss()
        self.batches = BucketBatches([len(s) for s in splits.inputs["train"]], opts.batch_size, seed)
        self.group = parallel.world()
        if not splits.config["values"]:  # a uniform guess: the trainer's yardstick for divergence
            self.uniform_loss = math.log(len(splits.config["labels"]))

    def state_dict(self) -> dict:
        """The batches' position, the steps done and (``carries_folds``) the fold networks, which the
        checkpoint keeps until ``ClassifyTask.after_training`` stores them with the model."""
        if self.carries_folds and self.splits.fold_weights is None:  # resumed from no checkpoint: before any step
            self._lost_fold_networks()
        folds = {f"{FOLD_PREFIX.format(k)}{name}": v for k, weights in enumerate(self.splits.fold_weights or ())
                 for name, v in weights.items()} if self.carries_folds else {}
        return dict(super().state_dict(), steps_done=self.steps_done, **folds)

    def load_state_dict(self, d: dict) -> None:
        super().load_state_dict(d)
        self.steps_done = int(d.get("steps_done", 0))
        if self.carries_folds:
            self.splits.fold_weights = fold_networks(d, self.splits.folds)
            if self.splits.fold_weights is None:
                self._lost_fold_networks()

    def _lost_fold_networks(self) -> None:
        """A run stopped between config.json and its first checkpoint kept nothing of its
        cross-validation: --final both and folds are refused, and auto where it means folds; auto
        with a refit goes on with it alone (``keep_fold_networks`` records that)."""
        if self.opts.final != "auto" or self.final == "folds":
            raise fold_networks_lost(self.opts.final)
        self.carries_folds = False

    def train_step(self) -> tuple[float, int, int]:
        self.steps_done += 1
        idx = self.batches.next()
        idx = parallel.share_of(idx)
        x, lengths = pad([self.splits.inputs["train"][i] for i in idx])
        if self.opts.augment:
            x = self.augmented(x, idx)
        y = self.splits.targets["train"][idx]
        out = self.model(x, lengths)
        loss = self.loss_fn(out[:, 0] if self.splits.config["values"] else out, y)
        d = self.loss_fn.backward()
        self.model.backward(d[:, None] if self.splits.config["values"] else d)
        return loss, int(lengths.sum()), len(idx)

    def augmented(self, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """The padded batch x (T, B, C) of training examples ``idx`` scaled and jittered (--augment).
        Example i of step k draws from a generator seeded by (seed, k, i), so that a resumed run, and
        each rank of a data-parallel one, draws what an uninterrupted single process would."""
        spread = self.opts.augment
        out = np.empty_like(x)
        for column, i in enumerate(idx):
            rng = np.random.default_rng([self.seed, self.steps_done, int(i)])
            scale = rng.normal(1.0, spread, x.shape[2])  # (C,): one factor per series and channel
            noise = rng.normal(0.0, NOISE_SHARE * spread, (x.shape[0], x.shape[2]))  # padding too: the network masks it
            out[:, column] = x[:, column] * scale + noise
        return out

    def evaluate(self) -> dict:
        if "valid" not in self.splits.inputs:
            return cross_validated(self.splits.cross_validation, self.steps_done)
        inputs = self.splits.inputs["valid"]  # in a job, each rank predicts its share
        outputs = self.group.gather_rows(predict(self.model, inputs[self.group.share(len(inputs))], self.opts.batch_size), axis=0)
        return score(self.splits.config, outputs, self.splits.targets["valid"])


def fold_networks_lost(final: str) -> ValueError:
    """The error of a --final ``final`` run resumed without the fold networks it needs."""
    return ValueError(f"--final {final}: the fold networks were lost (the run stopped before its first checkpoint); "
                      "train the model again with --overwrite")


def cross_validated(result: dict, step: int) -> dict:
    """The mean validation metrics of the cross-validation ``result`` at the last step it
    validated at or before ``step`` (its first, before that)."""
    curve = result["curve"]
    reached = [r for r in curve if r["step"] <= step] or curve[:1]
    return {k: v for k, v in reached[-1].items() if k != "step"}


class TrainedClassifier(Exportable):
    """A trained classifier (or regressor) loaded from its directory: classify, evaluate, describe."""

    def __init__(self, out_dir: Path, config: dict, model: SequenceClassifier):
        self.dir, self.config, self.model = Path(out_dir), config, model
        self.opts = ClassifyOptions(**config["task_options"])
        self.encoding = config["encoding"]
        self.members = [model]  # an ensemble's networks, ``model`` first (ClassifyTask.load adds the others)

    def outputs(self, inputs: list[np.ndarray]) -> np.ndarray:
        """Logits (N, classes) or standardised values (N, 1) of the encoded ``inputs``: an
        ensemble's averaged (``predict_ensemble``)."""
        return predict_ensemble(self.members, inputs, self.opts.batch_size, self.encoding["values"])

    @property
    def labels(self) -> list[str]:
        return self.encoding.get("labels", [])

    def classify(self, items) -> list[dict]:
        """For each text (or series): {"label", "probabilities": {label: p}}, or {"value"} for a regressor."""
        inputs = encode_inputs(self.encoding, self.opts, list(items), "input")
        outputs = self.outputs(inputs)
        if self.encoding["values"]:
            values = outputs[:, 0] * self.encoding["value_std"] + self.encoding["value_mean"]
            return [{"value": float(v)} for v in values]
        p = softmax(outputs)
        return [{"label": self.labels[int(row.argmax())], "probabilities": dict(zip(self.labels, map(float, row)))} for row in p]

    def onnx_model(self):
        """The ONNX model (``export/onnx.py``'s ``classifier_graph``): probabilities, or a
        regressor's values, from token ids or raw series and lengths; its metadata holds the
        encoding (vocabulary or channel statistics, labels)."""
        meta = {**export_metadata(self), "encoding": json.dumps(self.encoding), "labels": json.dumps(self.labels)}
        if self.encoding["input"] == "text":
            return onnx_export.classifier_graph(self.members, self.encoding, meta)
        o = self.opts
        segments, znorm = self.encoding.get("segments", "mean"), stored_znorm(self.encoding, o)
        channels = self.encoding["channels"] // input_width(segments, znorm)  # the data's
        meta["inputs"] = (f"x (B, T, {channels}) float32: each series as it is (any values past its length)"
                          + (", z-normalised per series in the graph" if znorm == "series" else "")
                          + (", z-normalised per series with its level and scale as channels, in the graph" if znorm == "scaled" else "")
                          + (f", averaged down to {o.max_length} steps in the graph" if o.max_length else "")
                          + (" (each segment's mean, minimum and maximum: --segments range)" if segments == "range" else "")
                          + "; lengths (B,) int64")
        return onnx_export.classifier_graph(self.members, self.encoding, meta, znorm=znorm, max_length=o.max_length,
                                            segments=segments)

    def evaluate(self, data: str | None = None) -> dict:
        """Metrics on the validation split and the test split (or on ``data``), with a confusion
        matrix (confusion.png in the model directory) for a classifier."""
        if data is None:
            splits = Splits(self.opts, self.config["training"]["seed"], stored=self.encoding)
            parts = {k: (splits.inputs[k], splits.targets[k]) for k in ("valid", "test") if k in splits.inputs}
        else:
            source = load_classification(data)
            parts = {"data": (encode_inputs(self.encoding, self.opts, source.items, data),
                              encode_targets(self.encoding, source.labels, data))}
        result = {}
        cv = self.encoding.get("cross_validation")
        if cv and data is None:  # no validation split: the cross-validated metrics at the chosen step
            result.update({f"cv_{k}": v for k, v in cross_validated(cv, cv["steps"]).items()}, cv_folds=cv["folds"])
        for name, (inputs, targets) in parts.items():
            outputs = self.outputs(inputs)
            result.update({f"{name}_{k}": v for k, v in score(self.encoding, outputs, targets).items()})
            result[f"{name}_examples"] = len(inputs)
        if not self.encoding["values"] and parts:
            last = list(parts)[-1]  # the test split when there is one, whose outputs the loop ended with
            targets = parts[last][1]
            pred = outputs.argmax(axis=1)
            cm = M.confusion_matrix([self.labels[i] for i in targets], [self.labels[i] for i in pred], self.labels)
            result[f"{last}_confusion"] = "\n" + M.format_confusion(cm, self.labels)
            result["confusion_plot"] = str(plot_confusion(cm, self.labels, self.dir / "confusion.png", f"{last} split"))
        return result

    def describe(self, short: bool = False) -> str:
        c, o, e = self.config, self.opts, self.encoding
        m = c.get("metrics", {})
        what = "regressor" if e["values"] else f"{len(self.labels)} classes"
        inputs = (f"{len(e['vocabulary']['tokens'])} {e['vocabulary']['kind']} tokens" if e["input"] == "text"
                  else f"series of {e['channels']} channel(s)")
        lines = [
            f"model      {self.dir}: task classify, {what} ({c.get('status', '?')}), rnnkit {c.get('rnnkit_version')}",
            f"network    {o.layers}-layer {'bidirectional ' if o.bidirectional else ''}{cell_name(o.cell, o.cell_option, o.init)}, hidden {o.hidden}, "
            f"{o.pooling} pooling, dropout {o.dropout}; {self.model.num_parameters():,} parameters",
            f"input      {inputs}" + ("" if e["input"] == "text" else
                                      f"; {ZNORM_WORDS[stored_znorm(e, o)]}"
                                      f"{f'at most {o.max_length} steps' if o.max_length else 'every step'}"
                                      f"{' (segment mean, minimum, maximum)' if e.get('segments') == 'range' else ''}"),
            f"data       {c['data']['source']}: " + ", ".join(f"{v:,} {k.split('_')[0]}" for k, v in c["data"].items() if k.endswith("_examples")),
        ]
        if not e["values"]:
            lines.append(f"classes    {', '.join(self.labels)}")
        cv, stored = e.get("cross_validation"), c.get("final", {})
        final = o.stored_final(e)
        refit = final != "folds"
        if cv:
            lines.append(f"steps      {cv['steps']}, chosen by {cv['folds']}-fold cross-validation on the training data "
                         f"(mean validation {cv['monitor']}); " + ("trained on all of it" if refit else "no network trained on all of it"))
        if stored.get("folds"):
            lines.append(f"final      {'also ' if refit else ''}the {stored['folds']} fold networks at step {cv['steps']}: "
                         f"every network's {'values' if e['values'] else 'probabilities'} averaged "
                         f"(--final {o.final}{': ' + final if o.final == 'auto' else ''})")
        elif "final" in c:
            lines.append("final      the network trained on all the data alone: the fold networks were lost (the run "
                         "stopped before its first checkpoint)")
        elif final != "refit":
            lines.append(f"final      the fold networks are not stored yet: `rnnkit train --resume {self.dir}` stores them "
                         "(from its checkpoint)")
        if o.ensemble > 1:
            n, seed = networks_trained(c), c["training"]["seed"]
            lines.append(f"ensemble   {n} networks (seeds {seed}…{seed + n - 1}), {m.get('step')} steps each, their "
                         "probabilities averaged" + ("" if n == o.ensemble else
                                                     f"; {n} of {o.ensemble} trained: `rnnkit train --resume {self.dir}` "
                                                     "trains the others"))
        if m:
            lines.append(validation_line(m) + (" (cross-validated)" if cv else "") + (", of the first network" if o.ensemble > 1 else ""))
            if c.get("ensemble", {}).get("metrics"):
                lines.append(validation_line(c["ensemble"]["metrics"]) + ", of the ensemble")
        return "\n".join(lines if not short else [lines[0], lines[-1]])


#: networks an ensemble's first one is followed by: their weights are ``member{k}.NAME`` in ``md.MEMBERS``
MEMBER_PREFIX = "member{}."
#: --final both or folds (given or auto's): fold k's network is ``fold{k}.NAME`` in ``md.MEMBERS`` (with folds from
#: k = 1: fold 0's is the model's own) and in the run's checkpointed state
FOLD_PREFIX = "fold{}."


def networks_named(weights: dict, prefixes: list[str]) -> list[dict]:
    """Each prefix's network from ``weights``: the entries named ``PREFIX + NAME``, as {NAME: array}."""
    return [{name[len(prefix):]: v for name, v in weights.items() if name.startswith(prefix)} for prefix in prefixes]


def fold_networks(weights: dict, folds: int, within: str = "") -> list[dict] | None:
    """The ``folds`` fold networks' weights in ``weights`` (names ``{within}fold{k}.NAME``), or None
    when any is missing."""
    networks = networks_named(weights, [within + FOLD_PREFIX.format(k) for k in range(folds)])
    return networks if all(networks) else None


def keep_fold_networks(out: Path, config: dict, options: ClassifyOptions) -> None:
    """--final both or folds (given or auto's): the fold networks, carried in the run's checkpoint
    since the cross-validation, join ``md.MEMBERS`` (atomically; with folds, fold 0 is the model's
    own network and stays out), then config.json records them; once (a resumed run that finds a
    record does nothing). Where the checkpoint lacks them (lost before the first one), that is an
    error, but for auto with a refit, which records 0 fold networks."""
    if "final" in config:
        return
    encoding = config["encoding"]
    cv = encoding["cross_validation"]
    folds, refit = cv["folds"], options.stored_final(encoding) != "folds"
    weights, _, _ = md.load_checkpoint(out)
    networks = fold_networks(weights, folds, within="run.")  # the run's arrays, as the Trainer checkpoints them
    if networks is None and (options.final != "auto" or not refit):
        raise md.ModelDirError(f"the checkpoint in {out} lacks the fold networks that --final {options.final} keeps; "
                               "train the model again with --overwrite")
    if networks is not None:
        members = md.load_weights(out / md.MEMBERS) if (out / md.MEMBERS).exists() else {}
        members.update({FOLD_PREFIX.format(k) + name: v for k, network in enumerate(networks) if refit or k > 0
                        for name, v in network.items()})
        md.save_weights(out / md.MEMBERS, members)
    config["final"] = {"folds": 0 if networks is None else folds, **({} if refit else {"refit": False})}
    md.atomic_write_json(out / md.CONFIG, config)


def network_trainer(options: ClassifyOptions, training, splits: Splits, k: int, steps: int, out_dir, config: dict,
                    quiet: bool) -> Trainer:
    """The Trainer of an ensemble's network ``k``: the first network's data (``splits``) and options,
    seed --seed + k, ``steps`` steps (``TrainingOptions.for_steps``: the last step's weights kept),
    writing the model directory ``out_dir``; ``config`` the first network's."""
    seed = training.seed + k
    once = training.for_steps(steps, seed=seed)
    model = within_memory(lambda: build_model(options, splits.config, seed), options, training=True)
    return Trainer(model, ClassifyRun(model, splits, options, seed), out_dir, dict(config, training=asdict(once), status="training"),
                   once, quiet, ClassifyTask.monitors[training.monitor])


def networks_trained(config: dict) -> int:
    """How many of an ensemble's networks are trained, the first included: those config.json counts,
    if they were trained for the steps the first network kept (a resumed run may have trained it on)."""
    done = config.get("ensemble", {})
    return done["trained"] if done and done.get("steps") == config.get("metrics", {}).get("step") else 1


#: config.json's record of an ensemble's networks after the first (``ClassifyTask.after_training``)
ENSEMBLE_SCHEMA = {"type": "object", "required": ["steps", "trained"],
                   "properties": {"steps": {"type": "integer", "minimum": 1}, "trained": {"type": "integer", "minimum": 1},
                                  "metrics": {"type": "object"}}}

#: config.json's record of the fold networks kept with the model (``keep_fold_networks``; 0: lost, the refit
#: alone); refit false (--final folds): no network trained on all the data, fold 0's is the model's own
FINAL_SCHEMA = {"type": "object", "required": ["folds"], "properties": {"folds": {"type": "integer", "minimum": 0},
                                                                        "refit": {"type": "boolean"}}}

#: the encoding's record of a cross-validation (``tasks.cross_validation.cross_validate``)
CV_SCHEMA = {"type": "object", "required": ["folds", "steps", "monitor", "curve"],
             "properties": {"folds": {"type": "integer", "minimum": 2}, "steps": {"type": "integer", "minimum": 1},
                            "monitor": {"type": "string"},
                            "curve": {"type": "array", "minItems": 1,
                                      "items": {"type": "object", "required": ["step", "loss"],
                                                "properties": {"step": {"type": "integer", "minimum": 1}}}},
                            "final": {"enum": ["refit", "both", "folds"]}}}


@register
class ClassifyTask(Task):
    name = "classify"
    action = "classify"
    description = "many-to-one: classify (or regress) texts and numeric series with a recurrent network"
    action_help = "Classify texts (or series) with a trained model: each label with its probability, or a value for a regressor."
    Options = ClassifyOptions
    config_schema = {"type": "object", "required": ["encoding", "data"], "properties": {
        "encoding": {"type": "object", "required": ["values", "input"],
                     "properties": {"values": {"type": "boolean"}, "input": {"enum": ["text", "series"]},
                                    "vocabulary": VOCABULARY_SCHEMA, "channels": {"type": "integer", "minimum": 1},
                                    "mean": MEANS_SCHEMA, "std": SPREADS_SCHEMA, "labels": {**NAMES_SCHEMA, "minItems": 2},
                                    "value_mean": MEAN_SCHEMA, "value_std": SPREAD_SCHEMA,
                                    "cross_validation": CV_SCHEMA, "segments": {"enum": ["mean", "range"]},
                                    "znorm": {"enum": ["none", "series", "scaled"]}},
                     "sameCount": ["channels", "mean", "std"],
                     "allOf": [{"if": {"properties": {"input": {"const": "text"}}}, "then": {"required": ["vocabulary"]},
                                "else": {"required": ["channels", "mean", "std"]}},
                               {"if": {"properties": {"values": {"const": True}}},
                                "then": {"required": ["value_mean", "value_std"]}, "else": {"required": ["labels"]}}]},
        "data": data_schema("train_examples", "valid_examples"), "ensemble": ENSEMBLE_SCHEMA, "final": FINAL_SCHEMA}}
    monitors = {"loss": "min", "accuracy": "max", "macro_f1": "max", "mse": "min", "mae": "min", "r2": "max"}  # mse, mae, r2: a regressor's

    Trained = TrainedClassifier

    def prepare(self, options: ClassifyOptions, seed: int, stored: dict | None = None):
        splits = Splits(options, seed, stored)
        return splits, splits.config, splits.description

    def make_model(self, options: ClassifyOptions, encoding: dict, seed: int) -> SequenceClassifier:
        return build_model(options, encoding, seed)

    def make_run(self, model, splits: Splits, options: ClassifyOptions, seed: int) -> ClassifyRun:
        """The run; with --final folds, after the cross-validation, its model is fold 0's network, trained
        for the chosen steps (``steps_trained``)."""
        run = ClassifyRun(model, splits, options, seed, final=options.final_of(splits.folds, splits.kind, splits.cross_validation))
        if splits.fold_weights is not None and run.final == "folds":
            model.load_state_dict(splits.fold_weights[0])
            run.steps_done = splits.cross_validation["steps"]
        return run

    def steps_trained(self, run: ClassifyRun) -> int:
        return run.steps_done  # a new run's: 0, but for --final folds (make_run)

    def rebuild(self, config: dict, out_dir: Path, quiet: bool):
        """As ``Task.rebuild``; a --final folds model has no network to train on: a resume that asks
        for other steps than the cross-validation chose is refused."""
        options, cv = ClassifyOptions(**config["task_options"]), config["encoding"].get("cross_validation")
        if options.stored_final(config["encoding"]) == "folds":
            if config["training"]["steps"] != cv["steps"]:
                raise TrainingError(f"--steps {config['training']['steps']}: {out_dir} holds its cross-validation's {cv['folds']} "
                                    f"fold networks at step {cv['steps']} (--final {options.final}), none of them trained on all "
                                    "the data, so --resume has no run to continue; train a new model (with --final refit or both "
                                    "for a network that trains on all of it)")
            if not md.has_checkpoint(out_dir):  # stopped before it: refused before fit would write a new network there
                raise fold_networks_lost(options.final)
        return super().rebuild(config, out_dir, quiet)

    def load(self, out_dir: Path, config: dict) -> TrainedClassifier:
        """The trained classifier, with an ensemble's other networks (those trained) and the kept fold
        networks (--final both, folds, auto) from ``md.MEMBERS``."""
        trained = super().load(out_dir, config)
        n = networks_trained(config)
        if n > trained.opts.ensemble:
            raise md.ModelDirError(f"{md.CONFIG} in {out_dir}: ensemble.trained: {n} networks, but "
                                   f"task_options.ensemble is {trained.opts.ensemble}; retrain or restore it")
        final = config.get("final", {})
        folds, refit = final.get("folds", 0), final.get("refit", True)
        cv_folds_done = (trained.encoding.get("cross_validation") or {}).get("folds")
        o = trained.opts
        chosen = o.stored_final(trained.encoding)
        as_chosen = folds == cv_folds_done and chosen != "refit" and refit == (chosen != "folds")
        if (folds or not refit) and not as_chosen:
            raise md.ModelDirError(f"{md.CONFIG} in {out_dir}: final: {folds} fold networks{'' if refit else ' without a refit'}, "
                                   f"but the model was cross-validated with {cv_folds_done} folds and --final {o.final}; "
                                   "retrain or restore it")
        if chosen == "folds" and "final" not in config:  # its network alone is one fold's: not the model
            raise md.ModelDirError(f"{out_dir}: the fold networks are not stored yet (the run stopped before it stored "
                                   f"them); `rnnkit train --resume {out_dir}` stores them")
        weights = md.load_weights(Path(out_dir) / md.MEMBERS) if n > 1 or folds else {}
        # with --final folds, fold 0's network is the model's own (model.safetensors)
        prefixes = [MEMBER_PREFIX.format(k) for k in range(1, n)] + [FOLD_PREFIX.format(k) for k in range(0 if refit else 1, folds)]
        for network in networks_named(weights, prefixes):
            model = within_memory(lambda: build_model(trained.opts, trained.encoding, 0), trained.opts)
            model.load_state_dict(network)
            trained.members.append(model)
        return trained

    def after_training(self, out_dir: Path, quiet: bool) -> None:
        """``--ensemble K``: networks 2 … K, each trained as the first one was (its data, splits and
        options), with seed --seed + k, for the steps the first one kept (where the cross-validation
        or the validation split stopped it), one after another in DIR/member-run (a model directory
        of its own, with its checkpoints). A finished network's weights join ``md.MEMBERS``
        (atomically), then config.json counts it; a resumed run skips the networks counted and
        resumes the one in member-run, so a killed ensemble ends with the same weights."""
        group, out = parallel.world(), Path(out_dir)
        config = group.on_first(lambda: md.load_config(out))
        options, training = self.check_config(config, f"{md.CONFIG} in {out}")
        self._train_other_networks(out, config, options, training, quiet)
        if options.stored_final(config["encoding"]) != "refit":
            group.on_first(lambda: keep_fold_networks(out, config, options))

    def _train_other_networks(self, out: Path, config: dict, options: ClassifyOptions, training, quiet: bool) -> None:
        """--ensemble K: networks 2 … K (``after_training``)."""
        group = parallel.world()
        first = networks_trained(config)
        if first >= options.ensemble:
            return
        steps = int(config["metrics"]["step"])
        splits, encoding, _ = self.prepare(options, training.seed, config["encoding"])
        run_dir = out / md.MEMBER_RUN
        # those counted (a crash between the two writes may have left one more in the file), and fold
        # networks (--final both, auto), stored once these are all trained
        kept = [MEMBER_PREFIX.format(k) for k in range(1, first)]
        members = group.on_first(lambda: {name: v for name, v in md.load_weights(out / md.MEMBERS).items()
                                          if name.startswith((*kept, "fold"))} if (out / md.MEMBERS).exists() else {})
        for k in range(first, options.ensemble):
            seed = training.seed + k
            trainer = network_trainer(options, training, splits, k, steps, run_dir, config, quiet)

            def stopped_here() -> bool:  # this network's run was stopped: resume it; any other is started again
                if md.has_checkpoint(run_dir) and md.load_config(run_dir)["training"] == asdict(trainer.opt):
                    return True
                shutil.rmtree(run_dir, ignore_errors=True)
                return False

            if not quiet:
                sys.stderr.write(f"ensemble: network {k + 1} of {options.ensemble}, seed {seed}, {steps} steps\n")
            if group.on_first(stopped_here):
                group.settled(trainer.resume)
            try:
                trainer.fit()
            except TrainingInterrupted as exc:
                if group.first:
                    md.atomic_write_json(out / md.CONFIG, dict(config, status="interrupted"))
                raise TrainingInterrupted(f"stopped while training network {k + 1} of the ensemble's {options.ensemble} "
                                          f"(a checkpoint is saved); continue with `rnnkit train --resume {out}`",
                                          exc.signum) from None
            if group.first:
                prefix = MEMBER_PREFIX.format(k)
                members.update({prefix + name: v for name, v in md.load_model_weights(run_dir).items()})
                md.save_weights(out / md.MEMBERS, members)
                config["ensemble"] = {"steps": steps, "trained": k + 1}
                md.atomic_write_json(out / md.CONFIG, config)
                shutil.rmtree(run_dir)
        if "valid" in splits.inputs and group.first:  # the ensemble's validation metrics, beside the first network's
            ensemble = self.load(out, config)
            config["ensemble"]["metrics"] = score(encoding, ensemble.outputs(splits.inputs["valid"]), splits.targets["valid"])
            md.atomic_write_json(out / md.CONFIG, config)

    def settle(self, options: ClassifyOptions, training, splits: Splits, encoding: dict, quiet: bool) -> None:
        """A cross-validated training part: the folds' trainings choose the steps; the final run
        trains that long, without early stopping (the cross-validation did that), or (--final folds)
        not at all. Where the fold networks classify (``final_of``, which the record keeps), their
        weights at that step are kept (``splits.fold_weights``)."""
        if not splits.folds:
            if options.final in ("both", "folds"):
                raise ValueError(f"--final {options.final}: the fold networks come from cross-validation, but this training "
                                 f"data ({splits.description['train_examples']} examples, --cv-folds {options.cv_folds}) is "
                                 "not cross-validated; give --cv-folds K (K >= 2) or --final refit")
            return

        def make_fold(k: int):
            fold = Splits(options, training.seed, cv_fold=k)
            model = within_memory(lambda: build_model(options, fold.config, training.seed), options, training=True)
            return model, ClassifyRun(model, fold, options, training.seed), {"task": self.name, "cross_validation_fold": k}

        final = options.final_of(splits.folds, splits.kind)
        result = cross_validate(make_fold, splits.folds, training, self.monitors[training.monitor], quiet,
                                keep_weights=final != "refit")
        splits.fold_weights = result.pop("fold_weights", None)
        result["final"] = final
        encoding["cross_validation"] = splits.cross_validation = result
        training.steps, training.patience = result["steps"], 0

    # ---- the action verb: rnnkit classify DIR ---------------------------------------------------
    def add_action_arguments(self, p) -> None:
        p.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify (or give --data)")
        p.add_argument("--data", metavar="FILE", help="a file of inputs: one text per line (a `label<TAB>` prefix is "
                       "ignored), or numeric series as for training: a .csv file of rows `label,v1,v2,…`, an .npz "
                       "file with X and y, or a .ts file of the UCR/UEA archive")
        p.add_argument("--top", type=int, default=3, help="labels shown per input, most probable first (default: 3)")

    def act(self, model: TrainedClassifier, args) -> int:
        if args.top < 1:
            raise ValueError(f"--top: expected a number of labels >= 1, got {args.top}")
        if args.data and not args.texts:  # a file: texts (a label<TAB> prefix dropped) or series
            items = load_classification(args.data, labelled=False).items
        else:
            items = input_texts(args)
        if model.encoding["input"] != "text" and isinstance(items[0], str):
            raise ValueError(f"TEXT: {model.dir} classifies numeric series; give them with --data FILE")
        for item, result in zip(items, model.classify(items)):
            shown = item if isinstance(item, str) else f"series of {len(item)} steps"
            if "value" in result:
                sys.stdout.write(f"{result['value']:.6g}\t{shown}\n")
            else:
                top = sorted(result["probabilities"].items(), key=lambda kv: -kv[1])[: args.top]
                sys.stdout.write("  ".join(f"{k} {v:.3f}" for k, v in top) + f"\t{shown}\n")
        return 0
