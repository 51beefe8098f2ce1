"""Task `music`: polyphonic music as piano rolls, next-frame prediction → compose.

Each chorale is a piano roll of eighth-note frames (``music/chorales.py``), by default transposed
so that its key signature has no sharps or flats (major keys in C, minor keys in A minor). The
model reads frames 0 … T−1, an all-silent start frame first, and gives each pitch of frames 1 … T
its own Bernoulli probability (``models/piano_roll.py``); the loss, and the metric, is the
negative log-likelihood of a frame in nats: summed over the pitches, averaged over the frames,
as Boulanger-Lewandowski et al. 2012 and Chung et al. 2014 report it.

Data: exact duplicates (the same roll in any key) are dropped; harmonisations of one melody (the
same steps between the soprano's pitches, repeated notes joined) are one group, and the split
draws whole groups by the seed, so no melody is in two parts. The pitch range is the one the
whole source uses (as the JSB rolls' 88 keys are fixed before any split); config.json keeps it.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data import DataError
from ..data.batching import BucketBatches, batches_in_order, pad
from ..data.fingerprint import check_data, record_data
from ..export import onnx as onnx_export
from ..models.piano_roll import PianoRollModel
from ..models.sequence_model import cell_choices, cell_help, cell_name, cell_option_help, init_help
from ..music.chorales import BUILT_IN, FRAMES_PER_BAR, GRID, key_shift, read_corpus, transpose
from ..nn import BCEWithLogitsLoss, no_grad
from ..training import parallel
from ..training.trainer import check_options
from .base import BucketedRun, Exportable, Task, data_schema, export_metadata, network_checks, register, validation_line

MAX_BARS = 1000  # --bars: a bound that keeps a mistyped count from sampling for hours
_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


@dataclass
class MusicOptions:
    data: str = BUILT_IN
    transpose: bool = True
    cell: str = "lstm"
    cell_option: dict = field(default_factory=dict)
    init: str = "rnnkit"
    hidden: int = 128
    layers: int = 1
    dropout: float = 0.0
    batch_size: int = 16
    valid_fraction: float = 0.1
    test_fraction: float = 0.1

    CHOICES = {"cell": cell_choices()}
    HELP = {
        "data": f"{BUILT_IN} (music21's corpus: `rnnkit data install {BUILT_IN}`, pip install 'rnnkit[music]') or a "
                "directory of MusicXML files (.mxl, .musicxml, .xml) of four voices each",
        "transpose": "transpose each chorale so that its key signature has no sharps or flats (C major, A minor)",
        "cell": cell_help(),
        "cell_option": cell_option_help(),
        "init": "how the parameters start: " + init_help(),
        "hidden": "hidden size of each recurrent layer",
        "layers": "number of stacked recurrent layers",
        "dropout": "dropout between layers and before the output layer",
        "batch_size": "chorales per batch",
        "valid_fraction": "fraction of the chorales held out for validation (whole melodies, drawn by the seed)",
        "test_fraction": "fraction of the chorales held out for testing (whole melodies, drawn by the seed)",
    }

    def __post_init__(self):
        checks = {**network_checks(self), "dropout": 0 <= self.dropout < 1,
                  "valid_fraction": 0 < self.valid_fraction < 1,
                  "test_fraction": 0 <= self.test_fraction < 1 and self.valid_fraction + self.test_fraction < 1}
        check_options(self, checks)


def _is_built_in(spec: str) -> bool:
    return spec == BUILT_IN


def melody_key(soprano: np.ndarray) -> bytes:
    """The top voice's steps between pitches, repeated notes and rests joined: one melody's
    harmonisations share it, in any key and octave."""
    pitches = soprano[soprano >= 0].astype(np.int64)
    keep = np.concatenate([[True], pitches[1:] != pitches[:-1]]) if pitches.size else pitches.astype(bool)
    return np.diff(pitches[keep]).tobytes()


def roll_key(roll: np.ndarray) -> bytes:
    """The roll from its lowest pitch up, with its length: the same chorale in any key and octave
    shares it."""
    used = np.flatnonzero(roll.any(axis=0))
    return np.packbits(roll[:, used[0] : used[-1] + 1], axis=1).tobytes() + int(used[-1] - used[0]).to_bytes(2, "little")


class ChoraleData:
    """The chorales of each split as rolls over the model's pitches ((T, P) float32), their names,
    the encoding (pitch range, data fingerprints) and a description."""

    def __init__(self, opts: MusicOptions, seed: int, stored: dict | None = None):
        if stored is not None:  # a loaded or resumed model: its config's path, only if still its data
            check_data(opts, stored.get("data_files"), _is_built_in)
        corpus, source = read_corpus(opts.data)
        shifts = [key_shift(s) for s in corpus.sharps]
        rolls, names, groups, seen, duplicates = [], [], {}, set(), 0
        for roll, name, shift, soprano in zip(corpus.rolls, corpus.names, shifts, corpus.soprano):
            try:
                in_c = transpose(roll, shift)
            except DataError as exc:
                raise DataError(f"{name}: {exc}") from None
            key = roll_key(roll)
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            groups.setdefault(melody_key(soprano), []).append(len(rolls))
            rolls.append(in_c if opts.transpose else roll)
            names.append(name)
        parts = split_groups(list(groups.values()), len(rolls), opts.valid_fraction, opts.test_fraction, seed)
        if stored is None:
            used = np.flatnonzero(np.any([r.any(axis=0) for r in rolls], axis=0))
            self.encoding = {"low": int(used[0]), "high": int(used[-1]), "grid": GRID,
                             "data_files": record_data(opts, _is_built_in)}
        else:
            self.encoding = stored
        low, high = self.encoding["low"], self.encoding["high"]
        self.rolls = {part: [pitch_columns(rolls[i], low, high, names[i]) for i in idx] for part, idx in parts.items()}
        self.names = {part: [names[i] for i in idx] for part, idx in parts.items()}
        self.description = {"source": source, "duplicates": duplicates, "melodies": len(groups),
                            **{f"{k}_chorales": len(v) for k, v in self.rolls.items()},
                            **{f"{k}_frames": int(sum(len(r) for r in v)) for k, v in self.rolls.items()}}


def pitch_columns(roll: np.ndarray, low: int, high: int, name: str) -> np.ndarray:
    """The roll's columns low … high as float32; a DataError where a note lies outside them."""
    outside = roll[:, :low].any() or roll[:, high + 1 :].any()
    if outside:
        used = np.flatnonzero(roll.any(axis=0))
        raise DataError(f"{name}: notes from pitch {used[0]} to {used[-1]}, outside the model's pitches {low}-{high}")
    return roll[:, low : high + 1].astype(np.float32)


def split_groups(groups: list[list[int]], n: int, valid_fraction: float, test_fraction: float, seed: int) -> dict:
    """{"train", "valid"[, "test"]: sorted indices}: whole groups, shuffled by the seed, go to the
    test part until it holds ``test_fraction`` of the ``n`` chorales, then to validation, the rest
    to training. Each part needs a chorale (test only when its fraction is above 0)."""
    order = np.random.default_rng([seed, 3]).permutation(len(groups))
    wanted = {"test": int(round(n * test_fraction)), "valid": max(1, int(round(n * valid_fraction)))}
    parts = {"train": [], "valid": [], "test": []}
    for g in order:
        part = next((p for p in ("test", "valid") if len(parts[p]) < wanted[p]), "train")
        parts[part] += groups[g]
    if test_fraction == 0:
        parts.pop("test")
    for part, idx in parts.items():
        if not idx:
            raise DataError(f"data: {n} chorale(s) in {len(groups)} melodies leave no chorale for {part}; give more "
                            "chorales or change --valid-fraction / --test-fraction")
    return {k: sorted(v) for k, v in parts.items()}


def next_frame_batch(rolls: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, mask) of chorales (T_i, P): x (T, B, P) the silent start frame and frames 1 … T_i − 1,
    y (T, B, P) frames 1 … T_i, mask (T, B) True where a chorale has a frame."""
    y, lengths = pad(rolls)
    x = np.zeros_like(y)
    x[1:] = y[:-1]
    mask = np.arange(len(y))[:, None] < lengths[None, :]
    return x, y, mask


def frame_nll(model: PianoRollModel, rolls: list[np.ndarray], batch_size: int) -> tuple[float, int]:
    """(negative log-likelihood in nats per frame, frames): summed over pitches, averaged over
    every frame of ``rolls``, each predicted from those before it. In a job, each rank scores its
    share of the batches."""
    loss_fn, total, frames = BCEWithLogitsLoss(reduction="sum"), 0.0, 0
    group = parallel.world()
    batches = batches_in_order([len(r) for r in rolls], batch_size)
    with no_grad():
        model.eval()
        for idx in batches[group.share(len(batches))]:
            x, y, mask = next_frame_batch([rolls[i] for i in idx])
            logits, _ = model(x)
            total += loss_fn(logits[mask], y[mask])
            frames += int(mask.sum())
    total, frames = group.sum([total, frames])
    return total / frames, int(frames)


class MusicRun(BucketedRun):
    """Training and validation of one piano-roll model: the trainer's `run`."""

    def __init__(self, model: PianoRollModel, data: ChoraleData, opts: MusicOptions, seed: int):
        self.model, self.data, self.opts = model, data, opts
        self.train = data.rolls["train"]
        self.batches = BucketBatches([len(r) for r in self.train], opts.batch_size, seed)
        self.loss_fn = BCEWithLogitsLoss(reduction="sum")
        self.uniform_loss = model.pitches * math.log(2)  # every pitch a coin: the trainer's yardstick for divergence

    def train_step(self) -> tuple[float, int, int]:
        idx = self.batches.next()
        idx = parallel.share_of(idx)  # in a job, this rank's chorales of the batch
        x, y, mask = next_frame_batch([self.train[i] for i in idx])
        frames = int(mask.sum())
        logits, _ = self.model(x)
        loss = self.loss_fn(logits[mask], y[mask]) / frames
        d_logits = np.zeros_like(logits)
        d_logits[mask] = self.loss_fn.backward(1.0 / frames)  # padded frames: no gradient
        self.model.backward(d_logits)
        return loss, frames, frames  # a mean over the real frames

    def evaluate(self) -> dict:
        return {"loss": frame_nll(self.model, self.data.rolls["valid"], self.opts.batch_size)[0]}


def pitch_name(midi: int) -> str:
    return f"{_NAMES[midi % 12]}{midi // 12 - 1}"


class TrainedMusicModel(Exportable):
    """A trained piano-roll model loaded from its directory: compose, evaluate, describe."""

    def __init__(self, out_dir: Path, config: dict, model: PianoRollModel):
        self.dir, self.config, self.model = Path(out_dir), config, model
        self.opts = MusicOptions(**config["task_options"])
        self.encoding = config["encoding"]

    def compose(self, bars: int = 8, seed: int | None = None, temperature: float = 1.0) -> np.ndarray:
        """(bars · 8, P) bool: eighth-note frames sampled one after another from silence; column k
        is pitch ``encoding["low"] + k``."""
        if isinstance(bars, bool) or not isinstance(bars, int) or not 1 <= bars <= MAX_BARS:
            raise ValueError(f"--bars: expected a number of 4/4 bars from 1 to {MAX_BARS}, got {bars!r}")
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"--temperature: expected a number above 0, got {temperature!r}")
        return self.model.sample(bars * FRAMES_PER_BAR, np.random.default_rng(seed), float(temperature))

    def onnx_model(self):
        """The ONNX model (``export/onnx.py``'s ``piano_roll_graph``): logits of the next frames with
        the state in and out; its metadata holds the pitch range."""
        return onnx_export.piano_roll_graph(self.model, {**export_metadata(self), "encoding": json.dumps(
            {k: self.encoding[k] for k in ("low", "high", "grid")})})

    def evaluate(self, data: str | None = None) -> dict:
        """Frame NLL (nats) and frames of the validation and test chorales, or of ``data`` (a
        directory of MusicXML files, transposed as the model's were)."""
        if data is None:
            rolls = {k: v for k, v in ChoraleData(self.opts, self.config["training"]["seed"], self.encoding).rolls.items()
                     if k != "train"}
        else:
            corpus, _ = read_corpus(data)
            low, high = self.encoding["low"], self.encoding["high"]
            rolls = {"data": [pitch_columns(transpose(r, key_shift(s)) if self.opts.transpose else r, low, high, name)
                              for r, s, name in zip(corpus.rolls, corpus.sharps, corpus.names)]}
        result = {}
        for name, part in rolls.items():
            nll, frames = frame_nll(self.model, part, self.opts.batch_size)
            result.update({f"{name}_loss": nll, f"{name}_frames": frames})
        return result

    def describe(self, short: bool = False) -> str:
        c, o, e = self.config, self.opts, self.encoding
        m = c.get("metrics", {})
        lines = [
            f"model      {self.dir}: task music ({c.get('status', '?')}), rnnkit {c.get('rnnkit_version')}",
            f"network    {o.layers}-layer {cell_name(o.cell, o.cell_option, o.init)}, hidden {o.hidden}, dropout {o.dropout}; "
            f"{self.model.num_parameters():,} parameters",
            f"rolls      eighth-note frames, pitches {pitch_name(e['low'])}-{pitch_name(e['high'])} ({e['high'] - e['low'] + 1}), "
            + ("transposed to C major / A minor" if o.transpose else "in their own keys"),
            f"data       {c['data']['source']}; " + ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in c["data"].items()
                                                           if k != "source"),
        ]
        if m:
            lines.append(validation_line(m) + " (loss: nats per frame)")
        return "\n".join(lines if not short else [lines[0], lines[-1]])


@register
class MusicTask(Task):
    name = "music"
    action = "compose"
    description = "polyphonic music: piano rolls of Bach chorales, next-frame prediction, composition"
    action_help = ("Compose music with a trained piano-roll model: eighth-note frames sampled from silence, printed "
                   "as pitch names, written as MIDI, audio and a piano-roll picture.")
    Options = MusicOptions
    Trained = TrainedMusicModel
    needs_data = False  # without --data: the Bach chorales
    config_schema = {"type": "object", "required": ["encoding", "data"], "properties": {
        "encoding": {"type": "object", "required": ["low", "high", "grid"],
                     "properties": {"low": {"type": "integer", "minimum": 0, "maximum": 127},
                                    "high": {"type": "integer", "minimum": 0, "maximum": 127},
                                    "grid": {"const": GRID}}},
        "data": data_schema("train_chorales", "valid_chorales")}}

    def prepare(self, options: MusicOptions, seed: int, stored: dict | None = None):
        data = ChoraleData(options, seed, stored)
        return data, data.encoding, data.description

    def make_model(self, options: MusicOptions, encoding: dict, seed: int) -> PianoRollModel:
        if encoding["high"] < encoding["low"]:
            raise ValueError(f"encoding: pitches {encoding['low']}-{encoding['high']} hold none")
        return PianoRollModel(encoding["high"] - encoding["low"] + 1, options.hidden, options.layers, options.cell,
                              options.dropout, rng=np.random.default_rng(seed), cell_settings=options.cell_option,
                              init=options.init)

    def make_run(self, model, data: ChoraleData, options: MusicOptions, seed: int) -> MusicRun:
        return MusicRun(model, data, options, seed)

    # ---- the action verb: rnnkit compose DIR ------------------------------------------------------
    def add_action_arguments(self, p) -> None:
        p.add_argument("--bars", type=int, default=8, help="4/4 bars of eighth notes to compose (default: 8)")
        p.add_argument("--temperature", type=float, default=1.0,
                       help="divides the logits: below 1 fewer surprises, above 1 more (default: 1.0)")
        p.add_argument("--seed", type=int, default=None, help="seed of the sampling (default: fresh randomness)")
        p.add_argument("--tempo", type=float, default=80.0, help="quarter notes a minute in MIDI and audio (default: 80)")
        p.add_argument("--midi", metavar="FILE", help="write the chorale as MIDI (music21)")
        p.add_argument("--wav", metavar="FILE", help="write it as audio: FluidSynth with the General MIDI SoundFont "
                       "where installed, else rnnkit's own synthesizer")
        p.add_argument("--png", metavar="FILE", help="write its piano roll as a PNG")

    def act(self, model: TrainedMusicModel, args) -> int:
        if not (math.isfinite(args.tempo) and 1 <= args.tempo <= 1000):
            raise ValueError(f"--tempo: expected quarter notes a minute from 1 to 1000, got {args.tempo!r}")
        outputs = {"midi": args.midi, "wav": args.wav, "png": args.png}
        if any(outputs.values()):
            from ..music import check_outputs

            check_outputs(outputs)  # before anything is sampled: music21 there, the paths usable
        roll = model.compose(args.bars, args.seed, args.temperature)
        low = model.encoding["low"]
        for t, frame in enumerate(roll):
            bar, eighth = divmod(t, FRAMES_PER_BAR)
            pitches = " ".join(pitch_name(low + k) for k in np.flatnonzero(frame)) or "-"
            sys.stdout.write(f"{bar + 1}.{eighth + 1}\t{pitches}\n")
        if any(outputs.values()):
            from ..music.chorales import write_roll

            title = f"{args.bars} bars composed by {model.dir.name} (seed {args.seed})"
            report = write_roll(roll, low, outputs, args.tempo, title)
            print(f"written: {report.describe()}", file=sys.stderr)
        return 0
