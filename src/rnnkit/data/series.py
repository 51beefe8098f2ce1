"""Time series for forecasting and anomaly detection: users' CSV tables and real series.

    s = read_series_table("sales.csv", time="date", target="units", missing="interpolate")
    s.values                                  # (N, C) float64; s.mask (N, C) True where observed
    check_series(s, window=48, horizon=12)    # at least 60 points, no constant column
    s = co2_series()                          # weekly, m = 52   `rnnkit data install forecasting`
    s = sunspots_series()                     # yearly, m = 1
    s = elnino_series()                       # monthly, m = 12
    s = taylor_series()                       # half-hourly, m = 48 and 336   `rnnkit data install taylor`
    s = seattle_temps_series()                # hourly, m = 24         `rnnkit data install seattle-temps`
    a = ucr_anomaly_series()                  # a.train, a.test, a.labels, a.ranges
                                              #                   `rnnkit data install ucr-anomaly`
    a = tsb_uad_series("mitdb")               # or "yahoo"        `rnnkit data install tsb-uad`

Tables are read with the standard library's ``csv`` module. Every problem is a DataError naming
``file:line`` (the line in the file; the header is line 1) where a line applies.
"""

from __future__ import annotations

import csv
import io
import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from . import catalog
from .corpora import read_text_file
from .errors import DataError
from .labelled import FLOAT32_MAX, TOO_LARGE

MISSING = ("error", "interpolate", "mask")
MISSING_CELLS = ("", "na", "nan")  # compared without regard to case
#: what ``read_series_table`` reads, for the help of the options that take such a file
TABLE_FORMATS = ("a CSV file with a header row, a time column (numbers or ISO dates, increasing) and value columns; "
                 "or a CSV file of one column of values, with or without a header (the row number is the time)")


@dataclass
class Series:
    """One time series of N points and C columns.

    time:    N times, increasing: ``datetime`` objects, or numbers (int or float).
    values:  (N, C) float64; NaN where a value is missing and was not filled in.
    columns: C column names; the first ``len(target)`` are the ones to forecast, the rest inputs.
    mask:    (N, C) bool, True where the value was observed (False where it was missing, even
             when it has since been interpolated).
    source:  where the series comes from, for people (a path, or a data set's description).
    target:  the names of the columns to forecast (default: all columns).
    season:  the seasonal period m in points (52 weekly, 12 monthly, 1 none), when known: the
             seasonal-naive baseline's and MASE's.
    seasons: every seasonal period the series has, when it has several (48 and 336 for
             half-hourly data with daily and weekly cycles); ``season`` is the longest.
    """

    time: list
    values: np.ndarray
    columns: list[str]
    mask: np.ndarray
    source: str
    target: list[str] | None = None
    season: int | None = None
    seasons: tuple[int, ...] | None = None

    def __post_init__(self):
        if self.target is None:
            self.target = list(self.columns)

    def __len__(self) -> int:
        return len(self.values)


# ---- users' tables -----------------------------------------------------------------------------


def read_series_table(path, time: str | None = None, target: str | list[str] | None = None,
                      columns: str | list[str] | None = None, missing: str = "error",
                      labels: str | None = None) -> Series:
    """The series of a CSV file with a header row, a time column and value columns; or of a
    CSV file of one column of values, with or without a header (``value``, or ``-0.21``), whose
    times are the row indices 0, 1, 2, …

    time:    the time column's name (default: the first column, unless the table is one column
             of values). Its values are numbers (years,
             indices: ``1700``, ``3.5``) or ISO dates and datetimes (``2020-01-31``,
             ``2020-01-31T12:00``, read with ``datetime.fromisoformat``); a value that is a number
             is read as one, so ``20200131`` is a number, not a date. Times must strictly increase.
             A table of one column of values has no time column: without a header its column is
             named ``value``; a blank line between its values is a missing value, not skipped
             (it would shift every later time).
    target:  the column to forecast, or a list of them (multivariate); default: every column
             but the time.
    columns: further columns read as inputs only (covariates), after the target in ``values``.
    labels:  a column of labels read as a value column (``detect``'s ``--labels``) that does not
             count as one when telling a table of values from one with a time column:
             ``value,is_anomaly`` is one column of values and its labels; nor is it checked
             for equal values (a stretch without anomalies is labelled 0 throughout).
    missing: what to do with missing values (empty cells, ``NA``, ``nan``):
             ``"error"``        a DataError naming the first one's line and column;
             ``"interpolate"``  linear in the row index, leading and trailing gaps take the
                                nearest observed value;
             ``"mask"``         keep NaN; ``mask`` says which values were observed.

    Returns a Series (see its docstring) checked by ``check_series`` (at least 2 points, no
    column whose values are all equal). Non-numeric values, a time that does not increase, a
    row with the wrong number of fields or an unknown column name is a DataError naming
    ``file:line``.
    """
    series = _read_table(path, time, target, columns, missing, labels)
    kept = [c for c, name in enumerate(series.columns) if name != labels]  # labels may all be 0: a calm stretch
    check_series(Series(series.time, series.values[:, kept], [series.columns[c] for c in kept], series.mask[:, kept],
                        series.source))
    return series


def check_series(series: Series, min_length: int | None = None, *, window: int | None = None,
                 horizon: int | None = None) -> None:
    """Check that ``series`` can be learnt from, else raise a DataError: at least ``min_length``
    points, and no column whose observed values are all equal (nothing to learn, and scaling it
    would divide by zero).

    min_length: default ``window + horizon`` when both are given, else 2. ``window`` and
    ``horizon`` only make the message say why so many points are needed.
    """
    why = f" for a window of {window} and a horizon of {horizon}" if window is not None and horizon is not None else ""
    if min_length is None:
        min_length = window + horizon if why else 2
    n = len(series.values)
    if n < max(min_length, 2):
        raise DataError(f"{series.source}: needs at least {max(min_length, 2)} points{why}, got {n}; "
                        "give a longer series" + (" or a shorter window or horizon" if why else ""))
    for c, name in enumerate(series.columns):
        observed = series.values[series.mask[:, c], c]
        if observed.size and np.all(observed == observed[0]):
            raise DataError(f"{series.source}: column {name!r}: all values equal {observed[0]:g}: nothing to learn "
                            "or scale; drop the column")


def _read_table(path, time, target, columns, missing, labels=None) -> Series:
    """``read_series_table`` without ``check_series``."""
    path = Path(path)
    if missing not in MISSING:
        raise DataError(f"missing: expected one of {', '.join(map(repr, MISSING))}, got {missing!r}")
    reader = csv.reader(io.StringIO(read_text_file(path)))
    try:
        header = next((row for row in reader if any(f.strip() for f in row)), None)
        if header is None:
            raise DataError(f"{path}: has no header row; the first line names the columns (time,value), "
                            "or give one column of values")
        header, top = [name.strip() for name in header], f"{path}:{reader.line_num}"
        first = []  # the first data row, when the file has no header
        if all(_number(name) is not None for name in header):
            if len(header) > 1 or time is not None:
                raise DataError(f"{top}: looks like data, not a header; add a first line naming the columns "
                                "(time,value), or give one column of values only")
            first, header = [(header, reader.line_num)], ["value"]
        for name in header:
            if header.count(name) > 1:
                raise DataError(f"{top}: column {name!r} appears twice; give every column its own name")
        # one column of values (and maybe its labels): the row index is the time
        by_index = time is None and len([n for n in header if n != labels]) == 1
        time = None if by_index else header[0] if time is None else time
        target = [target] if isinstance(target, str) else list(target or [n for n in header if n != time])
        inputs = [columns] if isinstance(columns, str) else list(columns or [])
        names = target + [n for n in inputs if n not in target]
        for name in ([] if by_index else [time]) + names:
            if name not in header:
                raise DataError(f"{top}: no column {name!r}; the columns are {', '.join(header)}")
        if time in names:
            raise DataError(f"{top}: column {time!r} is the time; it cannot also be a value column")
        if not names:
            raise DataError(f"{top}: only a time column; add a column of values")
        t_col, v_cols = (None if by_index else header.index(time)), [header.index(n) for n in names]

        times, texts, rows, lines = [], [], [], []
        blank = []  # blank lines since the last row: missing values in a table of values
        for fields, line in itertools.chain(first, ((f, reader.line_num) for f in reader)):
            where = f"{path}:{line}"
            if not any(f.strip() for f in fields):
                blank.append(line)
                continue
            if len(fields) != len(header):
                raise DataError(f"{where}: {len(fields)} fields, but the header has {len(header)}; "
                                "give every row one value per column (quote values that hold commas)")
            for line_ in (blank if by_index and rows else []) + [line]:
                data = fields if line_ == line else [""] * len(header)
                texts.append(str(len(times)) if by_index else data[t_col].strip())
                times.append(len(times) if by_index else _time(texts[-1], where, time))
                rows.append([_value(data[j].strip(), f"{path}:{line_}", header[j]) for j in v_cols])
                lines.append(line_)
            blank = []
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: not valid CSV ({exc})") from None
    _check_increasing(times, texts, lines, path)

    values = np.array(rows, dtype=np.float64).reshape(len(rows), len(names))
    mask = ~np.isnan(values)
    if missing == "error" and not mask.all():
        i, c = np.argwhere(~mask)[0]
        raise DataError(f"{path}:{lines[i]}: column {names[c]!r} has no value; fill it in, or read the table with "
                        "missing='interpolate' or missing='mask'")
    empty = [n for n, seen in zip(names, mask.any(axis=0)) if not seen]
    if len(values) and empty:
        raise DataError(f"{path}: column {empty[0]!r} has no values at all; drop it or fill it in")
    if missing == "interpolate":
        values = fill_gaps(values)
    return Series(times, values, names, mask, str(path), target=target)


def fill_gaps(values: np.ndarray) -> np.ndarray:
    """(N, C) values with NaN where missing → a copy with each gap linearly interpolated in the
    row index; before the first and after the last observed value, that value is held."""
    out = values.copy()
    index = np.arange(len(values))
    for c in range(values.shape[1]):
        seen = ~np.isnan(values[:, c])
        out[:, c] = np.interp(index, index[seen], values[seen, c])
    return out


def _number(text: str):
    """``text`` as an int or float, or None when it is not a number."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


def _time(text: str, where: str, name: str):
    if text.lower() in MISSING_CELLS:
        raise DataError(f"{where}: no time in column {name!r}; every row needs one")
    number = _number(text)
    if number is not None:
        if not np.isfinite(number):
            raise DataError(f"{where}: time {text!r} in column {name!r} is not a finite number")
        return number
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise DataError(f"{where}: time {text!r} in column {name!r} is neither a number nor an ISO date or datetime "
                        "(2020-01-31, 2020-01-31T12:00)") from None


def _value(text: str, where: str, name: str) -> float:
    if text.lower() in MISSING_CELLS:
        return np.nan
    number = _number(text)
    if number is None:
        raise DataError(f"{where}: column {name!r}: {text!r} is not a number; write numbers with a '.' for "
                        "decimals, and a missing value as an empty cell, NA or nan")
    if not np.isfinite(number):
        raise DataError(f"{where}: column {name!r}: {text!r} is not a finite number")
    if abs(number) > FLOAT32_MAX:
        raise DataError(f"{where}: column {name!r}: {text!r} is {TOO_LARGE}")
    return float(number)


def _check_increasing(times: list, texts: list[str], lines: list[int], path: Path) -> None:
    for i in range(1, len(times)):
        where, before = f"{path}:{lines[i]}", f"line {lines[i - 1]}'s {texts[i - 1]!r}"
        if isinstance(times[i], datetime) != isinstance(times[i - 1], datetime):
            raise DataError(f"{where}: time {texts[i]!r} and {before} mix numbers and dates; give every time the same way")
        try:
            later = times[i] > times[i - 1]
        except TypeError:  # a datetime with a time zone next to one without
            raise DataError(f"{where}: time {texts[i]!r} and {before} mix times with and without a time zone; "
                            "give every time the same way") from None
        if not later:
            what = "repeats" if times[i] == times[i - 1] else "comes before"
            raise DataError(f"{where}: time {texts[i]!r} {what} {before}; times must strictly increase: "
                            "sort the rows by time and drop duplicates")


# ---- real series: forecasting (statsmodels 0.15.0) -----------------------------------------------

CO2_FILE = "datasets/co2/co2.csv"
SUNSPOTS_FILE = "datasets/sunspots/sunspots.csv"
ELNINO_FILE = "datasets/elnino/elnino.csv"


def _installed_table(name: str, relative: str, time=None, target=None, missing="error") -> Series:
    """A table of installed data set ``name``; a parse error says how to reinstall it."""
    root = catalog.locate(name)
    try:
        return _read_table(root / relative, time, target, None, missing)
    except DataError as exc:
        raise _damaged(name, exc) from None


def _damaged(name: str, what) -> DataError:
    hint = catalog._repair_hint(catalog.get(name), catalog.locate(name))
    return DataError(f"{what}; the installed data set {name!r} looks damaged: {hint}")


def co2_series() -> Series:
    """Weekly atmospheric CO2 at Mauna Loa in ppmv (Keeling & Whorf, Scripps), from the week of
    1958-03-29 to that of 2001-12-29: 2,284 weeks, every one a Saturday, seven days apart.

    The file holds ``date,co2`` with dates written ``YYYYMMDD``. 59 weeks have no value (22 gaps,
    the longest 18 weeks, none at either end); the loader fills them by linear interpolation,
    and ``mask`` (2,284, 1) marks the 2,225 observed weeks. season = 52 (a year is 52.18 weeks).
    """
    s = _installed_table("forecasting", CO2_FILE, missing="interpolate")
    s.time = [datetime.strptime(str(t), "%Y%m%d") for t in s.time]
    s.source = ("co2: weekly atmospheric CO2 (ppmv) at Mauna Loa, 1958-2001, Keeling & Whorf (Scripps) via "
                f"statsmodels 0.15.0; {int((~s.mask).sum())} missing weeks filled by linear interpolation")
    s.season = 52
    return s


def sunspots_series() -> Series:
    """Yearly sunspot numbers 1700-2008 (NOAA National Geophysical Data Center): 309 years, column
    ``SUNACTIVITY`` (0 to 190.2; three years are 0), times the years as ints. season = 1: the
    solar cycle of about 11 years is not a fixed period.
    """
    s = _installed_table("forecasting", SUNSPOTS_FILE, time="YEAR")
    s.source = "sunspots: yearly sunspot numbers 1700-2008, NOAA NGDC via statsmodels 0.15.0"
    s.season = 1
    return s


def elnino_series() -> Series:
    """Monthly sea-surface temperature in degrees Celsius of the Nino 1+2 region of the Pacific
    (0-10 degrees S, 90-80 degrees W; NOAA ERSST.V3B), January 1950 to December 2010: 732 months.

    The file is wide: one row per year, ``YEAR,JAN,…,DEC``; it is read as 61 x 12 and reshaped
    year by year into one column ``TEMPERATURE`` in time order; times are the first day of each
    month. season = 12.
    """
    wide = _installed_table("forecasting", ELNINO_FILE, time="YEAR")
    time = [datetime(year, month, 1) for year in wide.time for month in range(1, 13)]
    values = wide.values.reshape(-1, 1)  # row-major: year by year, January to December
    return Series(time, values, ["TEMPERATURE"], np.ones(values.shape, bool),
                  "elnino: monthly Nino 1+2 sea-surface temperature (C) 1950-2010, NOAA ERSST.V3B via statsmodels "
                  "0.15.0", season=12)


# ---- real series with long seasons (pmdarima 2.1.1, vega_datasets 0.9.0) ----------------------

TAYLOR_FILE = "datasets/taylor.py"
SEATTLE_FILE = "_data/seattle-temps.csv"
TAYLOR_POINTS = 4032


def taylor_series() -> Series:
    """Half-hourly electricity demand in England and Wales in megawatts, Monday 5 June 2000 00:00
    to Sunday 27 August 2000 23:30 (Taylor 2003; R's ``forecast::taylor``): 4,032 half-hours,
    12 weeks. pmdarima 2.1.1 keeps the values as a literal ``np.array([...])`` in the source of
    ``datasets/taylor.py``; the numbers are read from its text, the module is never imported.
    Times are the half-hours from 2000-06-05T00:00. seasons = (48, 336): a day and a week.
    """
    path = catalog.locate("taylor") / TAYLOR_FILE
    text = read_text_file(path)
    start = text.find("np.array([")
    end = text.find("])", start)
    try:
        values = np.array([float(v) for v in text[start + len("np.array([") : end].replace("\n", " ").split(",")
                           if v.strip()]) if start >= 0 and end > start else np.zeros(0)
    except ValueError:
        values = np.zeros(0)
    if values.shape != (TAYLOR_POINTS,):
        raise _damaged("taylor", f"{path}: expected {TAYLOR_POINTS:,} numbers in its np.array([...]) literal, "
                                 f"read {len(values):,}")
    time = [datetime(2000, 6, 5) + timedelta(minutes=30 * i) for i in range(TAYLOR_POINTS)]
    return Series(time, values[:, None], ["demand"], np.ones((TAYLOR_POINTS, 1), bool),
                  "taylor: half-hourly electricity demand (MW), England and Wales, 5 June - 27 August 2000, "
                  "Taylor (2003) via pmdarima 2.1.1", season=336, seasons=(48, 336))


def seattle_temps_series() -> Series:
    """Hourly temperature in Seattle (degrees F) through 2010, from the Vega data sets
    (vega_datasets 0.9.0, ``_data/seattle-temps.csv``: ``date,temp`` with dates written
    ``2010/01/01 00:00``): 8,759 hours, local time (the hour skipped by daylight saving on
    14 March is absent, so one step there is two hours). season = 24.
    """
    path = catalog.locate("seattle-temps") / SEATTLE_FILE
    rows = list(csv.reader(io.StringIO(read_text_file(path))))
    try:  # the dates are not ISO (slashes), so the table reader would refuse them
        if rows[0] != ["date", "temp"]:
            raise ValueError(f"header {rows[0]}, expected ['date', 'temp']")
        time = [datetime.strptime(date, "%Y/%m/%d %H:%M") for date, _ in rows[1:]]
        values = np.array([[float(temp)] for _, temp in rows[1:]])
    except (ValueError, IndexError) as exc:
        raise _damaged("seattle-temps", f"{path}: {exc}") from None
    series = Series(time, values, ["temp"], np.ones(values.shape, bool),
                    "seattle-temps: hourly temperature (F) in Seattle, 2010, via vega_datasets 0.9.0", season=24)
    check_series(series)
    return series


# ---- real series: anomaly detection (aeon 1.6.0) -----------------------------------------------

UCR_ANOMALY_FILE = "datasets/data/KDD-TSAD_135/135_UCR_Anomaly_InternalBleeding16_{}.csv"


@dataclass
class AnomalySeries:
    """A series with labelled anomalies.

    train:  the normal part to learn from, (N_train, C) values.
    test:   the series to score, (N_test, C); it may begin with the training part.
    labels: (N_test,) int8, 1 at anomalous points of ``test``, else 0.
    ranges: the anomalies as ``(start, end)`` index pairs into ``test``, end exclusive
            (``labels[start:end]`` is all 1).
    """

    train: Series
    test: Series
    labels: np.ndarray
    ranges: list[tuple[int, int]]
    source: str


def anomaly_ranges(labels) -> list[tuple[int, int]]:
    """The runs of 1 in 0/1 ``labels`` (N,) as ``(start, end)`` pairs, end exclusive."""
    edges = np.diff(np.concatenate([[0], np.asarray(labels) != 0, [0]]).astype(np.int8))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def ucr_anomaly_series() -> AnomalySeries:
    """Series 135 of the UCR time-series anomaly archive (Keogh et al., KDD Cup 2021): the heart
    rate of a patient with internal bleeding (``InternalBleeding16``), as shipped in aeon 1.6.0.

    aeon stores it in TimeEval's CSV format, ``timestamp,value,is_anomaly``: the labels are the
    ``is_anomaly`` column (the archive's original name, ``…_1200_4187_4199.txt``, carried the
    training end and the anomaly in the file name; aeon's names do not). The TRAIN file holds
    the first 1,200 points, all normal; the TEST file holds the whole recording, 7,501 points,
    whose first 1,200 repeat TRAIN exactly. One anomaly: points 4187-4198, ``ranges ==
    [(4187, 4199)]`` (12 points). Timestamps are the indices 0…N-1. train: (1200, 1),
    test: (7501, 1), labels: (7501,).
    """
    train, train_labels = _ucr_anomaly_part("TRAIN")
    test, labels = _ucr_anomaly_part("TEST")
    if train_labels.any():
        raise _damaged("ucr-anomaly", f"{train.source}: the training part has anomalies")
    source = ("ucr-anomaly: UCR anomaly archive 135 InternalBleeding16 (heart rate), KDD Cup 2021, via aeon 1.6.0; "
              f"test repeats the {len(train):,} training points at its start")
    return AnomalySeries(train, test, labels, anomaly_ranges(labels), source)


def _ucr_anomaly_part(split: str) -> tuple[Series, np.ndarray]:
    table = _installed_table("ucr-anomaly", UCR_ANOMALY_FILE.format(split), time="timestamp",
                             target=["value", "is_anomaly"])
    values, labels = table.values[:, :1], table.values[:, 1]
    if not np.isin(labels, (0, 1)).all():
        raise _damaged("ucr-anomaly", f"{table.source}: is_anomaly holds values other than 0 and 1")
    series = Series(table.time, values, ["value"], table.mask[:, :1], table.source)
    check_series(series)
    return series, labels.astype(np.int8)


TSB_UAD_FILES = {"mitdb": "datasets/data/mitdb/mitdb.csv", "yahoo": "datasets/data/yahoo/yahoo.csv"}
TSB_UAD_ABOUT = {"mitdb": "MIT-BIH Arrhythmia Database ECG (Moody & Mark 1992)",
                 "yahoo": "Yahoo Webscope S5 (Laptev et al. 2015)"}
#: the share of a TSB-UAD series that is its normal training part: a round number fixed before any
#: score was looked at (TSB-UAD defines no training part); the loader checks it holds no anomaly
TSB_UAD_TRAIN_FRACTION = 0.3


def tsb_uad_series(name: str) -> AnomalySeries:
    """One of the two labelled series of the TSB-UAD benchmark (Paparrizos et al., VLDB 2022)
    that sktime 1.2.0 ships, each a CSV ``data,label`` (read as values with a labels column):

    mitdb: 7,500 points of an ECG from the MIT-BIH Arrhythmia Database, one labelled segment,
           points 6936-7287 (``ranges == [(6936, 7288)]``, 352 points);
    yahoo: 1,000 points of a Yahoo S5 series, 7 anomalies of one point each (431 to 846).

    The series has no training part of its own: ``train`` is its first 30%
    (``TSB_UAD_TRAIN_FRACTION``; mitdb 2,250 points, yahoo 300), and ``test`` is the whole series,
    so it repeats ``train`` at its start, as UCR's test files do. train: (0.3 N, 1), test: (N, 1),
    labels: (N,).
    """
    if name not in TSB_UAD_FILES:
        raise DataError(f"tsb-uad: expected one of {', '.join(TSB_UAD_FILES)}, got {name!r}")
    try:
        table = read_series_table(catalog.locate("tsb-uad") / TSB_UAD_FILES[name], target=["data", "label"],
                                  labels="label")
    except DataError as exc:
        raise _damaged("tsb-uad", exc) from None
    values, labels = table.values[:, :1], table.values[:, 1]
    if not np.isin(labels, (0, 1)).all():
        raise _damaged("tsb-uad", f"{table.source}: label holds values other than 0 and 1")
    n_train = int(round(len(values) * TSB_UAD_TRAIN_FRACTION))
    if labels[:n_train].any():
        raise _damaged("tsb-uad", f"{table.source}: the first {n_train} points, the training part, have anomalies")
    test = Series(table.time, values, ["value"], table.mask[:, :1], table.source)
    train = Series(table.time[:n_train], values[:n_train], ["value"], table.mask[:n_train, :1], table.source)
    labels = labels.astype(np.int8)
    source = (f"{name}: {TSB_UAD_ABOUT[name]}, from TSB-UAD via sktime 1.2.0; trained on its first {n_train:,} points "
              f"({TSB_UAD_TRAIN_FRACTION:.0%}), which the test series repeats at its start")
    return AnomalySeries(train, test, labels, anomaly_ranges(labels), source)


#: the built-in series with labelled anomalies, by name (``detect --data NAME``)
ANOMALY_SERIES = {"ucr-anomaly": ucr_anomaly_series, "mitdb": lambda: tsb_uad_series("mitdb"),
                  "yahoo": lambda: tsb_uad_series("yahoo")}


__all__ = ["ANOMALY_SERIES", "MISSING", "TABLE_FORMATS", "AnomalySeries", "Series", "anomaly_ranges", "check_series", "co2_series",
           "elnino_series", "fill_gaps", "read_series_table", "seattle_temps_series", "sunspots_series", "taylor_series",
           "tsb_uad_series", "ucr_anomaly_series"]
