"""Labelled files users bring: texts with classes, tagged tokens, numeric series with classes.

    texts, labels = read_labelled_text("reviews.tsv")     # label<TAB>text per line (.csv: label,text)
    sentences = read_conll("ner.conll", scheme="auto")   # [(tokens, tags), …], tags checked as BIO or BIOES
    scheme = check_tag_scheme(sentences)                  # "BIO" or "BIOES"
    series, labels = read_series("gestures.npz")          # [(T_i, C) float32 arrays], [label, …]

Every problem is a DataError naming the file and, for text files, the line (``file:line``).
Text files are UTF-8 (a BOM is dropped; see ``read_text_file``) and blank lines are skipped.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from ..files import human_size, read_regular
from .corpora import ROW_LIMIT, read_text_file
from .errors import DataError

#: the largest value a series may hold: models compute in float32, so a larger one would be inf
FLOAT32_MAX = float(np.finfo(np.float32).max)
#: what the error says of a larger value
TOO_LARGE = f"beyond the range of the 32-bit floats models compute in (±{FLOAT32_MAX:.3g}); rescale the data"
#: the largest .npz file, and the most its arrays may take once unpacked
ARRAYS_LIMIT = 2**30

# ---- texts with classes ---------------------------------------------------------------------


def read_labelled_text(path) -> tuple[list[str], list[str]]:
    """(texts, labels) of a classification file, one example per line: ``label<TAB>text``.

    A ``.csv`` file uses a comma instead of the tab. The first separator splits the line, so the
    text may hold more of them (CSV quoting is not interpreted: quotes stay part of the text).
    Label and text are stripped of surrounding spaces. A first line that is exactly the header
    ``label<TAB>text`` (``label,text``) is skipped. Blank lines are skipped. A line without the
    separator, with an empty label or an empty text is a DataError naming ``file:line``.
    """
    path = Path(path)
    sep, name, shown = (",", "comma", ",") if path.suffix.lower() == ".csv" else ("\t", "tab", "<TAB>")
    texts, labels = [], []
    for lineno, line in enumerate(read_text_file(path).split("\n"), 1):
        if not line.strip() or (lineno == 1 and line.strip() == f"label{sep}text"):
            continue
        if sep not in line:
            raise DataError(f"{path}:{lineno}: no {name} between label and text; write each example as label{shown}text")
        label, text = (part.strip() for part in line.split(sep, 1))
        if not label:
            raise DataError(f"{path}:{lineno}: empty label; put the class before the {name}")
        if not text:
            raise DataError(f"{path}:{lineno}: empty text for label {label!r}; give the text or remove the line")
        texts.append(text)
        labels.append(label)
    if not texts:
        raise DataError(f"{path}: has no examples; write one label{shown}text per line")
    return texts, labels


# ---- tagged tokens (CoNLL) ------------------------------------------------------------------

SCHEMES = {"BIO": "BIO", "IOB2": "BIO", "BIOES": "BIOES", "IOBES": "BIOES"}


def read_conll(path, scheme: str | None = None) -> list[tuple[list[str], list[str]]]:
    """The sentences of a CoNLL-style file: ``[(tokens, tags), …]``.

    One token per line, columns separated by white space: the first column is the token, the
    last the tag (columns between, such as CoNLL-2003's POS and chunk tags, are ignored). A blank
    line ends a sentence; ``-DOCSTART-`` lines are skipped.

    scheme: None leaves the tags unchecked (POS tags and the like); ``"auto"`` infers BIO or
    BIOES from the tags and checks them; ``"BIO"`` (``"IOB2"``) or ``"BIOES"`` (``"IOBES"``)
    checks them against that scheme. A tag that breaks it is a DataError naming ``file:line``.
    """
    path = Path(path)
    sentences, lines = [], []
    tokens, tags, where = [], [], []
    for lineno, line in enumerate(read_text_file(path).split("\n") + [""], 1):
        cols = line.split()
        if cols and cols[0] == "-DOCSTART-":
            continue
        if not cols:
            if tokens:
                sentences.append((tokens, tags))
                lines.append(where)
            tokens, tags, where = [], [], []
            continue
        if len(cols) < 2:
            raise DataError(f"{path}:{lineno}: one column ({line.strip()!r}); write each token as 'token TAG', "
                            "separated by a space or tab")
        tokens.append(cols[0])
        tags.append(cols[-1])
        where.append(lineno)
    if not sentences:
        raise DataError(f"{path}: has no sentences; write one 'token TAG' per line, a blank line between sentences")
    if scheme is not None:
        _check_scheme(sentences, scheme, lambda i, k: f"{path}:{lines[i][k]}")
    return sentences


def check_tag_scheme(sentences, scheme: str | None = None) -> str:
    """The tag scheme of ``[(tokens, tags), …]``: ``"BIO"`` or ``"BIOES"``.

    Tags are ``O`` or ``PREFIX-TYPE``. BIO (IOB2): every entity starts with ``B-TYPE``, and
    ``I-TYPE`` only continues an entity of the same type. BIOES (IOBES) adds ``E-TYPE``, which
    closes an entity of two or more tokens, and ``S-TYPE`` for a one-token entity; an entity
    opened by ``B-`` must be closed by ``E-``. With ``scheme=None`` the scheme is inferred (BIOES
    when any tag starts with ``E-`` or ``S-``, else BIO). An unknown scheme name, or a tag that
    breaks the scheme, is a DataError naming the first such sentence and token (1-based).
    """
    return _check_scheme(sentences, "auto" if scheme is None else scheme,
                         lambda i, k: f"sentence {i + 1}, token {k + 1}")


def _check_scheme(sentences, scheme: str, where) -> str:
    if scheme == "auto":
        ends = any(t[:2] in ("E-", "S-") for _, tags in sentences for t in tags)
        name = "BIOES" if ends else "BIO"
    elif isinstance(scheme, str) and scheme.upper() in SCHEMES:
        name = SCHEMES[scheme.upper()]
    else:
        raise DataError(f"scheme: expected one of {', '.join(SCHEMES)} (or 'auto'), got {scheme!r}")
    for i, (_, tags) in enumerate(sentences):
        bad = _first_violation(tags, name)
        if bad:
            k, why = bad
            raise DataError(f"{where(i, k)}: {why}; fix the tag or give the scheme the tags follow (BIO or BIOES)")
    return name


def _first_violation(tags: list[str], scheme: str):
    """(index, reason) of the first tag that breaks ``scheme``, or None."""
    prefixes = ("B", "I") if scheme == "BIO" else ("B", "I", "E", "S")
    open_type = None  # the type of the entity the next tag may (BIO) or must (BIOES) continue
    for k, tag in enumerate(tags):
        prefix, dash, kind = tag.partition("-")
        if tag != "O" and (not dash or not kind or prefix not in prefixes):
            expected = "O, B-TYPE or I-TYPE" if scheme == "BIO" else "O, B-TYPE, I-TYPE, E-TYPE or S-TYPE"
            return k, f"tag {tag!r} is not a {scheme} tag (expected {expected})"
        if prefix in ("I", "E") and open_type != kind:
            return k, f"tag {tag!r} does not continue a {kind} entity (it must follow B-{kind} or I-{kind})"
        if scheme == "BIOES" and open_type and prefix not in ("I", "E"):
            return k, f"tag {tag!r} comes inside a {open_type} entity; close it with E-{open_type} first"
        open_type = kind if prefix in ("B", "I") else None
    if scheme == "BIOES" and open_type:
        return len(tags) - 1, f"the sentence ends inside a {open_type} entity; close it with E-{open_type}"
    return None


# ---- numeric series ----------------------------------------------------------------------------


def read_series(path, allow_pickle: bool = False) -> tuple[list[np.ndarray], list]:
    """(series, labels) of a ``.csv``, ``.npz`` or ``.ts`` file: see ``read_series_csv``,
    ``read_series_npz`` and ``read_ts``. Each series is a (T_i, C) float32 array."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_series_csv(path)
    if suffix == ".npz":
        return read_series_npz(path, allow_pickle=allow_pickle)
    if suffix == ".ts":
        return read_ts(path)
    raise DataError(f"{path}: unknown series format {suffix or '(no suffix)'!r}; give a .csv, .npz or .ts file")


def read_series_csv(path) -> tuple[list[np.ndarray], list[str]]:
    """(series, labels) of a CSV file with one univariate series per line: ``label,v1,v2,…``.

    Lines may differ in length; each series is a (T_i, 1) float32 array, each label a str (a
    regression target is its text: ``float(label)``). Trailing empty fields, as spreadsheets
    write for short rows, are dropped. No header line. A value that is not a number, NaN or
    infinite, an empty label or a line without values is a DataError naming ``file:line``.
    """
    path = Path(path)
    series, labels = [], []
    for lineno, line in enumerate(read_text_file(path, line_limit=ROW_LIMIT).split("\n"), 1):
        if not line.strip():
            continue
        label, *fields = (f.strip() for f in line.split(","))
        while fields and not fields[-1]:
            fields.pop()
        if not label:
            raise DataError(f"{path}:{lineno}: empty label; write each series as label,v1,v2,…")
        if not fields:
            raise DataError(f"{path}:{lineno}: the series of label {label!r} is empty; give at least one value")
        values = _numbers(fields, lambda j: f"{path}:{lineno}, column {j + 2}",
                          "; the file has no header line" if not series else "")
        series.append(values[:, None])
        labels.append(label)
    if not series:
        raise DataError(f"{path}: has no series; write one label,v1,v2,… per line")
    return series, labels


def _numbers(fields: list[str], where, hint: str = "") -> np.ndarray:
    """``fields`` as float32; a field that is not a finite number, or beyond float32's range, is a
    DataError at ``where(j)``."""
    try:
        values = np.array(fields, dtype=np.float64)
    except ValueError:
        j = next((j for j, f in enumerate(fields) if not _is_number(f)), 0)
        raise DataError(f"{where(j)}: {fields[j]!r} is not a number{hint}") from None
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        j = int(bad[0])
        raise DataError(f"{where(j)}: {fields[j]!r} is not a finite number; fill in or drop missing values first")
    huge = np.flatnonzero(np.abs(values) > FLOAT32_MAX)
    if huge.size:
        j = int(huge[0])
        raise DataError(f"{where(j)}: {fields[j]!r} is {TOO_LARGE}")
    return values.astype(np.float32)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_series_npz(path, allow_pickle: bool = False) -> tuple[list[np.ndarray], list]:
    """(series, labels) of a NumPy ``.npz`` file with arrays ``X`` and ``y``.

    X: either a float array (N, T, C), with an optional integer array ``lengths`` (N,) giving
       each series' length (steps past it are padding and ignored), or an object array (N,) of
       (T_i, C) arrays. Object arrays are stored with pickle, which can run code from the file,
       so they load only with ``allow_pickle=True``: use it for files you trust.
    y: (N,) labels; returned as Python values (``y.tolist()``).

    Each series comes back as a (T_i, C) float32 array. A missing array, a wrong shape, an empty
    series, NaN or an infinite value is a DataError naming the series (and the step and channel).
    """
    path = Path(path)
    archive = io.BytesIO(read_regular(path, ARRAYS_LIMIT, "data file", DataError))
    if not zipfile.is_zipfile(archive):  # checked first: np.load would unpickle any other file
        raise DataError(f"{path}: is not a .npz archive; save the arrays with numpy.savez(path, X=X, y=y)")
    try:
        with zipfile.ZipFile(archive) as members:  # a zip member is never read past its stated size
            unpacked = sum(member.file_size for member in members.infolist())
        if unpacked > ARRAYS_LIMIT:
            raise DataError(f"{path}: its arrays unpack to {human_size(unpacked)}, more than the "
                            f"{human_size(ARRAYS_LIMIT)} a .npz file may hold")
        archive.seek(0)
        with np.load(archive, allow_pickle=allow_pickle) as npz:
            missing = [k for k in ("X", "y") if k not in npz.files]
            if missing:
                raise DataError(f"{path}: has no array {' or '.join(missing)} (found {', '.join(npz.files) or 'none'}); "
                                "save the series as X and the labels as y")
            X, y = npz["X"], npz["y"]
            lengths = npz["lengths"] if "lengths" in npz.files else None
    except ValueError as exc:
        if isinstance(exc, DataError):
            raise
        if "allow_pickle" in str(exc):
            raise DataError(f"{path}: holds an object array, which loads through pickle and can run code from the "
                            "file; pass allow_pickle=True if you trust it, or save X as (N, T, C) with lengths") from None
        raise DataError(f"{path}: cannot be read as .npz ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: cannot be read as .npz ({exc}); save it with numpy.savez") from None
    if y.ndim != 1:
        raise DataError(f"{path}: y: expected shape (N,), got {y.shape}")
    if X.dtype == object:
        if X.ndim != 1 or lengths is not None:
            raise DataError(f"{path}: X: an object array must have shape (N,) and no lengths, got {X.shape}")
        items = [np.asarray(x) for x in X]
    else:
        if X.ndim != 3:
            hint = " (for univariate series add a channel axis: X[..., None])" if X.ndim == 2 else ""
            raise DataError(f"{path}: X: expected shape (N, T, C), got {X.shape}{hint}")
        if lengths is None:
            items = list(X)
        else:
            if lengths.shape != (len(X),) or lengths.dtype.kind not in "iu":
                raise DataError(f"{path}: lengths: expected integers of shape ({len(X)},), got {lengths.dtype} {lengths.shape}")
            bad = np.flatnonzero((lengths < 1) | (lengths > X.shape[1]))
            if bad.size:
                i = int(bad[0])
                raise DataError(f"{path}: lengths[{i}] = {lengths[i]}; expected 1 to {X.shape[1]} (X's steps)")
            items = [x[:n] for x, n in zip(X, lengths)]
    if len(items) != len(y):
        raise DataError(f"{path}: X has {len(items)} series but y has {len(y)} labels; give one label per series")
    channels = items[0].shape[-1] if items and items[0].ndim == 2 else None
    series = []
    for i, x in enumerate(items):
        if x.ndim != 2 or x.shape[1] != channels:
            raise DataError(f"{path}: X[{i}]: expected shape (T, {channels}), got {x.shape}")
        if len(x) == 0:
            raise DataError(f"{path}: X[{i}] is an empty series; give it at least one step or drop it")
        if x.dtype.kind not in "iuf":
            raise DataError(f"{path}: X[{i}]: expected numbers, got dtype {x.dtype}")
        bad = np.argwhere(~np.isfinite(x))
        if len(bad):
            t, c = bad[0]
            raise DataError(f"{path}: X[{i}] has NaN or an infinite value at step {t}, channel {c}; "
                            "fill in or drop missing values first")
        huge = np.argwhere(np.abs(x) > FLOAT32_MAX)
        if len(huge):
            t, c = huge[0]
            raise DataError(f"{path}: X[{i}] at step {t}, channel {c}: {x[t, c]:g} is {TOO_LARGE}")
        series.append(x.astype(np.float32))
    return series, y.tolist()


# ---- the UCR/UEA .ts format --------------------------------------------------------------------


def read_ts(path) -> tuple[list[np.ndarray], list[str]]:
    """(series, labels) of a ``.ts`` file of the UCR/UEA time-series classification archive.

    Format: ``#`` comment lines; header lines starting with ``@`` (``@problemName``,
    ``@classLabel true A B …``, ``@dimensions C`` …); then ``@data`` and one case per line:
    channels separated by ``:``, values by ``,``, the class label last
    (``1.0,2.0,3.0:4.0,5.0,6.0:walking``). Each series is a (T_i, C) float32 array; labels are str.

    A ``?`` (missing value) is allowed only as trailing padding of a shorter series; elsewhere it
    is a DataError, as are time stamps, files without class labels, a label not declared by
    ``@classLabel``, channels of different lengths within a case, or a changing channel count.
    """
    path = Path(path)
    declared = None
    series, labels = [], []
    in_data = False
    for lineno, line in enumerate(read_text_file(path, line_limit=ROW_LIMIT).split("\n"), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if not line.startswith("@"):
                raise DataError(f"{path}:{lineno}: expected a header line (@…) or @data before the data")
            key, *rest = line.split()
            key, flag = key.lower(), rest[0].lower() if rest else ""
            if key == "@data":
                in_data = True
            elif key == "@timestamps" and flag == "true":
                raise DataError(f"{path}:{lineno}: time stamps are not supported; give the values without them")
            elif key == "@classlabel":
                if flag != "true":
                    raise DataError(f"{path}:{lineno}: the file has no class labels (@classLabel {' '.join(rest)}); "
                                    "this reader is for classification")
                declared = set(rest[1:]) or None
            elif key == "@targetlabel":
                raise DataError(f"{path}:{lineno}: regression .ts files (@targetLabel) are not supported; "
                                "use a CSV label,v1,v2,… instead")
            continue
        *channels, label = (part.strip() for part in line.split(":"))
        if not channels:
            raise DataError(f"{path}:{lineno}: no ':' before the label; a case is values:values:…:label")
        if not label:
            raise DataError(f"{path}:{lineno}: no class label after the last ':'")
        if declared is not None and label not in declared:
            raise DataError(f"{path}:{lineno}: label {label!r} is not one of @classLabel's {sorted(declared)}")
        if series and len(channels) != series[0].shape[1]:
            raise DataError(f"{path}:{lineno}: {len(channels)} channels, but the first case has {series[0].shape[1]}")
        columns = []
        for c, text in enumerate(channels):
            fields = [f.strip() for f in text.split(",")]
            while fields and fields[-1] == "?":  # padding of a series shorter than the longest
                fields.pop()
            if "?" in fields:
                t = fields.index("?")
                raise DataError(f"{path}:{lineno}: missing value '?' at channel {c}, step {t}; only trailing "
                                "padding may be missing: fill in or drop missing values first")
            if not fields or fields == [""]:
                raise DataError(f"{path}:{lineno}: channel {c} is an empty series")
            columns.append(_numbers(fields, lambda t, c=c: f"{path}:{lineno}, channel {c}, step {t}"))
        steps = {len(col) for col in columns}
        if len(steps) > 1:
            raise DataError(f"{path}:{lineno}: channels of different lengths {[len(col) for col in columns]}; "
                            "every channel of a case needs the same number of steps")
        series.append(np.stack(columns, axis=1))
        labels.append(label)
    if not series:
        raise DataError(f"{path}: has no cases; the data follow a line @data")
    return series, labels


__all__ = ["SCHEMES", "check_tag_scheme", "read_conll", "read_labelled_text", "read_series", "read_series_csv",
           "read_series_npz", "read_ts"]
