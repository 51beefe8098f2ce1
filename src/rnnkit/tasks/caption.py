"""Task `caption`: image → caption, fixed image features starting a recurrent decoder (one-to-many).

Data: ``tuxpaint-stamps`` (Tux Paint's 785 raster stamps with English captions, Debian's package:
``rnnkit data install tuxpaint-stamps``), or a folder laid out alike: ``<category>/<name>.png``
beside ``<name>.txt`` whose first line is the caption (``data.stamps``). Stamps left out (SVG only,
no caption…) and images that cannot be read are counted, the first error kept, never fatal.

Splits: by stamp, a seeded permutation (``data.stamps.split_stamps``): ``--test-fraction`` for
testing, ``--valid-fraction`` for validation. Features: the ``--features`` blocks of
``data.images`` (resized pixels, colour histogram, HOG-like gradients, silhouette), standardised
with the training part's mean and spread, each block scaled by 1/√size so that blocks weigh
alike. Model: ``models.captioner.Captioner``, seq2seq's decoder started from the features. Text:
word or character tokens (``--tokenizer``), the training captions' vocabulary.

Metrics: the validation loss (per token) and the BLEU and chrF (sacrebleu) of the greedy captions;
``rnnkit evaluate`` gives greedy and beam-search scores on the validation and test parts, beside
the nearest-neighbour baseline (each image gets the caption of the training image whose features
are closest); ``rnnkit caption DIR IMAGE…`` prints a caption for each image.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import metrics as M
from ..data import DataError, Tokenizer, make_tokenizer
from ..data.batching import BucketBatches, decoder_targets
from ..data.images import FEATURES, block_scales, feature_names, features_of, image_features, read_image
from ..data.stamps import read_stamps, split_stamps, tuxpaint_stamps
from ..data.tokenizers import BOS, DECODER_VOCABULARY_SCHEMA, EOS, with_bounds
from ..export import onnx as onnx_export
from ..models.captioner import Captioner
from ..models.sequence_model import cell_choices, cell_help, cell_name, cell_option_help, init_help
from ..nn import no_grad
from ..training import parallel
from ..training.trainer import check_options
from .base import (MEANS_SCHEMA, SPREADS_SCHEMA, BucketedRun, Exportable, Task, data_schema, export_metadata, network_checks,
                   register, validation_line)

BUILT_IN = ("tuxpaint-stamps",)


@dataclass
class CaptionOptions:
    data: str = ""
    features: str = "colours,gradients,shape"
    tokenizer: str = "word"
    min_count: int = 1
    cell: str = "lstm"
    cell_option: dict = field(default_factory=dict)
    init: str = "rnnkit"
    embed: int = 64
    hidden: int = 128
    layers: int = 1
    dropout: float = 0.5  # with hidden 128: the best validation chrF of the settings tried (benchmarks/README.md)
    batch_size: int = 32
    valid_fraction: float = 0.1
    test_fraction: float = 0.15
    beam: int = 1  # greedy: on validation as good as a beam of 3 or better (benchmarks/README.md)
    length_penalty: float = 0.6

    CHOICES = {"tokenizer": ("word", "char"), "cell": cell_choices(step=True)}
    HELP = {
        "data": f"captioned images: {', '.join(BUILT_IN)} (`rnnkit data install tuxpaint-stamps`), or a folder of "
                "<category>/<name>.png files, each with a <name>.txt whose first line is its caption",
        "features": f"the image feature blocks, comma-separated, from {', '.join(FEATURES)}",
        "tokenizer": "the caption's tokens: word (words and punctuation marks) or char",
        "min_count": "tokens seen fewer times in the training captions become <unk>",
        "cell": cell_help(step=True),
        "cell_option": cell_option_help(step=True),
        "init": "how the parameters start: " + init_help(),
        "embed": "token embedding size",
        "hidden": "hidden size of the decoder",
        "layers": "stacked decoder layers (each starts from the image)",
        "dropout": "dropout on the image's features, the embeddings, between layers and before the output layer",
        "batch_size": "captions per batch",
        "valid_fraction": "fraction of the stamps held out for validation",
        "test_fraction": "fraction of the stamps held out for testing",
        "beam": "beam width for captioning (1: greedy); evaluate reports greedy and this width",
        "length_penalty": "GNMT length penalty α for beam search (0: rank by log-probability alone)",
    }

    def __post_init__(self):
        feature_names(self.features)  # a bad list is an error naming --features and the blocks
        check_options(self, {**network_checks(self, step=True), "tokenizer": self.tokenizer in ("word", "char"),
                             "min_count": self.min_count >= 1, "dropout": 0 <= self.dropout < 1,
                             "valid_fraction": 0 < self.valid_fraction < 1, "test_fraction": 0 <= self.test_fraction < 1,
                             "beam": self.beam >= 1, "length_penalty": self.length_penalty >= 0})
        if self.valid_fraction + self.test_fraction >= 1:
            raise ValueError(f"--valid-fraction, --test-fraction: together below 1 (the rest trains), got "
                             f"{self.valid_fraction} + {self.test_fraction}")


# ---- data ---------------------------------------------------------------------------------------


def read_source(spec: str):
    """(stamps, what was left out, a description of the source)."""
    if spec in BUILT_IN:
        stamps, left_out = tuxpaint_stamps()
        source = "Tux Paint stamps (Debian tuxpaint-stamps-default)"
    else:
        if not Path(spec).is_dir():
            raise DataError(f"--data: {spec} is not {' or '.join(BUILT_IN)} nor a folder of captioned images")
        stamps, left_out = read_stamps(spec)
        source = str(spec)
    if not stamps:
        raise DataError(f"--data: {spec} holds no image with a caption (<name>.png beside <name>.txt)")
    notes = ", ".join(f"{n} {why}" for why, n in sorted(left_out.items()))
    return stamps, left_out, f"{source} (left out: {notes or 'none'})"


def standardise(encoding: dict, features: np.ndarray) -> np.ndarray:
    """(N, F) raw features → the network's input: standardised, each block scaled by 1/√size."""
    mean, std = np.asarray(encoding["mean"], np.float32), np.asarray(encoding["std"], np.float32)
    return ((features - mean) / std * block_scales(encoding["features"])).astype(np.float32)


class CaptionData:
    """The stamps of each part as [(Stamp, raw features)], the encoding (vocabulary, feature
    blocks and statistics) and the description of the data for config.json."""

    def __init__(self, options: CaptionOptions, seed: int, stored: dict | None = None):
        stamps, _, source = read_source(options.data)
        names = feature_names(options.features)
        self.parts, errors = {}, []
        for part, members in split_stamps(stamps, seed, options.valid_fraction, options.test_fraction).items():
            features, errs = features_of([s.image for s in members], names)
            errors += errs
            self.parts[part] = [(s, f) for s, f in zip(members, features) if f is not None]
        for part in ("train", "valid"):
            if not self.parts[part]:
                raise DataError(f"--data: {options.data}: no readable image in the {part} part"
                                + (f" ({errors[0]})" if errors else "; give more stamps or change the fractions"))
        if stored is None:
            x = np.stack([f for _, f in self.parts["train"]])
            captions = "\n".join(s.caption for s, _ in self.parts["train"])
            vocabulary = with_bounds(make_tokenizer(options.tokenizer, captions, options.min_count))
            stored = {"vocabulary": vocabulary.to_dict(), "features": names, "mean": x.mean(axis=0).tolist(),
                      "std": np.maximum(x.std(axis=0), 1e-3).tolist()}
        self.encoding = stored
        self.description = {"source": source + (f"; {len(errors)} unreadable image(s), the first: {errors[0]}" if errors else ""),
                            **{f"{k}_stamps": len(v) for k, v in self.parts.items()}, "unreadable": len(errors)}

    def inputs(self, part: str) -> np.ndarray:
        """(N, F): the network's input for every image of ``part``."""
        return standardise(self.encoding, np.stack([f for _, f in self.parts[part]]))

    def captions(self, part: str) -> list[str]:
        return [s.caption for s, _ in self.parts[part]]


class Vocabulary:
    """The caption tokenizer with the decoder's start and end ids."""

    def __init__(self, encoding: dict):
        self.tokenizer = Tokenizer.from_dict(encoding["vocabulary"])
        self.bos, self.eos = self.tokenizer.index[BOS], self.tokenizer.index[EOS]

    def encode(self, captions: list[str]) -> list[np.ndarray]:
        return [self.tokenizer.encode(c) for c in captions]


def write_captions(model: Captioner, vocab: Vocabulary, x: np.ndarray, beam: int, length_penalty: float,
                   batch_size: int = 64) -> list[str]:
    """A caption for each row of x (N, F): greedy decoding when beam is 1, else beam search."""
    texts = []
    for start in range(0, len(x), batch_size):
        rows = x[start : start + batch_size]
        if beam == 1:
            found = model.greedy(rows, bos=vocab.bos, eos=vocab.eos)
        else:
            found = model.beam_search(rows, bos=vocab.bos, eos=vocab.eos, beam=beam, length_penalty=length_penalty)
        texts += [vocab.tokenizer.decode(t.tokens) if t.tokens else "" for t in found]
    return texts


def caption_loss(model: Captioner, vocab: Vocabulary, x: np.ndarray, captions: list[str], batch_size: int) -> float:
    """The mean cross-entropy per token (end token included) of the captions under teacher forcing."""
    ids = vocab.encode(captions)
    total = count = 0.0
    with no_grad():
        model.eval()
        for start in range(0, len(x), batch_size):
            tgt_in, tgt_out, lengths = decoder_targets(ids[start : start + batch_size], vocab.bos, vocab.eos)
            n = int(lengths.sum())
            total, count = total + model(x[start : start + batch_size], tgt_in, tgt_out, lengths) * n, count + n
    return total / count


def nearest_captions(train_x: np.ndarray, train_captions: list[str], x: np.ndarray) -> list[str]:
    """The baseline: for each row of x, the caption of the training image nearest in Euclidean
    distance (the same standardised features the network reads)."""
    d = (x * x).sum(axis=1)[:, None] - 2 * x @ train_x.T + (train_x * train_x).sum(axis=1)[None, :]
    return [train_captions[i] for i in d.argmin(axis=1)]


class CaptionRun(BucketedRun):
    """Training and validation of one captioner: the trainer's `run`."""

    def __init__(self, model: Captioner, data: CaptionData, opts: CaptionOptions, seed: int):
        self.model, self.data, self.opts = model, data, opts
        self.vocab = Vocabulary(data.encoding)
        self.x = data.inputs("train")
        self.y = self.vocab.encode(data.captions("train"))
        self.valid_x, self.valid_captions = data.inputs("valid"), data.captions("valid")
        self.batches = BucketBatches([len(y) for y in self.y], opts.batch_size, seed)

    def train_step(self) -> tuple[float, int, int]:
        idx = self.batches.next()
        idx = parallel.share_of(idx)  # in a job, this rank's stamps of the batch
        tgt_in, tgt_out, lengths = decoder_targets([self.y[i] for i in idx], self.vocab.bos, self.vocab.eos)
        loss = self.model(self.x[idx], tgt_in, tgt_out, lengths)
        self.model.backward()
        return loss, int(lengths.sum()), int(lengths.sum())  # a mean over the target tokens (with EOS)

    def evaluate(self) -> dict:
        loss = caption_loss(self.model, self.vocab, self.valid_x, self.valid_captions, self.opts.batch_size)
        hyps = write_captions(self.model, self.vocab, self.valid_x, 1, 0.0)
        return {"loss": loss, **M.bleu_chrf(hyps, self.valid_captions)}


class TrainedCaptioner(Exportable):
    """A trained captioner loaded from its directory: caption, evaluate, describe, export."""

    def __init__(self, out_dir: Path, config: dict, model: Captioner):
        self.dir, self.config, self.model = Path(out_dir), config, model
        self.opts = CaptionOptions(**config["task_options"])
        self.encoding = config["encoding"]
        self.vocab = Vocabulary(self.encoding)

    def inputs(self, paths) -> np.ndarray:
        """(N, F): the network's input for image files; a file that cannot be read is a DataError naming it."""
        return standardise(self.encoding, np.stack([image_features(read_image(p), self.encoding["features"]) for p in paths]))

    def caption(self, paths, beam: int | None = None) -> list[str]:
        """A caption for each image file (beam search of the model's --beam unless given; 1: greedy)."""
        beam = self.opts.beam if beam is None else beam
        if beam < 1:
            raise ValueError(f"--beam: expected a width >= 1, got {beam}")
        return write_captions(self.model, self.vocab, self.inputs(paths), beam, self.opts.length_penalty)

    def onnx_model(self) -> dict:
        """Two ONNX models (``export/onnx.py``), as translate's: the encoder, an image's features →
        the decoder's first state (``caption_encoder_graph``), and the decoder's step
        (``decoder_graph``), so that greedy and beam search run outside on ONNX calls; their metadata
        holds the vocabulary, the start and end tokens' ids and the feature blocks."""
        e, state = self.encoding, onnx_export.decoder_state(self.model)
        meta = {**export_metadata(self), "vocabulary": json.dumps(e["vocabulary"]), "bos": str(self.vocab.bos),
                "eos": str(self.vocab.eos), "state": json.dumps(list(state)), "features": json.dumps(e["features"]),
                "inputs": f"encoder: features (B, {len(e['mean'])}) float32, each image's raw feature vector, "
                          f"rnnkit.data.images.image_features(read_image(path), {e['features']}) (standardised inside); "
                          f"decoder: y (B,) int64, the previous token (bos first), and the state {', '.join(state)} "
                          "(layers, B, hidden) from the encoder or the last step",
                "outputs": "encoder: the decoder's first state; decoder: logits (B, V) of the next token and the next state "
                           f"{', '.join(name + '_next' for name in state)}; a caption ends at eos"}
        return {"encoder": onnx_export.caption_encoder_graph(self.model, e, block_scales(e["features"]), meta),
                "decoder": onnx_export.decoder_graph(self.model, meta)}

    def data(self) -> CaptionData:
        """The parts of the data the model was trained on, as it split them."""
        return CaptionData(self.opts, self.config["training"]["seed"], self.encoding)

    def evaluate(self, data: str | None = None) -> dict:
        """BLEU and chrF of greedy and beam-search captions, and of the nearest-neighbour baseline,
        on the validation and test parts; the validation and test losses."""
        if data is not None:
            raise ValueError("--data: a captioner is evaluated on the validation and test stamps of the data it was "
                             "trained on; leave --data out")
        parts = self.data()
        train_x, train_captions = parts.inputs("train"), parts.captions("train")
        result = {}
        for part in ("valid", "test"):
            if not parts.parts[part]:
                continue
            x, refs = parts.inputs(part), parts.captions(part)
            result[f"{part}_stamps"] = len(refs)
            result[f"{part}_loss"] = caption_loss(self.model, self.vocab, x, refs, self.opts.batch_size)
            for beam in sorted({1, self.opts.beam}):
                hyps = write_captions(self.model, self.vocab, x, beam, self.opts.length_penalty)
                name = "greedy" if beam == 1 else f"beam{beam}"
                result.update({f"{part}_{name}_{k}": v for k, v in M.bleu_chrf(hyps, refs).items()})
            result.update({f"{part}_nearest_{k}": v for k, v in M.bleu_chrf(nearest_captions(train_x, train_captions, x), refs).items()})
        return result

    def describe(self, short: bool = False) -> str:
        c, o, e = self.config, self.opts, self.encoding
        lines = [
            f"model      {self.dir}: task caption ({c.get('status', '?')}), rnnkit {c.get('rnnkit_version')}",
            f"network    image features ({', '.join(e['features'])}: {len(e['mean'])}) → the first state of a "
            f"{o.layers}-layer {cell_name(o.cell, o.cell_option, o.init)} decoder, embedding {o.embed}, hidden {o.hidden}, "
            f"dropout {o.dropout}; {self.model.num_parameters():,} parameters",
            f"vocabulary {len(self.vocab.tokenizer)} {o.tokenizer} tokens",
            f"data       {c['data']['source']}: " + ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in c["data"].items() if k != "source"),
        ]
        if c.get("metrics"):
            lines.append(validation_line(c["metrics"]))
        return "\n".join(lines if not short else [lines[0], lines[-1]])


def build_model(options: CaptionOptions, encoding: dict, seed: int) -> Captioner:
    return Captioner(len(encoding["mean"]), len(encoding["vocabulary"]["tokens"]), options.embed, options.hidden, options.cell,
                     options.layers, options.dropout, rng=np.random.default_rng(seed), cell_settings=options.cell_option,
                     init=options.init)


@register
class CaptionTask(Task):
    name = "caption"
    action = "caption"
    description = "one-to-many: image captioning, image features starting a recurrent decoder"
    action_help = "Caption images with a trained model (the model's --beam: greedy by default)."
    Options = CaptionOptions
    config_schema = {"type": "object", "required": ["encoding", "data"], "properties": {
        "encoding": {"type": "object", "required": ["vocabulary", "features", "mean", "std"],
                     "properties": {"vocabulary": DECODER_VOCABULARY_SCHEMA,
                                    "features": {"type": "array", "minItems": 1, "uniqueItems": True,
                                                 "items": {"enum": list(FEATURES)}},
                                    "mean": MEANS_SCHEMA, "std": SPREADS_SCHEMA},
                     "sameCount": ["mean", "std"]},
        "data": data_schema("train_stamps", "valid_stamps", "test_stamps", "unreadable")}}
    monitors = {"loss": "min", "bleu": "max", "chrf": "max"}
    default_monitor = "chrf"

    Trained = TrainedCaptioner

    def prepare(self, options: CaptionOptions, seed: int, stored: dict | None = None):
        data = CaptionData(options, seed, stored)
        return data, data.encoding, data.description

    def make_model(self, options: CaptionOptions, encoding: dict, seed: int) -> Captioner:
        return build_model(options, encoding, seed)

    def make_run(self, model, data: CaptionData, options: CaptionOptions, seed: int) -> CaptionRun:
        return CaptionRun(model, data, options, seed)

    # ---- the action verb: rnnkit caption DIR IMAGE… ---------------------------------------------
    def add_action_arguments(self, p) -> None:
        p.add_argument("images", nargs="+", metavar="IMAGE", help="image files to caption (PNG, JPEG, GIF…)")
        p.add_argument("--beam", type=int, default=None, help="beam width (default: the model's --beam; 1: greedy)")

    def act(self, model: TrainedCaptioner, args) -> int:
        for path, text in zip(args.images, model.caption(args.images, args.beam)):
            sys.stdout.write(f"{text}\t{path}\n")
        return 0
