"""Task `transcribe`: speech recognition, audio → characters, a bidirectional RNN trained with CTC.

Data: ``fillets-speech:cs`` or ``fillets-speech:nl`` (Fish Fillets' recorded dialogue, Debian's
packages: ``rnnkit data install fillets-speech``), or a folder of audio files with a
``transcripts.tsv`` of lines ``FILE<TAB>TEXT[<TAB>GROUP]`` (FILE relative to the folder; GROUP
a speaker, session or scene that stays within one split).

Splits, by whole groups (the game's levels): test = the groups with md5(name) % 5 == 0
(``data.speech.held_out``), validation = a seeded ``--valid-fraction`` of the other groups, so
no scene's lines are in two parts. Features: log-mel filterbanks (``data.audio``: 25 ms frames
every 10 ms, ``--n-mels`` bands), standardised per band with the training part's statistics.
Text: lowercased; letters, digits, apostrophes and single spaces kept, every other character a
space; the characters of the training part are the vocabulary (others are dropped from a
reference and counted). Clips that cannot be read are skipped with a count and the first error;
clips with fewer steps than CTC needs for their text are left out of training and counted.

Metrics: the validation CTC loss, and character and word error rates (CER, WER) of the greedy
decoding; ``rnnkit evaluate`` gives them for the validation and test parts and the training
groups (for over-fitting); ``rnnkit transcribe DIR AUDIO…`` prints the text of each file
(``--beam N`` for a prefix beam search).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import metrics as M
from ..data import DataError, read_text_file
from ..data.audio import LOG_MEL_LINES, N_MELS, log_mel, read_audio
from ..data.batching import BucketBatches, batches_in_order, pad
from ..data.speech import LANGUAGES, fillets_manifest, held_out
from ..export import onnx as onnx_export
from ..models.sequence_model import cell_choices, cell_help, cell_name, cell_option_help
from ..models.transcriber import BLANK, Transcriber
from ..nn.ctc import ctc_nll, greedy_decode, prefix_beam_search
from ..progress import Progress
from ..training import parallel
from ..training.trainer import check_options
from ..nn import no_grad
from ..nn.functional import log_softmax
from .base import (MEANS_SCHEMA, SPREADS_SCHEMA, BucketedRun, Exportable, Task, data_schema, export_metadata, load_model,
                   network_checks, register, validation_line)

BUILT_IN = tuple(f"fillets-speech:{lang}" for lang in LANGUAGES)
TRANSCRIPTS = "transcripts.tsv"


@dataclass
class TranscribeOptions:
    data: str = ""
    cell: str = "gru"
    cell_option: dict = field(default_factory=dict)
    hidden: int = 128
    layers: int = 2
    unidirectional: bool = False
    stack: int = 3
    n_mels: int = N_MELS
    dropout: float = 0.1
    batch_size: int = 16
    valid_fraction: float = 0.1

    CHOICES = {"cell": cell_choices()}
    HELP = {
        "data": f"speech with transcripts: {', '.join(BUILT_IN)} (`rnnkit data install fillets-speech`), or a folder "
                f"with a {TRANSCRIPTS} of lines FILE<TAB>TEXT[<TAB>GROUP] (audio files rnnkit can read: WAV, FLAC, OGG)",
        "cell": cell_help(),
        "cell_option": cell_option_help(),
        "hidden": "hidden size of each recurrent layer (per direction)",
        "layers": "number of stacked recurrent layers",
        "unidirectional": "read the audio forwards only (default: both directions)",
        "stack": "log-mel frames (10 ms each) stacked into one step of the network: k times fewer steps",
        "n_mels": "mel bands of the features",
        "dropout": "dropout on the features, between layers and before the output layer",
        "batch_size": "utterances per batch",
        "valid_fraction": "share of the training groups (levels, speakers) held out for validation",
    }

    def __post_init__(self):
        check_options(self, {**network_checks(self), "stack": 1 <= self.stack <= 16, "n_mels": 8 <= self.n_mels <= 128,
                             "dropout": 0 <= self.dropout < 1, "valid_fraction": 0 < self.valid_fraction < 1})


# ---- data ---------------------------------------------------------------------------------------


def normalise(text: str) -> str:
    """Lowercase; letters, digits and apostrophes kept, any other run of characters one space."""
    return re.sub(r"[^\w']+|_", " ", text.lower()).strip()


def read_transcripts(folder) -> list[tuple[Path, str, str]]:
    """(audio path, text, group) from a folder's transcripts.tsv; a bad line is a DataError naming it."""
    folder = Path(folder)
    listing = folder / TRANSCRIPTS
    if not folder.is_dir() or not listing.is_file():
        raise DataError(f"--data: {folder} is not one of {', '.join(BUILT_IN)} nor a folder with a {TRANSCRIPTS}")
    rows = []
    for number, line in enumerate(read_text_file(listing).split("\n"), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) not in (2, 3) or not parts[0].strip():
            raise DataError(f"{listing}, line {number}: expected FILE<TAB>TEXT[<TAB>GROUP], got {line[:80]!r}")
        path = (folder / parts[0].strip()).resolve()
        if folder.resolve() not in path.parents:
            raise DataError(f"{listing}, line {number}: {parts[0]!r} is outside {folder}")
        rows.append((path, parts[1], parts[2].strip() if len(parts) == 3 else path.name))
    if not rows:
        raise DataError(f"{listing}: no transcripts")
    return rows


def read_source(spec: str) -> tuple[list[tuple[Path, str, str]], str]:
    """(audio, text, group) rows and a description of the source."""
    if spec in BUILT_IN:
        utterances, left_out = fillets_manifest(spec.split(":")[1])
        notes = ", ".join(f"{n} {why}" for why, n in sorted(left_out.items()))
        return [(u.audio, u.text, u.level) for u in utterances], f"{spec} (left out: {notes or 'none'})"
    return read_transcripts(spec), str(spec)


def features_of(paths, n_mels: int) -> tuple[list, list[str]]:
    """Log-mel features of each file (None where it cannot be read) and the errors met."""
    out, errors = [], []
    for path in Progress.over(list(paths), "audio features", unit="clip"):  # a bar or lines, unless --quiet
        try:
            samples, rate = read_audio(path)
            out.append(log_mel(samples, rate, n_mels))
        except DataError as exc:
            out.append(None)
            errors.append(str(exc))
    return out, errors


def ctc_steps_needed(ids: list[int]) -> int:
    """The fewest output steps CTC needs for a label sequence: one per label, one more per repeat."""
    return len(ids) + sum(a == b for a, b in zip(ids, ids[1:]))


class SpeechData:
    """The utterances of each part as (features, normalised text, group, audio path), the encoding
    (characters, feature statistics), and the description of the data for config.json."""

    def __init__(self, options: TranscribeOptions, seed: int, stored: dict | None = None):
        rows, source = read_source(options.data)
        groups = sorted({g for _, _, g in rows if not held_out(g)})
        if len(groups) < 2:
            raise DataError(f"--data: {options.data} has {len(groups)} training group(s); validation needs at least 2")
        rng = np.random.default_rng(seed)
        valid_groups = set(rng.choice(groups, size=max(1, round(options.valid_fraction * len(groups))), replace=False))
        part_of = lambda g: "test" if held_out(g) else "valid" if g in valid_groups else "train"  # noqa: E731
        feats, errors = features_of([p for p, _, _ in rows], options.n_mels)
        self.parts: dict[str, list] = {"train": [], "valid": [], "test": []}
        for (path, text, group), f in zip(rows, feats):
            if f is not None and len(f):
                self.parts[part_of(group)].append((f, normalise(text), group, path))
        if not self.parts["train"]:
            raise DataError(f"--data: {options.data}: no readable training clip" + (f" ({errors[0]})" if errors else ""))
        if stored is None:
            frames = np.concatenate([f for f, *_ in self.parts["train"]])
            chars = sorted({c for _, text, *_ in self.parts["train"] for c in text})
            stored = {"chars": chars, "n_mels": options.n_mels, "mean": frames.mean(axis=0).tolist(),
                      "std": np.maximum(frames.std(axis=0), 1e-3).tolist()}
        self.encoding = stored
        self.unreadable = len(errors)
        counts = {f"{k}_utterances": len(v) for k, v in self.parts.items()}
        self.description = {"source": source + (f"; {len(errors)} unreadable clip(s), the first: {errors[0]}" if errors else ""),
                            **counts, "unreadable": len(errors)}


def encode_text(encoding: dict, text: str) -> list[int]:
    """Character ids (1…V−1; 0 is CTC's blank), characters outside the vocabulary dropped."""
    index = {c: i + 1 for i, c in enumerate(encoding["chars"])}
    return [index[c] for c in text if c in index]


def decode_ids(encoding: dict, ids) -> str:
    return "".join(encoding["chars"][i - 1] for i in ids if i != BLANK)


def standardise(encoding: dict, features: np.ndarray) -> np.ndarray:
    return ((features - np.asarray(encoding["mean"], np.float32)) / np.asarray(encoding["std"], np.float32)).astype(np.float32)


def clip_log_probs(model: Transcriber, encoding: dict, features: list, batch_size: int):
    """(index, log-probabilities (steps, V)) of each clip, batched by length, in eval mode (a
    loaded model starts in training mode, and its dropout would blur every transcript)."""
    model.eval()
    for idx in batches_in_order([len(f) for f in features], batch_size):
        x, lengths = pad([standardise(encoding, features[i]) for i in idx])
        lp, steps = model.predict_log_probs(x, lengths)
        for b, i in enumerate(idx):
            yield i, lp[: steps[b], b]


def transcribe_features(model: Transcriber, encoding: dict, features: list, batch_size: int, beam: int = 0, lm=None,
                        lm_weight: float = 0.0, length_bonus: float = 0.0) -> list[str]:
    """The text of each clip: greedy decoding, or a prefix beam search of width ``beam``,
    optionally with a language model (a ``LanguageModelScorer``, new for each clip's cache)."""
    texts = [""] * len(features)
    for i, lp in clip_log_probs(model, encoding, features, batch_size):
        if beam:
            scorer = lm() if lm is not None else None
            ids = prefix_beam_search(lp, beam, BLANK, scorer, lm_weight, length_bonus)[0][0]
        else:
            ids = greedy_decode(lp[:, None], blank=BLANK)[0]
        texts[i] = decode_ids(encoding, ids)
    return texts


def score(model: Transcriber, encoding: dict, part: list, batch_size: int) -> dict:
    """The CTC loss (per character, averaged over the clips that can be aligned: torch's mean) and
    the CER and WER of the greedy transcripts of ``part`` [(features, text, …)]. In a job, each rank
    transcribes its share of the clips."""
    group = parallel.world()
    refs = [encode_text(encoding, text) for _, text, *_ in part]
    mine = group.share(len(part))
    hyps, losses = [""] * len(part[mine]), []
    for i, lp in clip_log_probs(model, encoding, [f for f, *_ in part[mine]], batch_size):
        hyps[i] = decode_ids(encoding, greedy_decode(lp[:, None], blank=BLANK)[0])
        ref = refs[mine][i]
        if ref:
            nll = ctc_nll(lp[:, None], [ref], [len(lp)], [len(ref)], BLANK)[0]
            if np.isfinite(nll):
                losses.append(nll / len(ref))
    hyps, losses = group.gather_items(hyps), group.gather_items(losses)
    texts = [decode_ids(encoding, ids) for ids in refs]
    return {"loss": float(np.mean(losses)) if losses else float("nan"),
            "cer": M.error_rate(texts, hyps, "char"), "wer": M.error_rate(texts, hyps, "word")}


class LanguageModelScorer:
    """A character language model (an ``lm`` model directory) as the beam search's ``lm``: the
    log-probabilities of each transcriber character after a prefix of transcriber ids, read from
    a newline (where the LM's lines start). States are cached per prefix, so each prefix the beam
    keeps costs one step of the LM. A character the LM does not know gets its ``<unk>``'s."""

    def __init__(self, trained_lm, chars: list[str]):
        tokenizer = trained_lm.tokenizer
        if tokenizer.kind != "char":
            raise ValueError(f"--lm: {trained_lm.dir} is a {tokenizer.kind}-level language model; the beam needs a character one")
        self.model = trained_lm.model
        self.lm_ids = np.array([0] + [int(tokenizer.encode(c)[0]) for c in chars])  # transcriber id → LM id (<unk> is 0)
        start = tokenizer.encode("\n") if tokenizer.contains("\n") else np.array([0])
        self.cache = {(): self._step(start, None)}

    def _step(self, lm_ids, state):
        with no_grad():
            self.model.eval()
            logits, state = self.model(np.asarray(lm_ids).reshape(-1, 1), state)
        return state, log_softmax(logits[-1, 0].astype(np.float64))

    def __call__(self, prefix: tuple) -> np.ndarray:
        if prefix not in self.cache:
            self(prefix[:-1])
            state, _ = self.cache[prefix[:-1]]
            self.cache[prefix] = self._step([self.lm_ids[prefix[-1]]], state)
        return self.cache[prefix][1][self.lm_ids]


class TranscribeRun(BucketedRun):
    """Training and validation of one acoustic model: the trainer's `run`."""

    def __init__(self, model: Transcriber, data: SpeechData, opts: TranscribeOptions, seed: int):
        self.model, self.data, self.opts = model, data, opts
        enc = data.encoding
        self.train = []
        self.too_short = 0
        for f, text, *_ in data.parts["train"]:
            ids = encode_text(enc, text)
            if ids and -(-len(f) // opts.stack) >= ctc_steps_needed(ids):
                self.train.append((standardise(enc, f), np.array(ids)))
            else:
                self.too_short += 1
        if not self.train:
            raise DataError(f"--data: no training clip is long enough for its text at --stack {opts.stack}")
        self.batches = BucketBatches([len(f) for f, _ in self.train], opts.batch_size, seed)

    def train_step(self) -> tuple[float, int, int]:
        idx = self.batches.next()
        idx = parallel.share_of(idx)
        x, lengths = pad([self.train[i][0] for i in idx])
        y, y_lengths = pad([self.train[i][1] for i in idx])
        loss = self.model(x, lengths, y.T, y_lengths)
        self.model.backward()
        return loss, int(lengths.sum()), len(idx)  # CTC's mean is over the clips

    def evaluate(self) -> dict:
        part = self.data.parts["valid"]
        return score(self.model, self.data.encoding, part, self.opts.batch_size) if part else {}


#: the exported transcriber's feeds for one clip after LOG_MEL_LINES, and its text from the outputs
EXPORT_FEEDS = """feeds = {"features": features[None], "lengths": np.array([len(features)], np.int64)}"""
EXPORT_TEXT = """text = "".join(chars[i - 1] for i in labels[0, : label_lengths[0]])  # chars: the encoding's"""


class TrainedTranscriber(Exportable):
    """A trained acoustic model loaded from its directory: transcribe, evaluate, describe, export."""

    def __init__(self, out_dir: Path, config: dict, model: Transcriber):
        self.dir, self.config, self.model = Path(out_dir), config, model
        self.opts = TranscribeOptions(**config["task_options"])
        self.encoding = config["encoding"]

    def transcribe(self, paths, beam: int = 0, lm=None, lm_weight: float = 0.5, length_bonus: float = 1.0) -> list[str]:
        """The text of each audio file (a file that cannot be read is a DataError naming it);
        ``lm``: a loaded character language model (``rnnkit.load``) for the beam."""
        features = [log_mel(*read_audio(p), self.encoding["n_mels"]) for p in paths]
        for path, f in zip(paths, features):
            if not len(f):
                raise DataError(f"{path}: shorter than one 25 ms frame")
        scorer = None if lm is None else (lambda: LanguageModelScorer(lm, self.encoding["chars"]))
        if scorer is None:
            lm_weight = length_bonus = 0.0  # the bonus balances the LM's cost; alone it would only lengthen
        else:
            scorer()  # a model of the wrong kind is refused before any decoding
        return transcribe_features(self.model, self.encoding, features, self.opts.batch_size, beam, scorer, lm_weight, length_bonus)

    def onnx_model(self):
        """The ONNX model (``export/onnx.py``'s ``transcriber_graph``): log-mel frames → the
        log-probabilities and their greedy decoding; the log-mel features stay outside (their FFT
        size and filters follow each clip's sample rate), as NumPy lines in the metadata's "prepare"."""
        n_mels, k = self.encoding["n_mels"], self.opts.stack
        meta = {**export_metadata(self), "encoding": json.dumps(self.encoding), "blank": str(BLANK),
                "prepare": LOG_MEL_LINES.format(n_mels=n_mels) + "\n" + EXPORT_FEEDS, "decode": EXPORT_TEXT,
                "inputs": f"features (B, T, {n_mels}) float32: each clip's log-mel frames (25 ms every 10 ms, {n_mels} bands; "
                          "rnnkit.data.audio.log_mel, or the lines of \"prepare\"), unstandardised, padded to the longest; "
                          "lengths (B,) int64: each clip's frames",
                "outputs": f"log_probs (B, T', V) float32, T' = ⌈T / {k}⌉, over the blank (0) and the characters (id i: "
                           "the encoding's chars[i − 1]); steps (B,) int64: each clip's ⌈length / "
                           f"{k}⌉ real steps; labels (B, T') int64: the greedy (best path) decoding's ids, −1 after "
                           "label_lengths (B,) int64 of them (\"decode\" turns them into text); a prefix beam search "
                           "reads log_probs[b, : steps[b]]"}
        return onnx_export.transcriber_graph(self.model, self.encoding, meta)

    def evaluate(self, data: str | None = None) -> dict:
        """CER and WER on the validation and test parts, and on the training groups (over-fitting)."""
        if data is not None:
            raise ValueError("--data: a transcriber is evaluated on the parts (training, validation and test levels) of "
                             "the data it was trained on; leave --data out")
        speech = SpeechData(self.opts, self.config["training"]["seed"], self.encoding)
        result = {}
        for name in ("train", "valid", "test"):
            if speech.parts[name]:
                result.update({f"{name}_{k}": v for k, v in score(self.model, self.encoding, speech.parts[name], self.opts.batch_size).items()})
                result[f"{name}_utterances"] = len(speech.parts[name])
        return result

    def describe(self, short: bool = False) -> str:
        c, o, e = self.config, self.opts, self.encoding
        lines = [
            f"model      {self.dir}: task transcribe, {len(e['chars'])} characters ({c.get('status', '?')}), rnnkit {c.get('rnnkit_version')}",
            f"network    {o.layers}-layer {'' if o.unidirectional else 'bidirectional '}{cell_name(o.cell, o.cell_option)}, hidden {o.hidden}, "
            f"{o.stack} frames a step, {e['n_mels']} mel bands, dropout {o.dropout}; {self.model.num_parameters():,} parameters",
            f"characters {''.join(e['chars'])!r}",
            f"data       {c['data']['source']}: " + ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in c["data"].items() if k != "source"),
        ]
        if c.get("metrics"):
            lines.append(validation_line(c["metrics"]))
        return "\n".join(lines if not short else [lines[0], lines[-1]])


def build_model(options: TranscribeOptions, encoding: dict, seed: int) -> Transcriber:
    return Transcriber(len(encoding["chars"]) + 1, encoding["n_mels"], options.hidden, options.cell, options.layers, options.stack,
                       not options.unidirectional, options.dropout, rng=seed, cell_settings=options.cell_option)


@register
class TranscribeTask(Task):
    name = "transcribe"
    action = "transcribe"
    description = "speech recognition: audio to characters, a bidirectional RNN trained with CTC"
    action_help = "Transcribe audio files with a trained model (greedy decoding, or --beam N)."
    Options = TranscribeOptions
    config_schema = {"type": "object", "required": ["encoding", "data"], "properties": {
        "encoding": {"type": "object", "required": ["chars", "n_mels", "mean", "std"],
                     "properties": {"chars": {"type": "array", "minItems": 1, "uniqueItems": True,
                                              "items": {"type": "string", "minLength": 1, "maxLength": 1}},
                                    "n_mels": {"type": "integer", "minimum": 8, "maximum": 128},
                                    "mean": MEANS_SCHEMA, "std": SPREADS_SCHEMA},
                     "sameCount": ["mean", "std"]},
        "data": data_schema("train_utterances", "valid_utterances", "test_utterances", "unreadable")}}
    monitors = {"loss": "min", "cer": "min", "wer": "min"}
    # the CTC loss on held-out levels rises (over-confident) while the error rate still falls:
    # on Czech the lowest loss came at step 1,000 (CER 0.554), the lowest CER at 1,750 (0.504)
    default_monitor = "cer"

    Trained = TrainedTranscriber

    def prepare(self, options: TranscribeOptions, seed: int, stored: dict | None = None):
        data = SpeechData(options, seed, stored)
        return data, data.encoding, data.description

    def make_model(self, options: TranscribeOptions, encoding: dict, seed: int) -> Transcriber:
        return build_model(options, encoding, seed)

    def make_run(self, model, data: SpeechData, options: TranscribeOptions, seed: int) -> TranscribeRun:
        return TranscribeRun(model, data, options, seed)

    # ---- the action verb: rnnkit transcribe DIR AUDIO… ------------------------------------------
    def add_action_arguments(self, p) -> None:
        p.add_argument("audio", nargs="+", metavar="AUDIO", help="audio files to transcribe (WAV, FLAC, OGG)")
        p.add_argument("--beam", type=int, default=0, help="prefix beam search of this width (default: 0, greedy)")
        p.add_argument("--lm", metavar="DIR", help="with --beam: a character language model (rnnkit train lm) of the "
                       "transcripts' language, whose log-probabilities join the beam's scores")
        p.add_argument("--lm-weight", type=float, default=0.5, help="the language model's weight (default: 0.5)")
        p.add_argument("--length-bonus", type=float, default=1.0,
                       help="added per character with --lm, against the language model's cost per character (default: 1.0)")

    def act(self, model: TrainedTranscriber, args) -> int:
        if args.beam < 0:
            raise ValueError(f"--beam: expected a width >= 1, or 0 for greedy decoding, got {args.beam}")
        lm = None
        if args.lm:
            if not args.beam:
                raise ValueError("--lm: a language model joins the beam search; give --beam N too")
            lm = load_model(args.lm, expect_task="lm")
        for path, text in zip(args.audio, model.transcribe(args.audio, args.beam, lm, args.lm_weight, args.length_bonus)):
            sys.stdout.write(f"{text}\t{path}\n")
        return 0
