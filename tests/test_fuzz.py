"""Fuzz: a damaged or hostile model directory, or random bytes as --data, end in one clear error or
a correct result, for every task's load and verbs (issue 13).

One tiny real model per task is trained once; each example copies it, mutates one thing
(a field of config.json or checkpoint/state.json, the safetensors header or bytes of a weights
file, or the --data file) and runs one command in-process. The property of every run:

- exit 0, or exit 2 with one line on stderr, ``rnnkit: error: ...``;
- the error is one rnnkit raised on purpose (a ``raise`` statement in rnnkit's code), never a
  message of Python, NumPy or a library (``string indices must be integers``) passed through,
  and never the loader's safety net for a field no schema describes;
- no warning (the command would print it on stderr), no nan or inf among forecasts and scores;
- no hang (``signal.alarm`` ends a case after ``CASE_SECONDS``);
- no file opened outside the test's directory and the installed software and data sets (an
  audit hook records every open), though config.json is made to name ``/etc/passwd``.

What the fuzzing found is kept as explicit cases (``FOUND``) at the end.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import io
import json
import math
import os
import re
import shutil
import signal
import site
import struct
import sys
import tempfile
import warnings
from pathlib import Path

import pytest
import safetensors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnnkit
from rnnkit.cli import main as cli
from rnnkit.data import catalog

CASE_SECONDS = 10
#: CI runs the same 25 examples per property every time; RNNKIT_FUZZ_EXAMPLES=500 searches longer, and anew each run
SEARCH = os.environ.get("RNNKIT_FUZZ_EXAMPLES")
FUZZ = settings(max_examples=int(SEARCH or 25), deadline=None, derandomize=not SEARCH, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

TINY = ["--steps", "2", "--valid-every", "2", "--hidden", "4", "--quiet"]


# ---- one tiny model per task ---------------------------------------------------------------------


def _write_data(tmp: Path) -> dict[str, tuple[list[str], list[str]]]:
    """The data files of each model: {name: (train options, the action verb's arguments)}; a
    model's name is its task's, or the task's and a suffix ("classify-values")."""
    (tmp / "corpus.txt").write_text("\n".join("to be or not to be, that is the question" for _ in range(30)))
    (tmp / "reviews.tsv").write_text("\n".join(f"{'pos' if i % 2 else 'neg'}\t{'good' if i % 2 else 'bad'} film {i % 5}"
                                               for i in range(40)))
    (tmp / "names.conll").write_text("alice B-PER\nsmith I-PER\nsees O\nparis B-LOC\n\n" * 40)
    (tmp / "series.csv").write_text("t,v\n" + "".join(f"{i},{math.sin(i / 4):.4f}\n" for i in range(200)))
    (tmp / "pairs.tsv").write_text("".join(f"the dog sees a cat {i % 3}\tel perro ve un gato {i % 3}\n" for i in range(40)))
    (tmp / "values.csv").write_text("".join(f"{i / 7:.3f},{i % 3},{-(i % 5)},{i % 4}\n" for i in range(40)))
    series = ["--data", str(tmp / "series.csv")]
    return {
        "lm": (["--data", str(tmp / "corpus.txt"), "--embed", "4", "--seq-len", "8", "--batch-size", "2", "--layers", "1"],
               ["--length", "5", "--seed", "0"]),
        "classify": (["--data", str(tmp / "reviews.tsv"), "--embed", "4"], ["good film"]),
        "classify-values": (["--data", str(tmp / "values.csv")], ["--data", str(tmp / "values.csv")]),
        "tag": (["--data", str(tmp / "names.conll"), "--embed", "4", "--schedule", "cosine", "--warmup", "1", "--crf"],
                ["alice smith sees paris"]),
        "forecast": ([*series, "--horizon", "2", "--window", "8", "--origins", "2", "--valid-origins", "1", "--paths", "4"],
                     []),
        "detect": ([*series, "--window", "8"], []),
        "translate": (["--data", str(tmp / "pairs.tsv"), "--embed", "4", "--optimizer", "sgd", "--schedule", "step"],
                      ["the dog sees a cat"]),
    }


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """{model name: (model directory, the action verb's arguments, the training options)}, and
    the directory every case works in."""
    tmp = tmp_path_factory.mktemp("fuzz")
    built = {}
    for name, (options, action_args) in _write_data(tmp).items():
        out = tmp / "models" / name
        assert cli.main(["train", _task(name), "--out", str(out), *options, *TINY]) == 0
        built[name] = (out, action_args, options)
    return built, tmp


def _task(name: str) -> str:
    """The task of a model of ``_write_data``."""
    return name.partition("-")[0]


def _fresh_copy(model_dir: Path, tmp: Path) -> Path:
    """A copy of a trained model in a new directory under ``tmp``, so mutations never accumulate."""
    case = Path(tempfile.mkdtemp(dir=tmp, prefix="case-"))
    return Path(shutil.copytree(model_dir, case / "m"))


# ---- running one command, and what it must not do ------------------------------------------------


class CaseTimeout(BaseException):
    """A case ran past CASE_SECONDS (BaseException: no `except Exception` in rnnkit may swallow it)."""


_opened: list[str] | None = None  # the paths opened while a case runs; None between cases


def _record_open(event: str, args) -> None:
    if event == "open" and _opened is not None and isinstance(args[0], (str, bytes, os.PathLike)):
        _opened.append(os.path.realpath(os.fsdecode(args[0])))


sys.addaudithook(_record_open)  # an audit hook cannot be removed; it records only inside a case


@functools.cache
def _allowed_roots(tmp: Path) -> tuple[str, ...]:
    """Where a case may open files: the test's directory, Python and the installed packages, and
    the installed data sets (rnnkit's data cache, Debian's Bible texts), matplotlib's cache."""
    import matplotlib

    roots = [tmp, sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages(), site.getusersitepackages(),
             Path(rnnkit.__file__).parent, catalog.data_dir(), "/usr/share/sword", matplotlib.get_cachedir(),
             matplotlib.get_configdir(), "/proc", "/dev/null", "/dev/urandom", "/etc/localtime", "/usr/share/zoneinfo"]
    return tuple(os.path.realpath(r) for r in roots)


def _outside(paths: list[str], tmp: Path) -> list[str]:
    roots = _allowed_roots(tmp)
    return sorted({p for p in paths if not any(p == r or p.startswith(r.rstrip("/") + "/") for r in roots)})


@functools.cache
def _raise_lines(filename: str) -> frozenset[int]:
    """The lines of a source file on which a ``raise`` statement stands (every line it spans)."""
    tree = ast.parse(Path(filename).read_text(encoding="utf-8"))
    return frozenset(line for node in ast.walk(tree) if isinstance(node, ast.Raise)
                     for line in range(node.lineno, node.end_lineno + 1))


#: errors of the libraries whose text says what is wrong with a file, so rnnkit's messages may quote it
INFORMATIVE = (json.JSONDecodeError, UnicodeDecodeError, OSError, safetensors.SafetensorError)


def _raised_by_rnnkit(exc: BaseException) -> bool:
    """True if ``exc`` comes from a ``raise`` statement in rnnkit's own code (a message it wrote),
    not from an operation inside rnnkit or from a library."""
    if isinstance(exc, INFORMATIVE):
        return True
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return False
    filename = tb.tb_frame.f_code.co_filename
    package = os.path.dirname(rnnkit.__file__)
    return filename.startswith(package + os.sep) and tb.tb_lineno in _raise_lines(filename)


#: the loader's safety net (tasks.base.load_model): a field that no schema describes
SAFETY_NET = re.compile(r"is damaged \((KeyError|IndexError|TypeError|AttributeError)")


def run_case(argv: list[str], tmp: Path) -> tuple[int, str, str]:
    """Run ``rnnkit argv`` in-process and check the property; (exit code, stdout, stderr)."""
    global _opened
    raised: list[BaseException] = []

    def recording(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except BaseException as exc:
                raised.append(exc)
                raise
        return wrapper

    def timeout(signum, frame):
        raise CaseTimeout(f"rnnkit {' '.join(argv)} ran over {CASE_SECONDS} s")

    out, err = io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, timeout)
    patches = [(cli, "run", recording(cli.run)), (cli, "_name_the_resumed_task", recording(cli._name_the_resumed_task))]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for owner, name, patched in patches:
        setattr(owner, name, patched)
    _opened = []
    signal.alarm(CASE_SECONDS)
    try:  # a warning is printed on stderr by the command: a line more than the one error line
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            code = cli.main(["--quiet", *argv])
    finally:
        signal.alarm(0)
        opened, _opened = _opened, None
        signal.signal(signal.SIGALRM, previous)
        for owner, name, original in originals:
            setattr(owner, name, original)
    stderr = err.getvalue() + "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in warned)
    assert code in (0, 2), f"exit {code}: {stderr}"
    outside = _outside(opened, tmp)
    assert not outside, f"rnnkit {' '.join(argv)} opened files outside the test's directory: {outside}"
    assert not warned, stderr
    if code == 2:
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("rnnkit: error: "), f"not one error line: {stderr!r}"
        assert raised, stderr
        # the error, and any error it wraps whose text it shows, came from rnnkit's own raise statements
        exc = raised[-1]
        while exc is not None:
            assert _raised_by_rnnkit(exc), f"an internal error passed through: {type(exc).__name__}: {exc}\n{lines[0]}"
            wrapped = exc.__context__
            # a KeyError's text is the missing key, which the message names
            exc = (wrapped if wrapped is not None and not isinstance(exc, INFORMATIVE) and not isinstance(wrapped, KeyError)
                   and str(wrapped) in lines[0] else None)
        assert not SAFETY_NET.search(lines[0]), f"a field no schema describes: {lines[0]}"
    if code == 0 and argv[0] in ("forecast", "detect"):  # numbers that overflowed are no result
        assert not re.search(r"\b(nan|inf)\b", out.getvalue(), re.IGNORECASE), out.getvalue()
    return code, out.getvalue(), stderr


def _verb_argv(task: str, verb: str, model_dir: Path, action_args: list[str]) -> list[str]:
    if verb == "resume":  # two steps more than the model's
        return ["train", "--resume", str(model_dir), "--steps", "4"]
    if verb == "diagnose":  # a language model's; the others' is an error
        return ["diagnose", str(model_dir), "--windows", "1"]
    action = rnnkit.tasks.base.TASKS[_task(task)].action
    if verb == "action":
        plot = ["--plot", str(model_dir / "plot.png")] if task in ("forecast", "detect") else []
        return [action, str(model_dir), *plot, *action_args]
    return [verb, str(model_dir)]


# ---- mutations of a JSON value -------------------------------------------------------------------


def _paths(value, prefix=()):
    """Every place in a JSON value, as a tuple of keys and indices (the root is ``()``)."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


def _get(value, path):
    for key in path:
        value = value[key]
    return value


HOSTILE_PATHS = ["/etc/passwd", "../../../../etc/passwd", "/etc", "/dev/zero", "/proc/self/environ"]
DEEP = "__deeply_nested__"  # replaced in the JSON text by a value nested thousands deep

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.sampled_from([0, -1, 1, 10**30, -(10**30)]),
                    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e300, -1e300, 5e-324, math.nan]),
                    st.text(max_size=8), st.sampled_from(["", "NaN", "<unk>", "1", "lstm", DEEP, *HOSTILE_PATHS]))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                            st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                           max_leaves=6)


def _retyped(value):
    """The same value as another JSON type: a number as text, text as a list, a list as an object..."""
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    return list(value.values())


@st.composite
def json_mutations(draw, document):
    """(the mutated JSON text, what was done): one place of ``document`` deleted, replaced by a
    hostile value, given another type, or replaced by a value nested deeply."""
    document = json.loads(json.dumps(document))
    if draw(st.booleans()):  # a walk from the root: each level of the file as likely as a vocabulary's many tokens
        path = ()
        while isinstance(node := _get(document, path), (dict, list)) and node and draw(st.integers(0, 3)):
            path += (draw(st.sampled_from(list(node) if isinstance(node, dict) else range(len(node)))),)
    else:
        path = draw(st.sampled_from(list(_paths(document))))
    kind = draw(st.sampled_from(["delete", "replace", "retype", "deep"]))
    if kind == "delete" and path:
        del _get(document, path[:-1])[path[-1]]
        new = None
    else:
        new = draw(json_values) if kind == "replace" else _retyped(_get(document, path)) if kind == "retype" else DEEP
        if path:
            _get(document, path[:-1])[path[-1]] = new
        else:
            document = new
    depth = draw(st.sampled_from([64, 3000, 100_000]))
    text = json.dumps(document).replace(json.dumps(DEEP), "[" * depth + "]" * depth)
    return text, f"{kind} {'.'.join(map(str, path)) or 'the root'} -> {str(new)[:60]}"


def _mutate_file(path: Path, document, data) -> str:
    text, what = data.draw(json_mutations(document), label="mutation")
    path.write_text(text, encoding="utf-8")
    return what


# ---- the properties ------------------------------------------------------------------------------

TASK_NAMES = ["lm", "classify", "classify-values", "tag", "forecast", "detect", "translate"]
VERBS = ["action", "evaluate", "info", "resume", "diagnose"]


@FUZZ
@given(task=st.sampled_from(TASK_NAMES), verb=st.sampled_from(VERBS), data=st.data())
def test_a_damaged_config_json_is_one_clear_error(models, task, verb, data):
    built, tmp = models
    model_dir = _fresh_copy(built[task][0], tmp)
    config = json.loads((model_dir / "config.json").read_text())
    _mutate_file(model_dir / "config.json", config, data)
    run_case(_verb_argv(task, verb, model_dir, built[task][1]), tmp)


@pytest.mark.parametrize("task, option", [(task, "data") for task in TASK_NAMES] + [("classify", "test"), ("tag", "test")])
@pytest.mark.parametrize("hostile", HOSTILE_PATHS)
def test_a_config_json_naming_a_path_outside_reads_nothing_there(models, task, option, hostile):
    built, tmp = models
    model_dir = _fresh_copy(built[task][0], tmp)
    config = json.loads((model_dir / "config.json").read_text())
    config["task_options"][option] = hostile
    (model_dir / "config.json").write_text(json.dumps(config))
    for verb in VERBS:
        run_case(_verb_argv(task, verb, model_dir, built[task][1]), tmp)


@FUZZ
@given(task=st.sampled_from(TASK_NAMES), data=st.data())
def test_a_damaged_checkpoint_state_is_one_clear_error_on_resume(models, task, data):
    built, tmp = models
    model_dir = _fresh_copy(built[task][0], tmp)
    state_path = model_dir / "checkpoint" / "state.json"
    _mutate_file(state_path, json.loads(state_path.read_text()), data)
    run_case(_verb_argv(task, "resume", model_dir, []), tmp)


def _split_safetensors(raw: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


@FUZZ
@given(task=st.sampled_from(TASK_NAMES), verb=st.sampled_from(VERBS),
       weights=st.sampled_from(["model.safetensors", "checkpoint/weights.safetensors", "checkpoint/optimizer.safetensors"]),
       damage=st.sampled_from(["header", "truncate", "bytes", "random file"]), data=st.data())
def test_a_damaged_safetensors_file_is_one_clear_error(models, task, verb, weights, damage, data):
    built, tmp = models
    model_dir = _fresh_copy(built[task][0], tmp)
    path = model_dir / weights
    raw = path.read_bytes()
    if damage == "header":
        header, tensors = _split_safetensors(raw)
        text, _ = data.draw(json_mutations(header), label="header mutation")
        raw = struct.pack("<Q", len(text.encode())) + text.encode() + tensors
    elif damage == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1), label="length")]
    elif damage == "bytes":
        at = data.draw(st.integers(0, len(raw) - 1), label="offset")
        new = data.draw(st.binary(min_size=1, max_size=16), label="bytes")
        raw = raw[:at] + new + raw[at + len(new) :]
    else:
        raw = data.draw(st.binary(max_size=64), label="file")
    path.write_bytes(raw)
    run_case(_verb_argv(task, verb, model_dir, built[task][1]), tmp)


@FUZZ
@given(task=st.sampled_from(TASK_NAMES), data=st.data())
def test_a_damaged_metrics_log_is_one_clear_error_on_resume(models, task, data):
    """metrics.jsonl is read back on --resume (cut to the checkpoint's step) and drawn as loss.png."""
    built, tmp = models
    model_dir = _fresh_copy(built[task][0], tmp)
    path = model_dir / "metrics.jsonl"
    lines = path.read_text().splitlines()
    at = data.draw(st.integers(0, len(lines) - 1), label="line")
    if data.draw(st.booleans(), label="as JSON"):
        lines[at], _ = data.draw(json_mutations(json.loads(lines[at])), label="mutation")
    else:
        lines.insert(at, data.draw(st.binary(max_size=40), label="bytes").decode("utf-8", "replace"))
    path.write_text("\n".join(lines) + "\n")
    run_case(_verb_argv(task, "resume", model_dir, []), tmp)


@pytest.mark.parametrize("line", ['{"step": [], "valid_loss": 1.0}',  # inhomogeneous shape, from NumPy
                                  '{"valid_loss": 1.0}',  # KeyError: 'step'
                                  '{"step": 1, "train_loss": "low"}',  # can't multiply sequence by non-int
                                  "[" * 3000 + "]" * 3000])  # RecursionError
def test_what_fuzzing_found_in_a_metrics_log(models, line):
    built, tmp = models
    model_dir = _fresh_copy(built["lm"][0], tmp)
    with open(model_dir / "metrics.jsonl", "a") as log:
        log.write(line + "\n")
    code, _, stderr = run_case(_verb_argv("lm", "resume", model_dir, []), tmp)
    assert code == 2 and "metrics.jsonl" in stderr and "delete that line" in stderr, stderr


# text of the shapes the readers expect, and bytes of no shape at all
data_texts = st.one_of(
    st.binary(max_size=200),
    st.text(alphabet="0123456789.,-+eE\t\n :abNnIfO", max_size=200).map(str.encode),
    st.text(max_size=100).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


@FUZZ
@given(task=st.sampled_from(TASK_NAMES), verb=st.sampled_from(["action", "evaluate", "train"]), raw=data_texts)
def test_random_bytes_as_data_are_one_clear_error(models, task, verb, raw):
    built, tmp = models
    case = Path(tempfile.mkdtemp(dir=tmp, prefix="case-"))
    data_file = case / "data.txt"
    data_file.write_bytes(raw)
    model_dir = _fresh_copy(built[task][0], tmp)
    if verb == "train":  # the model's options, another --data
        argv = ["train", _task(task), "--out", str(case / "new"), *built[task][2], "--data", str(data_file), *TINY]
    elif verb == "evaluate":
        argv = ["evaluate", str(model_dir), "--data", str(data_file)]
    elif task == "lm":  # generate reads no data: its prime is the random text
        argv = ["generate", str(model_dir), "--length", "3", "--prime=" + (raw.decode("utf-8", "replace") or "x")]
    else:
        argv = [rnnkit.tasks.base.TASKS[_task(task)].action, str(model_dir), "--data", str(data_file)]
        argv += ["--plot", str(case / "plot.png")] if task in ("forecast", "detect") else []
    run_case(argv, tmp)


# ---- what the fuzzing found, kept as examples -----------------------------------------------------


def _json_edit(path: tuple, value=None, delete=False):
    """A mutation of a JSON file's bytes: the place ``path`` (keys and indices) set to ``value``, or deleted."""
    def mutate(raw: bytes) -> bytes:
        document = json.loads(raw)
        *parents, last = path
        place = _get(document, parents)
        if delete:
            del place[last]
        else:
            place[last] = value
        return json.dumps(document).encode()
    return mutate


def _header_edit(path: tuple, value):
    """A mutation of a safetensors file: a place in its header set to ``value``."""
    def mutate(raw: bytes) -> bytes:
        header, tensors = _split_safetensors(raw)
        text = _json_edit(path, value)(json.dumps(header).encode())
        return struct.pack("<Q", len(text)) + text + tensors
    return mutate


def _nested_header(raw: bytes) -> bytes:
    text = b"[" * 3000 + b"]" * 3000
    return struct.pack("<Q", len(text)) + text + _split_safetensors(raw)[1]


FOUND = [  # (task, file, mutation, verb, exit code): each was a traceback or a message of Python's before its fix
    ("tag", "config.json", _json_edit(("encoding", "scheme"), delete=True), "evaluate", 2),  # KeyError: 'scheme'
    ("tag", "config.json", _json_edit(("encoding", "unit"), delete=True), "action", 2),  # KeyError: 'unit'
    ("classify", "config.json", _json_edit(("encoding", "values"), delete=True), "evaluate", 2),  # KeyError: 'values'
    ("translate", "config.json", _json_edit(("vocabulary", "target"), delete=True), "info", 2),  # the loader's safety net
    ("lm", "config.json", _json_edit(("task", ), ""), "resume", 2),  # argparse's usage: invalid choice ''
    ("tag", "config.json", _json_edit(("task_options", "batch_size"), 0), "action", 2),  # range() arg 3 must not be zero
    ("forecast", "config.json", _json_edit(("encoding", "std", 0), "NaN"), "action", 2),  # ufunc 'divide' not supported
    ("detect", "config.json", _json_edit(("encoding", "std", 0), 0), "info", 2),  # a division by zero
    ("forecast", "config.json", _json_edit(("encoding", "std", 0), 1e-300), "action", 2),  # overflow: x contains inf
    ("forecast", "config.json", _json_edit(("metrics", "widen"), 1e300), "action", 2),  # exit 0 with -inf and inf bounds
    ("forecast", "config.json", _json_edit(("encoding", "mean"), [0.0, 1.0]), "action", 2),  # x: expected input_size=1
    ("detect", "config.json", _json_edit(("encoding", "split"), 10**9), "info", 2),  # the loader's safety net
    ("classify-values", "config.json", _json_edit(("encoding", "channels"), 3), "evaluate", 2),  # shapes of weights
    ("tag", "config.json", _json_edit(("encoding", "tags", 3), "w"), "action", 2),  # tags: 'w' is not a BIO tag
    ("lm", "checkpoint/state.json", _json_edit(("state", "rng", "model", "state"), delete=True), "resume", 2),  # "('state')"
    ("lm", "checkpoint/state.json", _json_edit(("state", "run", "data.position"), None), "resume", 2),  # int() argument
    ("lm", "checkpoint/state.json", _json_edit(("state", "recent_losses", 0), 10**400), "resume", 2),  # ufunc 'isfinite'
    ("lm", "checkpoint/state.json", _json_edit(("state", "rng", "\r"), None), "resume", 2),  # a line break in the error
    ("lm", "model.safetensors", lambda raw: raw[:5], "action", 2),  # unpack requires a buffer of 8 bytes
    ("lm", "model.safetensors", _nested_header, "action", 2),  # maximum recursion depth exceeded
    ("lm", "model.safetensors", _header_edit(("embedding.weight", "dtype"), ["F32"]), "action", 2),  # unhashable type
    # harmless changes, which now work
    ("lm", "config.json", _json_edit(("task_options", "batch_size"), delete=True), "evaluate", 0),  # KeyError: 'batch_size'
    ("lm", "checkpoint/state.json", _json_edit(("state", "recent_losses", 0), -(2**63) - 1), "resume", 0),  # 'isfinite'
]


@pytest.mark.parametrize("task, file, mutate, verb, code", FOUND, ids=[f"{t}-{f}-{i}" for i, (t, f, *_) in enumerate(FOUND)])
def test_what_fuzzing_found(models, task, file, mutate, verb, code):
    built, tmp = models
    model_dir = _fresh_copy(built[task][0], tmp)
    path = model_dir / file
    path.write_bytes(mutate(path.read_bytes()))
    assert run_case(_verb_argv(task, verb, model_dir, built[task][1]), tmp)[0] == code


def test_global_options_may_come_before_train_resume(models):
    built, tmp = models
    code, _, stderr = run_case(["--threads", "1", "train", "--resume", str(_fresh_copy(built["detect"][0], tmp)),
                                "--steps", "3"], tmp)
    assert code == 0, stderr


def test_evaluating_a_detector_on_its_unlabelled_data_names_that_data(models):
    built, tmp = models
    code, _, stderr = run_case(["evaluate", str(_fresh_copy(built["detect"][0], tmp))], tmp)
    assert code == 2 and "series.csv has no 'is_anomaly' column" in stderr and "--data" in stderr, stderr


def test_a_regressor_label_beyond_float32_is_one_clear_error(models):
    _, tmp = models  # training wrote a value_std of inf, after numpy's overflow warnings, and the model never loaded
    case = Path(tempfile.mkdtemp(dir=tmp, prefix="case-"))
    (case / "values.csv").write_text("".join(f"{1e300 if i == 3 else i / 7},{i % 3},{i % 5}\n" for i in range(40)))
    code, _, stderr = run_case(["train", "classify", "--data", str(case / "values.csv"), "--out", str(case / "m"), *TINY], tmp)
    assert code == 2 and "example 4 is labelled '1e+300'" in stderr, stderr
