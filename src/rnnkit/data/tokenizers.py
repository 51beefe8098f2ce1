"""Character, word and ABC-notation tokenizers over one vocabulary logic.

A vocabulary is a list of tokens in index order; index 0 is always ``<unk>``, the id of every
token the vocabulary does not hold. It is stored as plain JSON (``to_dict`` → ``{"kind",
"tokens"}``), never pickled, so loading a model directory executes no code.

    tok = CharTokenizer.from_text(text)          # or WordTokenizer
    ids = tok.encode("ROMEO:")                   # (n,) int64
    tok.decode(ids) == "ROMEO:"
    tok.encode("жЖ", strict=True, name="prime")  # DataError naming 'ж', 'Ж'
"""

from __future__ import annotations

import re
from collections import Counter
from typing import ClassVar, Iterable

import numpy as np

from .errors import DataError

UNK = "<unk>"
# A decoder's start and end tokens: the control characters STX and ETX, which texts do not hold and
# which a character vocabulary can keep like any other character.
BOS, EOS = "\x02", "\x03"


class Tokenizer:
    """The shared vocabulary logic; subclasses say how text splits into tokens and joins back."""

    kind: ClassVar[str] = ""
    unit: ClassVar[str] = "tokens"  # the word error messages use: "characters", "words"
    lossless: ClassVar[bool] = False  # every character of a text is in one of its tokens: join(split(t)) == t

    def __init__(self, tokens: Iterable[str]):
        """tokens: the vocabulary in index order; ``<unk>`` is put at index 0 if it is not there."""
        tokens = list(tokens)
        if any(not isinstance(t, str) or t == "" for t in tokens):
            raise DataError(f"vocabulary: tokens must be non-empty strings, got {tokens[:10]!r}…")
        if UNK in tokens and tokens[0] != UNK:
            raise DataError(f"vocabulary: {UNK!r} must be at index 0, found at {tokens.index(UNK)}")
        if not tokens or tokens[0] != UNK:
            tokens = [UNK] + tokens
        if len(set(tokens)) != len(tokens):
            dup = sorted(t for t, n in Counter(tokens).items() if n > 1)
            raise DataError(f"vocabulary: duplicate tokens {dup[:10]!r}; each token may appear once")
        self.tokens: list[str] = tokens
        self.index: dict[str, int] = {t: i for i, t in enumerate(tokens)}

    # ---- building -------------------------------------------------------------------------
    @classmethod
    def from_text(cls, text: str, min_count: int = 1, max_size: int | None = None):
        """The vocabulary of ``text``: tokens seen at least ``min_count`` times, the most frequent
        first when ``max_size`` (which counts ``<unk>``) cuts it; kept tokens in sorted order."""
        if not isinstance(text, str):
            raise DataError(f"text: expected a str, got {type(text).__name__}")
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise DataError(f"min_count: expected an integer >= 1, got {min_count!r}")
        if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 2):
            raise DataError(f"max_size: expected an integer >= 2 (it counts {UNK}) or None, got {max_size!r}")
        counts = cls._count(text)
        if not counts:
            raise DataError(f"cannot build a vocabulary from empty text: give text with at least one {cls.unit[:-1]}")
        kept = [(t, n) for t, n in counts.items() if n >= min_count and t != UNK]
        if not kept:
            top = max(counts.values())
            raise DataError(f"min_count {min_count} keeps no {cls.unit}: the most frequent appears {top} times; lower min_count")
        if max_size is not None:
            kept.sort(key=lambda tn: (-tn[1], tn[0]))  # ties broken by token: deterministic
            kept = kept[: max_size - 1]
        return cls(sorted(t for t, _ in kept))

    fit = from_text

    @classmethod
    def _count(cls, text: str) -> dict[str, int]:
        return Counter(cls.split(text))

    # ---- the two directions --------------------------------------------------------------
    @classmethod
    def split(cls, text: str) -> list[str]:
        raise NotImplementedError

    def join(self, tokens: list[str]) -> str:
        raise NotImplementedError

    def encode(self, text: str, strict: bool = False, name: str = "text") -> np.ndarray:
        """text → ids (n,) int64; unknown tokens become 0 (``<unk>``), or, with ``strict``, a
        DataError that names them (``name`` says which input, e.g. "prime")."""
        if not isinstance(text, str):
            raise DataError(f"{name}: expected a str, got {type(text).__name__}")
        tokens = self.split(text)
        ids = np.fromiter((self.index.get(t, 0) for t in tokens), dtype=np.int64, count=len(tokens))
        if strict:
            self._check_known(tokens, ids, name)
        return ids

    def _check_known(self, tokens, ids, name):
        if np.all(ids != 0):
            return
        missing = list(dict.fromkeys(t for t, i in zip(tokens, ids) if i == 0))
        shown = ", ".join(repr(t) for t in missing[:20]) + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")
        raise DataError(
            f"{name}: {self.unit} not in the model's vocabulary: {shown}; "
            f"use only {self.unit} the model was trained on (`rnnkit info DIR` shows the vocabulary)"
        )

    def decode(self, ids) -> str:
        """ids (n,) → text; id 0 reads as ``<unk>``."""
        ids = self._check_ids(ids)
        return self.join([self.tokens[i] for i in ids.tolist()])

    def _check_ids(self, ids) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.size == 0:
            return ids.reshape(0).astype(np.int64)
        if ids.dtype.kind not in "iu":
            raise DataError(f"ids: expected integers, got dtype {ids.dtype}")
        ids = ids.reshape(-1).astype(np.int64, copy=False)
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= len(self):
            raise DataError(f"ids: expected values in [0, {len(self)}) for this vocabulary, got values in [{lo}, {hi}]")
        return ids

    # ---- the vocabulary as data ----------------------------------------------------------
    def __len__(self) -> int:
        return len(self.tokens)

    def contains(self, token: str) -> bool:
        return token in self.index

    __contains__ = contains

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.tokens == other.tokens

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} {self.unit} incl. {UNK})"

    def to_dict(self) -> dict:
        """Plain JSON: ``{"kind": "char" | "word", "tokens": [...]}`` (``tokens[0] == "<unk>"``)."""
        return {"kind": self.kind, "tokens": list(self.tokens)}

    @classmethod
    def from_dict(cls, d: dict) -> "Tokenizer":
        """Rebuild from ``to_dict()``; called on ``Tokenizer`` it picks the class from ``kind``."""
        if not isinstance(d, dict) or "kind" not in d or not isinstance(d.get("tokens"), list):
            raise DataError(
                "vocabulary: expected a dict with 'kind' and a 'tokens' list; the model directory's config.json may be damaged"
            )
        if d["kind"] not in TOKENIZERS:
            raise DataError(f"vocabulary: unknown tokenizer kind {d['kind']!r}; expected one of {sorted(TOKENIZERS)}")
        target = TOKENIZERS[d["kind"]]
        if cls is not Tokenizer and cls is not target:
            raise DataError(f"vocabulary: kind {d['kind']!r} cannot be loaded as {cls.__name__} (kind {cls.kind!r})")
        if not d["tokens"] or d["tokens"][0] != UNK:
            raise DataError(f"vocabulary: tokens[0] must be {UNK!r}; the model directory's config.json may be damaged")
        return target(d["tokens"])


class CharTokenizer(Tokenizer):
    """One token per Unicode character (code point); newlines and spaces are tokens too."""

    kind = "char"
    unit = "characters"
    lossless = True

    def __init__(self, tokens: Iterable[str]):
        super().__init__(tokens)
        bad = [t for t in self.tokens[1:] if len(t) != 1]
        if bad:
            raise DataError(f"vocabulary: a character vocabulary holds single characters, got {bad[:5]!r}")
        # Sorted code points and their ids: encoding is one searchsorted over the whole text.
        cps = np.array([ord(t) for t in self.tokens[1:]], dtype=np.int64)
        order = np.argsort(cps)
        self._cps, self._cp_ids = cps[order], (order + 1).astype(np.int64)

    @staticmethod
    def _codes(text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.int64)

    @classmethod
    def _count(cls, text: str) -> dict[str, int]:
        values, counts = np.unique(cls._codes(text), return_counts=True)
        return {chr(v): int(n) for v, n in zip(values.tolist(), counts.tolist())}

    @classmethod
    def split(cls, text: str) -> list[str]:
        return list(text)

    def join(self, tokens: list[str]) -> str:
        return "".join(tokens)

    def encode(self, text: str, strict: bool = False, name: str = "text") -> np.ndarray:
        if not isinstance(text, str):
            raise DataError(f"{name}: expected a str, got {type(text).__name__}")
        codes = self._codes(text)
        if not len(self._cps):
            ids = np.zeros(len(codes), dtype=np.int64)
        else:
            pos = np.minimum(np.searchsorted(self._cps, codes), len(self._cps) - 1)
            ids = np.where(self._cps[pos] == codes, self._cp_ids[pos], 0)
        if strict:
            self._check_known(text, ids, name)
        return ids

    def decode(self, ids) -> str:
        ids = self._check_ids(ids)
        if ids.size and not np.any(ids == 0):  # fast path: one buffer decode for long generations
            cps = np.zeros(len(self), dtype="<u4")
            cps[1:] = [ord(t) for t in self.tokens[1:]]
            return cps[ids].tobytes().decode("utf-32-le", "surrogatepass")
        return self.join([self.tokens[i] for i in ids.tolist()])


# Words with their apostrophes (don't, o'er, Love's, and the elisions 'tis, 'gainst, which would
# otherwise decode as "is' tis"), single punctuation marks, newlines.
WORD_PATTERN = re.compile(r"'?\w+(?:'\w+)*|[^\w\s]|\n")
_NO_SPACE_BEFORE = set(",.;:!?')]}-”»")
_NO_SPACE_AFTER = set("([{-\n¿¡“«")


class WordTokenizer(Tokenizer):
    """Tokens are words, punctuation marks and newlines; other whitespace only separates.

    Decoding puts one space between tokens except before closing punctuation (``, . ; : ! ? ' ) ] } ” »``),
    after opening marks (``( [ { ¿ ¡ “ «``) and a newline, and on both sides of a hyphen, so
    "self-substantial", "spleen,--" and "¿Qué?" come back as written.
    """

    kind = "word"
    unit = "words"

    @classmethod
    def split(cls, text: str) -> list[str]:
        return WORD_PATTERN.findall(text)

    def join(self, tokens: list[str]) -> str:
        out: list[str] = []
        prev = "\n"
        for t in tokens:
            if out and t not in _NO_SPACE_BEFORE and prev not in _NO_SPACE_AFTER and t != "\n":
                out.append(" ")
            out.append(t)
            prev = t
        return "".join(out)


# ABC notation's units, as folk-rnn (Sturm et al. 2016) reads tunes: a header field line ("M:6/8",
# "K:Dmix") is one token; a note is its accidentals, letter and octave marks ("^c'", "_B,", "z"),
# its length apart ("2", "/2", "3/2"); bar lines and repeats ("|", ":|", "|1", "[2", "::"),
# tuplets ("(3"), inline fields ("[K:G]"), decorations ("!trill!") and chord symbols are tokens
# whole. Everything else, spaces and newlines included, is a token of one character (runs of
# spaces one token), so every character of a text belongs to exactly one token.
ABC_PATTERN = re.compile(
    r"""^[A-Za-z]:[^\n]*           # a header field line
      | \[[A-Za-z]:[^\]\n]*\]      # an inline field
      | \[\| | :*\|+[\]:]*[0-9]? | ::+ | \[[0-9]   # bar lines, repeats, endings
      | (?:\^\^|\^|__|_|=)?[A-Ga-gzxZ][,']*    # a note or rest with its accidental and octave
      | [0-9]*/+[0-9]* | [0-9]+                  # a length
      | \([0-9](?::[0-9]*){0,2}                 # a tuplet
      | ![^!\n]*! | "[^"\n]*"                    # a decoration, a chord symbol
      | >+ | <+ | [ ]+ | [\s\S]""",
    re.M | re.X,
)


class AbcTokenizer(Tokenizer):
    """Tokens are the units of ABC notation (``ABC_PATTERN``); decoding joins them as they
    were, so ``decode(encode(text)) == text`` for any text whose tokens are in the vocabulary."""

    kind = "abc"
    unit = "ABC tokens"
    lossless = True

    @classmethod
    def split(cls, text: str) -> list[str]:
        return ABC_PATTERN.findall(text)

    def join(self, tokens: list[str]) -> str:
        return "".join(tokens)


TOKENIZERS: dict[str, type[Tokenizer]] = {"char": CharTokenizer, "word": WordTokenizer, "abc": AbcTokenizer}

#: the JSON schema of ``to_dict()`` as a model directory's config.json stores it: what
#: ``from_dict`` accepts (``<unk>`` first, distinct non-empty tokens, single characters for "char")
VOCABULARY_SCHEMA = {
    "type": "object",
    "required": ["kind", "tokens"],
    "properties": {"kind": {"enum": sorted(TOKENIZERS)},
                   "tokens": {"type": "array", "minItems": 1, "uniqueItems": True, "prefixItems": [{"const": UNK}],
                              "items": {"type": "string", "minLength": 1}}},
    "if": {"properties": {"kind": {"const": "char"}}},
    "then": {"properties": {"tokens": {"prefixItems": [True], "items": {"maxLength": 1}}}},
}
#: a decoder's vocabulary (``with_bounds``): it starts from BOS and stops at EOS, ids 1 and 2
DECODER_VOCABULARY_SCHEMA = {"allOf": [VOCABULARY_SCHEMA, {"properties": {"tokens": {
    "minItems": 3, "prefixItems": [{"const": UNK}, {"const": BOS}, {"const": EOS}]}}}]}


def with_bounds(tokenizer: Tokenizer) -> Tokenizer:
    """A decoder's vocabulary: ``<unk>``, BOS and EOS at ids 0, 1 and 2, then the tokenizer's other tokens."""
    return type(tokenizer)([BOS, EOS, *(tok for tok in tokenizer.tokens[1:] if tok not in (BOS, EOS))])


def make_tokenizer(kind: str, text: str, min_count: int = 1, max_size: int | None = None) -> Tokenizer:
    """The tokenizer of ``kind`` ("char", "word" or "abc") fitted on ``text``."""
    if kind not in TOKENIZERS:
        raise DataError(f"tokenizer: expected one of {sorted(TOKENIZERS)}, got {kind!r}")
    return TOKENIZERS[kind].from_text(text, min_count=min_count, max_size=max_size)
