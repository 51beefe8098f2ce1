"""Task `translate`: many-to-many encoder-decoder with attention, greedy and beam-search decoding.

Data is sentence pairs, a TSV of ``source<TAB>target`` lines, or the built-in ``bible``: the
World English Bible and the Reina-Valera 1909 aligned verse by verse (English → Spanish).
Tokens are words (and punctuation marks) or characters; vocabularies are separate, or shared
with ``--shared-vocab``. Validation and test are seeded random fractions of the pairs.

Unknown tokens at translation time become ``<unk>`` (the model's own vocabulary holds the
rest); the words it does not know are named on standard error. With attention, an ``<unk>`` in
the output is replaced by the source word that its attention weighs most (Luong et al. 2015,
"Addressing the rare word problem"): names, which the two languages mostly share, come through
(``--keep-unk`` leaves ``<unk>``). There is no length limit on sources: the output stops at the
end token or at 2·S + 10 tokens, and a translation cut there is marked unfinished.

``evaluate`` scores greedy and beam-search decoding on the test split with sacrebleu's BLEU and
chrF, computed on detokenised text against the raw references; with attention, also with the
``<unk>`` kept (keys ending in ``_keep_unk``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import metrics as M
from ..data import DataError, Tokenizer, make_tokenizer
from ..data.batching import BucketBatches, batches_in_order, decoder_targets, pad
from ..data.fingerprint import check_data, record_data
from ..export import onnx as onnx_export
from ..data.parallel import bible_pairs, read_pairs
from ..models.seq2seq import Seq2Seq
from ..data.tokenizers import BOS, DECODER_VOCABULARY_SCHEMA, EOS, TOKENIZERS, VOCABULARY_SCHEMA, with_bounds
from ..models.sequence_model import cell_choices, cell_help, cell_name, cell_option_help, init_help
from ..nn import no_grad
from ..progress import Progress
from ..training import parallel
from ..training.trainer import check_options
from ..training.plots import output_path, pyplot, save_figure
from .base import BucketedRun, Exportable, Task, data_schema, export_metadata, input_texts, network_checks, register

ATTENTIONS = ("bahdanau", "luong-general", "luong-dot", "none")


@dataclass
class TranslateOptions:
    data: str = ""
    test: str = ""
    tokenizer: str = "word"
    lowercase: bool = False
    shared_vocab: bool = False
    min_count: int = 1
    max_vocab: int = 0
    max_words: int = 0
    cell: str = "lstm"
    cell_option: dict = field(default_factory=dict)
    init: str = "rnnkit"
    embed: int = 128
    hidden: int = 256
    layers: int = 1
    attention: str = "bahdanau"
    unidirectional: bool = False
    dropout: float = 0.0
    sampling: float = 0.0
    batch_size: int = 32
    valid_fraction: float = 0.05
    test_fraction: float = 0.05
    beam: int = 5
    length_penalty: float = 0.6

    # the values an option takes (the command line lists them in its usage)
    CHOICES = {"tokenizer": tuple(TOKENIZERS), "cell": cell_choices(step=True), "attention": ATTENTIONS}
    HELP = {
        "data": "sentence pairs: a TSV file of `source<TAB>target` lines, or the built-in bible (English → Spanish verses)",
        "test": "a test file in the same format (default: a random --test-fraction of the pairs)",
        "tokenizer": "word (words and punctuation marks) or char",
        "lowercase": "lowercase both sides",
        "shared_vocab": "one vocabulary for source and target (and tied embeddings are then possible later)",
        "min_count": "tokens seen fewer times in training become <unk>",
        "max_vocab": "keep only the most frequent tokens on each side (0: all)",
        "max_words": "keep the pairs whose sides both have at most this many words (0: all)",
        "cell": cell_help(step=True),
        "cell_option": cell_option_help(step=True),
        "init": "how the parameters start: " + init_help(),
        "embed": "embedding size",
        "hidden": "hidden size of the encoder (per direction) and of the decoder",
        "layers": "stacked layers in encoder and decoder",
        "attention": "bahdanau (additive), luong-general, luong-dot (needs --unidirectional) or none",
        "unidirectional": "read the source left to right only (default: both directions)",
        "dropout": "dropout on embeddings, between layers and before the output layer",
        "sampling": "scheduled sampling: the probability of feeding the model's own previous prediction instead of the reference (0: teacher forcing)",
        "batch_size": "pairs per batch",
        "valid_fraction": "fraction of the pairs held out for validation",
        "test_fraction": "without --test: fraction of the pairs held out for testing",
        "beam": "beam width for translating and evaluating (1: greedy)",
        "length_penalty": "GNMT length penalty α for beam search (0: rank by log-probability alone)",
    }

    def __post_init__(self):
        checks = {"tokenizer": self.tokenizer in ("word", "char"),
                  "attention": self.attention in ATTENTIONS, "sampling": 0 <= self.sampling <= 1,
                  "valid_fraction": 0 < self.valid_fraction < 1, "test_fraction": 0 <= self.test_fraction < 1,
                  "beam": self.beam >= 1, "max_words": self.max_words >= 0, "dropout": 0 <= self.dropout < 1,
                  **network_checks(self, step=True)}
        check_options(self, checks)


BUILT_IN = ("bible",)


def _read(spec: str, max_words: int) -> tuple[list[str], list[str], str]:
    if spec in BUILT_IN:
        sources, targets, _ = bible_pairs(max_words or None)
        return sources, targets, "World English Bible → Reina-Valera 1909, verse pairs (Debian sword-text-web, sword-text-sparv)"
    if not Path(spec).is_file():
        raise DataError(f"--data: {spec} is not a file nor the built-in set (bible)")
    sources, targets = read_pairs(spec)
    if max_words:
        keep = [i for i, (s, t) in enumerate(zip(sources, targets)) if len(s.split()) <= max_words and len(t.split()) <= max_words]
        sources, targets = [sources[i] for i in keep], [targets[i] for i in keep]
    return sources, targets, spec


class Vocabularies:
    """Source and target tokenizers; the target's holds the start and end tokens at ids 1 and 2."""

    def __init__(self, config: dict):
        self.config = config
        self.src = Tokenizer.from_dict(config["source"])
        self.tgt = Tokenizer.from_dict(config["target"])
        self.bos, self.eos = self.tgt.index[BOS], self.tgt.index[EOS]

    @classmethod
    def fit(cls, opts: TranslateOptions, sources: list[str], targets: list[str]) -> "Vocabularies":
        prep = (lambda t: t.lower()) if opts.lowercase else (lambda t: t)
        src_text, tgt_text = "\n".join(map(prep, sources)), "\n".join(map(prep, targets))
        size = opts.max_vocab or None
        src = make_tokenizer(opts.tokenizer, src_text + ("\n" + tgt_text if opts.shared_vocab else ""), opts.min_count, size)
        tgt = src if opts.shared_vocab else make_tokenizer(opts.tokenizer, tgt_text, opts.min_count, size)
        target = with_bounds(tgt).to_dict()
        return cls({"source": src.to_dict() if not opts.shared_vocab else target, "target": target,
                    "lowercase": opts.lowercase})

    def encode_source(self, text: str) -> np.ndarray:
        return self.src.encode(text.lower() if self.config["lowercase"] else text)

    def encode_target(self, text: str) -> np.ndarray:
        return self.tgt.encode(text.lower() if self.config["lowercase"] else text)

    def unknown_source_tokens(self, text: str) -> list[str]:
        return sorted({tok for tok in self.source_words(text) if not self.src.contains(tok)})

    def source_words(self, text: str) -> list[str]:
        """The source's tokens as written (before the vocabulary maps the unknown ones to <unk>)."""
        return self.src.split(text.lower() if self.config["lowercase"] else text)

    def text(self, translation, source_words: list[str], copy_unknown: bool = True) -> str:
        """A Translation as text; with ``copy_unknown`` and attention, each <unk> becomes the
        source word its attention weighs most."""
        tokens = [self.tgt.tokens[t] for t in translation.tokens]
        if copy_unknown and translation.attention is not None:
            unk = self.tgt.tokens[0]
            tokens = [source_words[int(np.argmax(translation.attention[i]))] if t == unk else t
                      for i, t in enumerate(tokens)]
        return self.tgt.join(tokens)


class PairData:
    """The pairs of each split, as texts and as token ids."""

    def __init__(self, opts: TranslateOptions, seed: int, stored: dict | None = None):
        if stored is not None:  # a loaded or resumed model: its config's paths, only if still its data
            check_data(opts, stored.get("data_files"), BUILT_IN.__contains__)
        sources, targets, self.source = _read(opts.data, opts.max_words)
        rng = np.random.default_rng([seed, 3])
        order = rng.permutation(len(sources))
        n_valid = int(round(len(sources) * opts.valid_fraction))
        n_test = 0 if opts.test else int(round(len(sources) * opts.test_fraction))
        parts = {"valid": order[:n_valid], "test": order[n_valid : n_valid + n_test], "train": order[n_valid + n_test :]}
        self.texts = {k: ([sources[i] for i in sorted(v)], [targets[i] for i in sorted(v)]) for k, v in parts.items()}
        if opts.test:
            s, t, _ = _read(opts.test, opts.max_words)
            self.texts["test"] = (s, t)
        self.texts = {k: v for k, v in self.texts.items() if v[0]}
        for name in ("train", "valid"):
            if name not in self.texts:
                raise DataError(f"data: the {name} split has no pairs; give more pairs or change the fractions")
        self.vocab = Vocabularies(stored) if stored else Vocabularies.fit(opts, *self.texts["train"])
        if stored is None:
            self.vocab.config["data_files"] = record_data(opts, BUILT_IN.__contains__)
        self.ids = {k: self.encode(*v, k) for k, v in self.texts.items()}
        self.description = {"source": self.source, **{f"{k}_pairs": len(v[0]) for k, v in self.texts.items()}}

    def encode(self, sources, targets, split: str):
        src = [self.vocab.encode_source(s) for s in sources]
        tgt = [self.vocab.encode_target(t) for t in targets]
        for i, (s, t) in enumerate(zip(src, tgt)):
            if s.size == 0 or t.size == 0:
                raise DataError(f"the {split} split: pair {i + 1} has an empty side after tokenizing ({sources[i]!r})")
        return src, tgt


def make_batch(vocab: Vocabularies, src: list[np.ndarray], tgt: list[np.ndarray]):
    """Padded (S, B) sources and (T, B) decoder inputs ``BOS y`` and outputs ``y EOS``, with lengths."""
    x, src_len = pad(src)
    tgt_in, tgt_out, tgt_len = decoder_targets(tgt, vocab.bos, vocab.eos)
    return x, src_len, tgt_in, tgt_out, tgt_len


def build_model(opts: TranslateOptions, vocab: dict, seed: int) -> Seq2Seq:
    return Seq2Seq(len(vocab["source"]["tokens"]), len(vocab["target"]["tokens"]), opts.embed, opts.hidden, opts.cell,
                   opts.layers, not opts.unidirectional, opts.attention, opts.dropout, rng=np.random.default_rng(seed),
                   cell_settings=opts.cell_option, init=opts.init)


def validation_loss(model: Seq2Seq, data: PairData, split: str, batch_size: int) -> float:
    """The mean cross-entropy over the target tokens of ``split``; in a job, each rank scores its
    share of the batches."""
    src, tgt = data.ids[split]
    total, count = 0.0, 0
    group = parallel.world()
    batches = batches_in_order([len(s) for s in src], batch_size)
    with no_grad():
        model.eval()
        for idx in batches[group.share(len(batches))]:
            x, src_len, tgt_in, tgt_out, tgt_len = make_batch(data.vocab, [src[i] for i in idx], [tgt[i] for i in idx])
            n = int(tgt_len.sum())
            total, count = total + model(x, src_len, tgt_in, tgt_out, tgt_len) * n, count + n
    total, count = group.sum([total, count])
    return total / count


def decode(model: Seq2Seq, vocab: Vocabularies, sources: list[np.ndarray], beam: int, length_penalty: float,
           batch_size: int = 64) -> list:
    """Translations of token-id sources, in their order (greedy when beam is 1)."""
    out: list = [None] * len(sources)
    with Progress("greedy decoding" if beam == 1 else f"beam search (width {beam})", len(sources), unit="sentence") as progress:
        for idx in batches_in_order([len(s) for s in sources], batch_size):
            x, lengths = pad([sources[i] for i in idx])
            if beam == 1:
                results = model.greedy(x, lengths, bos=vocab.bos, eos=vocab.eos)
            else:
                results = model.beam_search(x, lengths, bos=vocab.bos, eos=vocab.eos, beam=beam, length_penalty=length_penalty)
            for i, r in zip(idx, results):
                out[i] = r
            progress.update(len(idx))
    return out


class TranslateRun(BucketedRun):
    def __init__(self, model: Seq2Seq, data: PairData, opts: TranslateOptions, seed: int):
        self.model, self.data, self.opts = model, data, opts
        self.batches = BucketBatches([len(s) for s in data.ids["train"][0]], opts.batch_size, seed)

    def train_step(self) -> tuple[float, int, int]:
        idx = self.batches.next()
        idx = parallel.share_of(idx)
        src, tgt = self.data.ids["train"]
        batch = make_batch(self.data.vocab, [src[i] for i in idx], [tgt[i] for i in idx])
        loss = self.model(*batch, sampling_prob=self.opts.sampling)
        self.model.backward()
        return loss, int(batch[-1].sum()), int(batch[-1].sum())  # a mean over the target tokens (with EOS)

    def evaluate(self) -> dict:
        return {"loss": validation_loss(self.model, self.data, "valid", self.opts.batch_size)}


class TrainedTranslator(Exportable):
    """A trained translation model loaded from its directory: translate, evaluate, describe."""

    def __init__(self, out_dir: Path, config: dict, model: Seq2Seq):
        self.dir, self.config, self.model = Path(out_dir), config, model
        self.opts = TranslateOptions(**config["task_options"])
        self.vocab = Vocabularies(config["vocabulary"])

    def translate(self, texts: list[str], beam: int | None = None, copy_unknown: bool = True) -> list[dict]:
        """For each source text: {"text", "tokens", "source_tokens", "score", "log_prob", "finished",
        "attention", "unknown"}; ``copy_unknown``: an output <unk> becomes the source word it attends to most."""
        beam = self.opts.beam if beam is None else beam
        if beam < 1:
            raise ValueError(f"--beam: expected a width >= 1, got {beam}")
        sources = []
        for i, text in enumerate(texts):
            ids = self.vocab.encode_source(text)
            if not text.strip() or ids.size == 0:
                raise ValueError(f"TEXT: source {i + 1} is empty; give a sentence to translate")
            sources.append(ids)
        results = decode(self.model, self.vocab, sources, beam, self.opts.length_penalty)
        return [{"text": self.vocab.text(r, self.vocab.source_words(text), copy_unknown),
                 "tokens": [self.vocab.tgt.tokens[t] for t in r.tokens],
                 "source_tokens": [self.vocab.src.tokens[t] for t in s], "score": r.score, "log_prob": r.log_prob,
                 "finished": r.finished, "attention": r.attention, "unknown": self.vocab.unknown_source_tokens(text)}
                for text, s, r in zip(texts, sources, results)]

    def onnx_model(self) -> dict:
        """Two ONNX models (``export/onnx.py``): the encoder, and the decoder's step, so that greedy
        and beam search run outside on ONNX calls; their metadata holds the vocabularies and the
        start and end tokens' ids."""
        meta = {**export_metadata(self), "vocabulary": json.dumps(self.vocab.config), "bos": str(self.vocab.bos),
                "eos": str(self.vocab.eos), "state": json.dumps(list(onnx_export.decoder_state(self.model)))}
        return {"encoder": onnx_export.encoder_graph(self.model, meta), "decoder": onnx_export.decoder_graph(self.model, meta)}

    def evaluate(self, data: str | None = None, beams: tuple[int, ...] | None = None) -> dict:
        """BLEU and chrF of greedy and beam-search decoding on the test split (or ``data``), and the validation loss."""
        if data is None:
            pairs = PairData(self.opts, self.config["training"]["seed"], stored=self.vocab.config)
            split = "test" if "test" in pairs.texts else "valid"
            sources, references = pairs.texts[split]
        else:
            sources, references, _ = _read(data, 0)
            split = "data"
        ids = [self.vocab.encode_source(s) for s in sources]
        words = [self.vocab.source_words(s) for s in sources]
        result = {f"{split}_pairs": len(sources)}
        variants = {"": True, "_keep_unk": False} if self.opts.attention != "none" else {"": True}  # suffix: copy?
        for beam in beams or sorted({1, self.opts.beam}):
            found = decode(self.model, self.vocab, ids, beam, self.opts.length_penalty)
            name = "greedy" if beam == 1 else f"beam{beam}"
            for suffix, copy in variants.items():
                hyps = [self.vocab.text(r, w, copy) for r, w in zip(found, words)]
                result.update({f"{name}_{k}{suffix}": v for k, v in M.bleu_chrf(hyps, references).items()})
        return result

    def describe(self, short: bool = False) -> str:
        c, o = self.config, self.opts
        m = c.get("metrics", {})
        lines = [
            f"model      {self.dir}: task translate ({c.get('status', '?')}), rnnkit {c.get('rnnkit_version')}",
            f"network    {o.layers}-layer {'' if o.unidirectional else 'bidirectional '}{cell_name(o.cell, o.cell_option, o.init)} encoder, "
            f"{o.cell.upper()} decoder, {o.attention} attention, embedding {o.embed}, hidden {o.hidden}; "
            f"{self.model.num_parameters():,} parameters",
            f"vocabulary {len(self.vocab.src)} source and {len(self.vocab.tgt)} target {o.tokenizer} tokens"
            + (" (shared)" if o.shared_vocab else ""),
            f"data       {c['data']['source']}: " + ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in c["data"].items() if k != "source"),
        ]
        if m:
            lines.append(f"validation loss {m['loss']:.4f} nats per token (step {m.get('step')})")
        return "\n".join(lines if not short else [lines[0], lines[-1]])


def plot_attention(result: dict, path: Path) -> Path:
    """The attention weights of one translation: output tokens down, source tokens across."""
    a = result["attention"]
    if a is None:
        raise ValueError("--heatmap: this model has no attention (trained with --attention none)")
    plt = pyplot()
    src, out = result["source_tokens"], result["tokens"]
    fig, ax = plt.subplots(figsize=(1.5 + 0.35 * len(src), 1.2 + 0.35 * len(out)), dpi=100)
    ax.imshow(a, cmap="Greys", aspect="auto", vmin=0, vmax=1)
    ax.set_xticks(range(len(src)), src, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(out)), out, fontsize=8)
    ax.set_xlabel("source")
    ax.set_ylabel("translation")
    return save_figure(fig, path)


@register
class TranslateTask(Task):
    name = "translate"
    action = "translate"
    description = "many-to-many: translation with an encoder-decoder, attention and beam search"
    action_help = "Translate sentences with a trained model (beam search by default), optionally drawing the attention."
    Options = TranslateOptions
    config_schema = {"type": "object", "required": ["vocabulary", "data"], "properties": {
        "vocabulary": {"type": "object", "required": ["source", "target", "lowercase"],
                       "properties": {"source": VOCABULARY_SCHEMA, "lowercase": {"type": "boolean"},
                                      "target": DECODER_VOCABULARY_SCHEMA}},
        "data": data_schema("train_pairs", "valid_pairs"),
        "metrics": {"if": {"minProperties": 1}, "then": {"required": ["loss"]},  # describe() prints the loss
                    "properties": {"loss": {"type": "number"}}}}}

    Trained = TrainedTranslator
    encoding_key = "vocabulary"

    def prepare(self, options: TranslateOptions, seed: int, stored: dict | None = None):
        if options.attention == "luong-dot" and not options.unidirectional:
            raise ValueError("--attention luong-dot: needs --unidirectional (its keys must be the decoder's size)")
        data = PairData(options, seed, stored)
        return data, data.vocab.config, data.description

    def make_model(self, options: TranslateOptions, encoding: dict, seed: int) -> Seq2Seq:
        return build_model(options, encoding, seed)

    def make_run(self, model, data: PairData, options: TranslateOptions, seed: int) -> TranslateRun:
        return TranslateRun(model, data, options, seed)

    def add_action_arguments(self, p) -> None:
        p.add_argument("texts", nargs="*", metavar="TEXT", help="sentences to translate (or give --data)")
        p.add_argument("--data", metavar="FILE", help="a file with one source sentence per line")
        p.add_argument("--beam", type=int, default=None, help="beam width (default: the model's --beam; 1: greedy)")
        p.add_argument("--heatmap", metavar="PNG", help="draw the attention of the first sentence into this PNG")
        p.add_argument("--keep-unk", action="store_true",
                       help="print <unk> for words outside the vocabulary (default, with attention: the source word it attends to)")

    def act(self, model: TrainedTranslator, args) -> int:
        heatmap = output_path(args.heatmap, "--heatmap") if args.heatmap else None
        results = model.translate(input_texts(args), args.beam, copy_unknown=not args.keep_unk)
        for r in results:
            if r["unknown"]:
                sys.stderr.write(f"rnnkit: note: unknown to the model, read as <unk>: {', '.join(r['unknown'])}\n")
            sys.stdout.write(r["text"] + ("" if r["finished"] else "  [unfinished: length limit]") + "\n")
        if heatmap:
            sys.stdout.write(f"attention: {plot_attention(results[0], heatmap)}\n")
        return 0
