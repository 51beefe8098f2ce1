"""Time series: users' CSV tables on tiny files, the real loaders on fake installed trees, and the
counts of the installed sets."""

import sys
from datetime import datetime

import numpy as np
import pytest

from rnnkit.data import (
    DataError,
    anomaly_ranges,
    catalog,
    check_series,
    co2_series,
    elnino_series,
    read_series_table,
    sunspots_series,
    ucr_anomaly_series,
)
from rnnkit.data.series import (ANOMALY_SERIES, CO2_FILE, ELNINO_FILE, SEATTLE_FILE, SUNSPOTS_FILE, TAYLOR_FILE,
                                TSB_UAD_FILES, UCR_ANOMALY_FILE, seattle_temps_series, taylor_series, tsb_uad_series)


@pytest.fixture
def table(tmp_path):
    """Write ``text`` to tmp_path/s.csv and return its path."""
    def write(text: str, name: str = "s.csv"):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path
    return write


def installed(name: str) -> bool:
    try:
        catalog.locate(name)
    except DataError:
        return False
    return True


def needs(name: str):
    return pytest.mark.skipif(not installed(name), reason=f"not installed: rnnkit data install {name}")


# ---- reading tables ----------------------------------------------------------------------------
def test_iso_dates_in_the_first_column_and_one_value_column(table):
    path = table("date,units\n2020-01-01,3\n2020-01-02,4.5\n2020-01-03T12:00,5\n")
    s = read_series_table(path)
    assert s.time == [datetime(2020, 1, 1), datetime(2020, 1, 2), datetime(2020, 1, 3, 12)]
    assert s.values.dtype == np.float64 and s.values.shape == (3, 1)
    np.testing.assert_array_equal(s.values[:, 0], [3, 4.5, 5])
    assert s.columns == s.target == ["units"] and s.mask.all() and s.source == str(path) and s.season is None


def test_numeric_time_column_keeps_ints(table):
    s = read_series_table(table("year,spots\n1700,5\n1701,11\n1702,16\n"))
    assert s.time == [1700, 1701, 1702] and all(type(t) is int for t in s.time)
    s = read_series_table(table("t,x\n0.5,1\n1,2\n2.25,3\n"))
    assert s.time == [0.5, 1, 2.25]


def test_multivariate_targets_come_before_input_columns(table):
    path = table("a,date,b,c,d\n1,2021-03-01,10,100,7\n2,2021-03-02,20,200,9\n3,2021-03-03,30,300,8\n")
    s = read_series_table(path, time="date", target=["c", "a"], columns=["d", "a"])
    assert s.columns == ["c", "a", "d"] and s.target == ["c", "a"]
    np.testing.assert_array_equal(s.values, [[100, 1, 7], [200, 2, 9], [300, 3, 8]])
    assert read_series_table(path, time="date").columns == ["a", "b", "c", "d"]  # default: all but the time


def test_non_numeric_value_names_line_column_and_value(table):
    path = table("t,x,y\n1,1,2\n2,3,abc\n")
    with pytest.raises(DataError, match=rf"^{path}:3: column 'y': 'abc' is not a number; "):
        read_series_table(path)


def test_non_monotonic_time_names_both_values(table):
    path = table("date,y\n2020-01-01,1\n2020-01-03,2\n2020-01-02,3\n")
    with pytest.raises(DataError, match=rf"^{path}:4: time '2020-01-02' comes before line 3's '2020-01-03'; "
                                        r"times must strictly increase"):
        read_series_table(path)


def test_repeated_time_names_both_lines(table):
    path = table("year,y\n1990,1\n\n1991,2\n1991,3\n")  # a blank line does not shift the line numbers
    with pytest.raises(DataError, match=rf"^{path}:5: time '1991' repeats line 4's '1991'"):
        read_series_table(path)


def test_times_must_be_numbers_or_iso_dates_not_both(table):
    with pytest.raises(DataError, match=r"s.csv:3: time '2020-01-02' and line 2's '1' mix numbers and dates"):
        read_series_table(table("t,y\n1,1\n2020-01-02,2\n"))
    with pytest.raises(DataError, match=r"s.csv:2: time '31/01/2020' in column 't' is neither a number nor an ISO date"):
        read_series_table(table("t,y\n31/01/2020,1\n01/02/2020,2\n"))
    with pytest.raises(DataError, match=r"s.csv:3: no time in column 't'"):
        read_series_table(table("t,y\n1,1\n,2\n"))


@pytest.mark.parametrize("rows, got", [("", 0), ("1,5\n", 1)])
def test_too_few_rows(table, rows, got):
    path = table("t,y\n" + rows)
    with pytest.raises(DataError, match=rf"^{path}: needs at least 2 points, got {got}; give a longer series$"):
        read_series_table(path)


def test_all_constant_column_is_named(table):
    path = table("t,a,b\n1,1,3\n2,2,3.0\n3,4,3\n")
    with pytest.raises(DataError, match=rf"^{path}: column 'b': all values equal 3: nothing to learn or scale"):
        read_series_table(path)


def test_missing_error_names_the_first_missing_line_and_column(table):
    path = table("t,a,b\n1,1,2\n2,3,NA\n3,,4\n4,5,6\n")
    with pytest.raises(DataError, match=rf"^{path}:3: column 'b' has no value; .*missing='interpolate'"):
        read_series_table(path)


def test_missing_interpolate_is_linear_and_holds_the_ends(table):
    s = read_series_table(table("t,a,b\n1,,1\n2,2,nan\n3,NA,NaN\n4,4,7\n5,,8\n"), missing="interpolate")
    np.testing.assert_allclose(s.values, [[2, 1], [2, 3], [3, 5], [4, 7], [4, 8]])
    np.testing.assert_array_equal(s.mask, [[0, 1], [1, 0], [0, 0], [1, 1], [0, 1]])


def test_missing_mask_keeps_nan(table):
    s = read_series_table(table("t,a\n1,1\n2,\n3,3\n"), missing="mask")
    np.testing.assert_array_equal(np.isnan(s.values[:, 0]), [False, True, False])
    np.testing.assert_array_equal(s.mask[:, 0], [True, False, True])


@pytest.mark.parametrize("missing", ["interpolate", "mask"])
def test_a_column_without_values_is_an_error(table, missing):
    with pytest.raises(DataError, match=r"column 'b' has no values at all"):
        read_series_table(table("t,a,b\n1,1,\n2,2,NA\n"), missing=missing)


def test_a_value_beyond_float32_names_line_and_column(table):
    # 1e300 is a float64, but its square (the standard deviation) and float32 models overflow to inf
    path = table("t,v\n1,2\n2,1e300\n3,4\n")
    with pytest.raises(DataError, match=r"s.csv:3: column 'v': '1e300' is beyond the range of the 32-bit floats"):
        read_series_table(path)


@pytest.mark.parametrize("header", ["", "level\n"])
def test_one_column_of_values_is_timed_by_its_row_index(table, header):
    # values that decrease, and the first one negative: read as times they were refused ("comes before")
    values = np.round(np.random.default_rng(5).normal(size=30), 3)
    values[0] = -0.21
    s = read_series_table(table(header + "\n".join(map(str, values)) + "\n"))
    assert s.time == list(range(30)) and s.columns == [header.strip() or "value"]
    np.testing.assert_array_equal(s.values[:, 0], values)


def test_one_column_of_values_with_its_labels_column(table):
    s = read_series_table(table("v,is_anomaly\n0.5,0\n-0.21,1\n0.3,0\n"), labels="is_anomaly")
    assert s.time == [0, 1, 2] and s.columns == ["v", "is_anomaly"]
    np.testing.assert_array_equal(s.values, [[0.5, 0], [-0.21, 1], [0.3, 0]])
    # without naming it as labels, the first column is still the time, and must still increase
    with pytest.raises(DataError, match=r"s.csv:3: time '-0.21' comes before line 2's '0.5'"):
        read_series_table(table("v,is_anomaly\n0.5,0\n-0.21,1\n0.3,0\n"))


def test_a_blank_line_among_values_is_a_missing_value_not_skipped(table):
    path = table("1.5\n2.5\n\n4.5\n\n\n")  # the trailing blank lines end the file
    with pytest.raises(DataError, match=rf"^{path}:3: column 'value' has no value"):
        read_series_table(path)
    s = read_series_table(path, missing="interpolate")
    assert s.time == [0, 1, 2, 3]
    np.testing.assert_array_equal(s.values[:, 0], [1.5, 2.5, 3.5, 4.5])
    np.testing.assert_array_equal(s.mask[:, 0], [True, True, False, True])


def test_a_table_with_a_time_column_keeps_its_checks(table):
    with pytest.raises(DataError, match=r"s.csv:1: only a time column; add a column of values"):
        read_series_table(table("t\n1\n2\n"), time="t")
    with pytest.raises(DataError, match=r"s.csv:1: looks like data, not a header"):
        read_series_table(table("1\n2\n3\n"), time="t")  # a named time column needs a header
    with pytest.raises(DataError, match=r"s.csv:4: time '2' repeats line 3's '2'"):
        read_series_table(table("t,y\n1,1\n2,2\n2,3\n"))
    with pytest.raises(DataError, match=r"s.csv:2: column 'value': 'x' is not a number"):
        read_series_table(table("1\nx\n3\n"))


def test_table_shape_errors(table):
    with pytest.raises(DataError, match=r"missing: expected one of 'error', 'interpolate', 'mask', got 'drop'"):
        read_series_table(table("t,y\n1,1\n2,2\n"), missing="drop")
    with pytest.raises(DataError, match=r"s.csv:1: no column 'sales'; the columns are t, y"):
        read_series_table(table("t,y\n1,1\n2,2\n"), target="sales")
    with pytest.raises(DataError, match=r"s.csv:3: 3 fields, but the header has 2"):
        read_series_table(table("t,y\n1,1\n2,2,3\n"))
    with pytest.raises(DataError, match=r"s.csv:1: looks like data, not a header"):
        read_series_table(table("1,5\n2,6\n3,7\n"))
    with pytest.raises(DataError, match=r"s.csv:1: column 'y' appears twice"):
        read_series_table(table("t,y,y\n1,1,2\n2,2,3\n"))
    with pytest.raises(DataError, match=r"s.csv:3: column 'y': 'inf' is not a finite number"):
        read_series_table(table("t,y\n1,1\n2,inf\n"))


def test_check_series_says_what_the_window_and_horizon_need(table):
    s = read_series_table(table("t,y\n1,1\n2,2\n3,4\n"))
    check_series(s, window=2, horizon=1)
    with pytest.raises(DataError, match=r"s.csv: needs at least 5 points for a window of 4 and a horizon of 1, got 3; "
                                        r"give a longer series or a shorter window or horizon"):
        check_series(s, window=4, horizon=1)
    with pytest.raises(DataError, match=r"needs at least 10 points, got 3"):
        check_series(s, 10)


def test_anomaly_ranges_are_half_open_runs():
    assert anomaly_ranges([0, 1, 1, 0, 1]) == [(1, 3), (4, 5)]
    assert anomaly_ranges(np.array([1, 0, 0], np.int8)) == [(0, 1)]
    assert anomaly_ranges([0, 0]) == []


# ---- the loaders on fake installed trees -------------------------------------------------------
@pytest.fixture
def fake_pypi(monkeypatch, tmp_path):
    """``catalog.locate`` answers tmp_path/NAME: a fake installed package for each data set."""
    monkeypatch.setattr(catalog, "locate", lambda name: tmp_path / name)

    def make(name: str, relative: str, text: str):
        path = tmp_path / name / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path
    return make


def test_co2_reads_yyyymmdd_dates_and_interpolates(fake_pypi):
    fake_pypi("forecasting", CO2_FILE, "date,co2\n19580329,316.1\n19580405,\n19580412,317.7\n")
    s = co2_series()
    assert s.time == [datetime(1958, 3, 29), datetime(1958, 4, 5), datetime(1958, 4, 12)] and s.season == 52
    np.testing.assert_allclose(s.values[:, 0], [316.1, 316.9, 317.7])
    assert s.mask[:, 0].tolist() == [True, False, True] and "1 missing weeks filled by linear interpolation" in s.source


def test_sunspots_reads_years(fake_pypi):
    fake_pypi("forecasting", SUNSPOTS_FILE, '"YEAR","SUNACTIVITY"\n1700,5\n1701,11\n')
    s = sunspots_series()
    assert s.time == [1700, 1701] and s.columns == ["SUNACTIVITY"] and s.season == 1


def test_elnino_reshapes_years_by_months_in_time_order(fake_pypi):
    months = '"YEAR","JAN","FEB","MAR","APR","MAY","JUN","JUL","AUG","SEP","OCT","NOV","DEC"\n'
    rows = "".join(f"{1950 + y}," + ",".join(str(100 * y + m) for m in range(1, 13)) + "\n" for y in range(2))
    fake_pypi("forecasting", ELNINO_FILE, months + rows)
    s = elnino_series()
    assert s.values.shape == (24, 1) and s.season == 12 and s.columns == ["TEMPERATURE"]
    np.testing.assert_array_equal(s.values[:, 0], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] + list(range(101, 113)))
    assert s.time[0] == datetime(1950, 1, 1) and s.time[13] == datetime(1951, 2, 1)


def test_ucr_anomaly_labels_come_from_the_is_anomaly_column(fake_pypi):
    rows = [(1.0, 0), (2.0, 0), (3.0, 0), (9.0, 1), (8.0, 1), (2.5, 0)]
    text = lambda part: "timestamp,value,is_anomaly\n" + "".join(f"{i},{v},{a}\n" for i, (v, a) in enumerate(part))
    fake_pypi("ucr-anomaly", UCR_ANOMALY_FILE.format("TRAIN"), text(rows[:3]))
    fake_pypi("ucr-anomaly", UCR_ANOMALY_FILE.format("TEST"), text(rows))
    a = ucr_anomaly_series()
    assert a.train.values.shape == (3, 1) and a.test.values.shape == (6, 1) and a.test.columns == ["value"]
    assert a.labels.tolist() == [0, 0, 0, 1, 1, 0] and a.ranges == [(3, 5)]


def test_a_tsb_uad_series_trains_on_its_first_30_percent_and_tests_on_all_of_it(fake_pypi):
    values = [0.1, 0.4, 0.2, 0.5, 0.3, 0.6, 0.2, 9.0, 0.4, 0.1]
    labels = [0, 0, 0, 0, 0, 0, 0, 1, 0, 0]
    fake_pypi("tsb-uad", TSB_UAD_FILES["mitdb"], "data,label\n" + "".join(f"{v},{a}\n" for v, a in zip(values, labels)))
    a = tsb_uad_series("mitdb")
    assert a.train.values.shape == (3, 1) and a.test.values.shape == (10, 1) and a.test.columns == ["value"]
    np.testing.assert_array_equal(a.train.values[:, 0], values[:3])
    assert a.labels.tolist() == labels and a.ranges == [(7, 8)] and a.test.time == list(range(10))
    assert "first 3 points" in a.source and ANOMALY_SERIES["mitdb"]().ranges == [(7, 8)]


def test_a_tsb_uad_series_with_an_anomaly_in_its_training_part_is_damaged(fake_pypi):
    fake_pypi("tsb-uad", TSB_UAD_FILES["yahoo"], "data,label\n" + "".join(f"{i % 3},{int(i == 1)}\n" for i in range(10)))
    with pytest.raises(DataError, match=r"the first 3 points, the training part, have anomalies; the installed data "
                                        r"set 'tsb-uad' looks damaged: .*sktime==1.2.0"):
        tsb_uad_series("yahoo")


def test_a_damaged_installed_file_says_how_to_reinstall(fake_pypi):
    path = fake_pypi("forecasting", SUNSPOTS_FILE, '"YEAR","SUNACTIVITY"\n1700,5\n1701,x\n')
    with pytest.raises(DataError, match=rf"^{path}:3: column 'SUNACTIVITY': 'x' is not a number; .*the installed data "
                                        r"set 'forecasting' looks damaged: .*--force-reinstall --no-deps statsmodels==0.15.0"):
        sunspots_series()


def taylor_source(values) -> str:
    """A module laid out as pmdarima 2.1.1's datasets/taylor.py: the values in an np.array literal."""
    rows = ",\n        ".join(", ".join(str(v) for v in values[i : i + 6]) for i in range(0, len(values), 6))
    return ("import numpy as np\n\n\ndef load_taylor(as_series=False, dtype=float):\n"
            f'    """Half-hourly electricity demand"""\n    rslt = np.array([\n        {rows}]).astype(dtype)\n'
            "    return rslt\n")


def test_taylor_reads_the_array_literal_as_text_with_half_hourly_times(fake_pypi):
    values = list(range(20_000, 20_000 + 4032))
    fake_pypi("taylor", TAYLOR_FILE, taylor_source(values))
    s = taylor_series()
    np.testing.assert_array_equal(s.values[:, 0], values)
    assert s.time[0] == datetime(2000, 6, 5) and s.time[1] == datetime(2000, 6, 5, 0, 30)
    assert s.time[-1] == datetime(2000, 8, 27, 23, 30)  # twelve weeks, Monday to Sunday
    assert (s.season, s.seasons, s.columns) == (336, (48, 336), ["demand"])


def test_a_taylor_file_without_its_4032_values_says_how_to_reinstall(fake_pypi):
    fake_pypi("taylor", TAYLOR_FILE, taylor_source(range(100)))
    with pytest.raises(DataError, match=r"expected 4,032 numbers .* read 100; the installed data set 'taylor' looks "
                                        r"damaged: .*--force-reinstall --no-deps pmdarima==2.1.1"):
        taylor_series()


def test_seattle_temps_reads_slashed_dates(fake_pypi):
    fake_pypi("seattle-temps", SEATTLE_FILE, "date,temp\n2010/01/01 00:00,39.4\n2010/01/01 01:00,39.2\n")
    s = seattle_temps_series()
    assert s.time == [datetime(2010, 1, 1, 0), datetime(2010, 1, 1, 1)] and s.season == 24
    np.testing.assert_allclose(s.values[:, 0], [39.4, 39.2])
    fake_pypi("seattle-temps", SEATTLE_FILE, "date,temp\n2010-01-01 00:00,39.4\n")
    with pytest.raises(DataError, match=r"seattle-temps.csv: .*2010-01-01 00:00.*looks damaged"):
        seattle_temps_series()


# ---- counts on the installed sets --------------------------------------------------------------
@needs("forecasting")
def test_forecasting_counts():
    co2, sunspots, elnino = co2_series(), sunspots_series(), elnino_series()
    assert co2.values.shape == (2_284, 1) and int((~co2.mask).sum()) == 59 and not np.isnan(co2.values).any()
    assert co2.time[0] == datetime(1958, 3, 29) and co2.time[-1] == datetime(2001, 12, 29)
    assert {(b - a).days for a, b in zip(co2.time, co2.time[1:])} == {7}
    assert sunspots.values.shape == (309, 1) and (sunspots.time[0], sunspots.time[-1]) == (1700, 2008)
    assert elnino.values.shape == (732, 1) and (elnino.time[0], elnino.time[-1]) == (datetime(1950, 1, 1), datetime(2010, 12, 1))
    np.testing.assert_allclose(elnino.values[[0, 13, -1], 0], [23.11, 25.28, 22.07])  # Jan 1950, Feb 1951, Dec 2010
    assert (co2.season, sunspots.season, elnino.season) == (52, 1, 12)
    assert "statsmodels" not in sys.modules


@needs("ucr-anomaly")
def test_ucr_anomaly_counts():
    a = ucr_anomaly_series()
    assert a.train.values.shape == (1_200, 1) and a.test.values.shape == (7_501, 1) and a.labels.shape == (7_501,)
    assert a.ranges == [(4_187, 4_199)] and int(a.labels.sum()) == 12
    np.testing.assert_array_equal(a.test.values[:1_200], a.train.values)  # the test file repeats the training part
    assert "aeon" not in sys.modules


def test_a_labels_column_may_hold_one_value_but_a_value_column_may_not(table):
    path = table("t,v,is_anomaly\n1,0.5,0\n2,0.7,0\n3,0.2,0\n")
    s = read_series_table(path, labels="is_anomaly")
    np.testing.assert_array_equal(s.values[:, 1], [0, 0, 0])
    with pytest.raises(DataError, match=r"column 'is_anomaly': all values equal 0"):
        read_series_table(path)
    with pytest.raises(DataError, match=r"column 'v': all values equal 1"):
        read_series_table(table("t,v,is_anomaly\n1,1,0\n2,1,1\n"), labels="is_anomaly")


@needs("taylor")
def test_taylor_counts():
    s = taylor_series()
    assert s.values.shape == (4_032, 1) and s.values[0, 0] == 22_262 and s.values[-1, 0] == 23_132
    assert "pmdarima" not in sys.modules


@needs("seattle-temps")
def test_seattle_temps_counts():
    s = seattle_temps_series()
    assert s.values.shape == (8_759, 1) and s.time[-1] == datetime(2010, 12, 31, 23)
    assert "vega_datasets" not in sys.modules


@needs("tsb-uad")
def test_tsb_uad_counts():
    mitdb, yahoo = tsb_uad_series("mitdb"), tsb_uad_series("yahoo")
    assert mitdb.test.values.shape == (7_500, 1) and mitdb.train.values.shape == (2_250, 1)
    assert mitdb.ranges == [(6_936, 7_288)]
    assert yahoo.test.values.shape == (1_000, 1) and yahoo.train.values.shape == (300, 1)
    assert [a for a, _ in yahoo.ranges] == [431, 478, 610, 681, 718, 732, 846] and int(yahoo.labels.sum()) == 7
    np.testing.assert_array_equal(mitdb.test.values[:2_250], mitdb.train.values)
    assert "sktime" not in sys.modules
