"""What `--data` names for a labelled task: a file in one of the users' formats, or a built-in set.

    polarity           sentence polarity (texts; see ``datasets.polarity_dataset``)
    ucr:NAME           a UCR/UEA time-series set with its official test split
    fillets-speaker:cs which fish speaks (or :nl): log-mel series of Fish Fillets' dialogue, test =
                       the held-out levels
    FILE.tsv / .txt    ``label<TAB>text`` lines
    FILE.csv           ``label,text`` lines, or numeric series ``label,v1,v2,…`` when every field
                       after the label of the first line is a number
    FILE.npz / .ts     numeric series
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import datasets, speech
from .corpora import ROW_LIMIT, read_text_file
from .errors import DataError
from .labelled import _is_number, read_labelled_text, read_series

BUILT_IN = ("polarity", "ucr:NAME", "fillets-speaker:cs", "fillets-speaker:nl")


def is_built_in(spec: str) -> bool:
    """Whether ``spec`` names a built-in set rather than a file."""
    return spec == "polarity" or spec.startswith("ucr:") or spec in BUILT_IN


@dataclass
class Source:
    """kind: "text" or "series"; items: texts, or (T_i, C) arrays; labels: one str per item;
    test: the set's own test split (items, labels), when it has one."""

    kind: str
    items: list
    labels: list
    description: str
    test: tuple[list, list] | None = None


def _csv_holds_series(path: Path) -> bool:
    for line in read_text_file(path, line_limit=ROW_LIMIT).split("\n"):  # maybe a series a line
        if line.strip():
            fields = line.split(",")[1:]
            return len(fields) >= 1 and all(_is_number(f.strip()) for f in fields)
    return False


def load_classification(spec: str, labelled: bool = True) -> Source:
    """The examples ``spec`` names (see the module docstring).

    labelled=False reads inputs to predict: for text, every non-blank line is one text (a
    ``label<TAB>`` prefix is dropped); series files are read as for training.
    """
    if spec == "polarity":
        texts, labels = datasets.polarity_dataset()
        return Source("text", texts, labels, "sentence polarity: Pang & Lee's movie-review sentences, "
                      "rated by Hutto & Gilbert 2014 (vaderSentiment 3.3.2)")
    if spec.startswith("ucr:"):
        train, test = datasets.ucr_dataset(spec[4:])
        return Source("series", train[0], train[1], f"UCR/UEA {spec[4:]} (sktime 1.2.0), official split", test=test)
    if spec.startswith("fillets-speaker:"):
        train, test = speech.speaker_dataset(spec.split(":", 1)[1])
        return Source("series", train[0], train[1], f"{spec}: which fish speaks, Fish Fillets' {spec[-2:]} dialogue "
                      f"(log-mel, {speech.SPEAKER_POOL} frames a step), test = held-out levels", test=test)
    path = Path(spec)
    if not path.is_file():
        raise DataError(f"--data: {spec} is not a file nor a built-in set ({', '.join(BUILT_IN)})")
    suffix = path.suffix.lower()
    if suffix in (".npz", ".ts") or (suffix == ".csv" and _csv_holds_series(path)):
        series, labels = read_series(path)
        return Source("series", series, [str(v) for v in labels], str(path))
    if not labelled:
        lines = [line.split("\t", 1)[-1].strip() for line in read_text_file(path).split("\n")]
        texts = [t for t in lines if t]
        if not texts:
            raise DataError(f"{path}: has no texts; write one text per line")
        return Source("text", texts, [], str(path))
    texts, labels = read_labelled_text(path)
    return Source("text", texts, labels, str(path))
