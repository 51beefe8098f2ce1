"""The BLAS thread policy: one thread by default; --threads, $RNNKIT_THREADS and the user's own variables."""

import json
import os
import subprocess
import sys

import pytest

from rnnkit.nn import backend
from rnnkit.threads import BLAS_ENVS, THREADS_ENV, chosen_threads


@pytest.fixture
def clean_env(monkeypatch):
    for name in (THREADS_ENV, *BLAS_ENVS):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_one_thread_unless_told_otherwise(clean_env):
    assert chosen_threads() == 1
    clean_env.setenv(THREADS_ENV, "2")
    with backend.use_backend("numpy"):
        assert chosen_threads() == 2
        assert chosen_threads("3") == 3  # --threads wins over the variable
    with backend.use_backend("numba"):  # the kernels take the count; BLAS's threads would spin beside theirs
        assert chosen_threads() == 1 and chosen_threads("3") == 1


def test_the_users_blas_variables_are_respected(clean_env):
    clean_env.setenv("OPENBLAS_NUM_THREADS", "2")
    assert chosen_threads() is None
    clean_env.setenv(THREADS_ENV, "1")
    assert chosen_threads() == 1


@pytest.mark.parametrize("text", ["0", "-1", "two"])
def test_a_bad_count_names_where_it_came_from(clean_env, text):
    with pytest.raises(ValueError, match=r"^--threads: expected a number of threads >= 1"):
        chosen_threads(text)
    clean_env.setenv(THREADS_ENV, text)
    with pytest.raises(ValueError, match=rf"^{THREADS_ENV}: expected a number of threads >= 1"):
        chosen_threads()


def blas_threads_after(code: str, *args: str, **env: str) -> list[int]:
    """The thread counts of NumPy's BLAS, the one rnnkit calls, in a fresh process after running
    ``code`` (the command's main with ``args``, or the API). (numba may load SciPy's as well, which
    no rnnkit code calls.)"""
    script = (f"import sys\n{code}\nimport json\nfrom threadpoolctl import threadpool_info\n"
              "print(json.dumps(sorted({i['num_threads'] for i in threadpool_info()\n"
              "                         if i['user_api'] == 'blas' and 'numpy' in i['filepath']})))")
    clean = {k: v for k, v in os.environ.items() if k not in (THREADS_ENV, *BLAS_ENVS)}
    out = subprocess.run([sys.executable, "-c", script, *args], env=dict(clean, **env), capture_output=True,
                         text=True, check=True, timeout=60).stdout
    return json.loads(out.strip().splitlines()[-1])


COMMAND = "from rnnkit.cli.main import main\nmain(sys.argv[1:])"


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="OpenBLAS starts one thread on one core anyway")
def test_the_command_and_the_api_apply_the_policy(tmp_path):
    assert blas_threads_after(COMMAND, "data", "list") == [1]
    assert blas_threads_after(COMMAND, "--threads", "2", "data", "list") == [1]  # the compiled kernels take them
    assert blas_threads_after(COMMAND, "--threads", "2", "data", "list", RNNKIT_BACKEND="numpy") == [2]
    assert blas_threads_after(COMMAND, "data", "list", RNNKIT_THREADS="2", RNNKIT_BACKEND="numpy") == [2]
    assert blas_threads_after(COMMAND, "data", "list", OPENBLAS_NUM_THREADS="2") == [2]
    api = f"import rnnkit\ntry:\n    rnnkit.load({str(tmp_path)!r})\nexcept Exception:\n    pass"
    assert blas_threads_after(api) == [1]


NN_ALONE = ("import numpy as np\nfrom rnnkit.nn import LSTM, Linear\n"
            "LSTM(3, 4)(np.zeros((5, 2, 3), np.float32))\nLinear(3, 4)(np.zeros((2, 3), np.float32))")


@pytest.mark.skipif((os.cpu_count() or 1) < 2 or "numba" not in backend.available(), reason="OpenBLAS starts one thread on one core anyway")
def test_a_program_using_the_layers_alone_gets_one_blas_thread_beside_the_kernels():
    """No policy ran (no command, no rnnkit.train): the compiled kernels hold BLAS at one thread
    when they first load, unless the user set its count; the reference path leaves BLAS alone."""
    started = blas_threads_after("import numpy")  # what OpenBLAS starts with here
    if started == [1]:
        pytest.skip("OpenBLAS starts one thread here anyway")
    assert blas_threads_after(NN_ALONE) == [1]
    assert blas_threads_after(NN_ALONE, OPENBLAS_NUM_THREADS="2") == [2]
    assert blas_threads_after(NN_ALONE, RNNKIT_BACKEND="numpy") == started
    # asking which kinds are compiled (rnnkit info) runs no kernel: BLAS is left as it started
    assert blas_threads_after("from rnnkit.nn import backend\nbackend.accelerated()") == started


def kernel_threads_after(*argv, **env) -> str:
    """What ``nn.backend`` was told about the kernels' threads after the command ran (as the
    command does, in a fresh process)."""
    code = ("import sys; from rnnkit.cli.main import main\n"
            "from rnnkit.nn import backend\n"
            f"main({list(argv)!r})\n"
            "print(backend.explicit_threads())")
    environment = {k: v for k, v in os.environ.items() if k not in (THREADS_ENV, *BLAS_ENVS)} | env
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=120)
    return done.stdout.strip().splitlines()[-1]


def test_threads_chosen_by_the_user_set_the_kernels_too_else_they_are_automatic():
    assert kernel_threads_after("data", "list") == "None"  # automatic: the cores the load leaves free
    assert kernel_threads_after("--threads", "2", "data", "list") == "2"
    assert kernel_threads_after("data", "list", RNNKIT_THREADS="3") == "3"
    assert kernel_threads_after("data", "list", OPENBLAS_NUM_THREADS="2") == "None"  # BLAS's alone


def test_describe_names_the_backend_and_the_threads():
    from rnnkit.nn import backend
    from rnnkit.threads import describe

    with backend.use_backend("numpy"):
        assert describe().startswith("backend: numpy; BLAS threads: ")
    with backend.use_backend("numba"):
        line = describe()
    assert line.startswith(f"backend: numba (compiled kernels for {', '.join(backend.accelerated())}; ")
    assert "mingru" in line
    assert "thread" in line and "BLAS threads: " in line


def test_describe_says_whether_freed_arrays_are_reused(monkeypatch):
    from rnnkit.nn import allocator
    from rnnkit.threads import describe

    monkeypatch.setattr(allocator, "_kept", False)
    assert describe().endswith("; freed arrays: given back (glibc's own way)")
    if allocator.keep_freed_memory():  # glibc
        assert describe().endswith("; freed arrays: reused")


SPIN_PROBE = """
import os
import rnnkit.nn.kernels
maps = open("/proc/self/maps").read()
print(os.environ.get("GOMP_SPINCOUNT"), "libgomp" in maps)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or "numba" not in backend.available(), reason="libgomp: Linux, numba")
@pytest.mark.parametrize("users, expected", [(None, "None True"), ("123", "123")])
def test_the_kernels_start_openmp_with_a_short_spin_and_leave_the_environment_as_it_was(users, expected):
    """libgomp reads GOMP_SPINCOUNT when it loads: the kernels load it at import with 10 000 turns
    (benchmarks/README: the products between time loops waited for a spinning thread) and then
    remove the variable again; a user's own value is left to rule."""
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "NUMBA_THREADING_LAYER")}
    if users is not None:
        env["GOMP_SPINCOUNT"] = users
    out = subprocess.run([sys.executable, "-c", SPIN_PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[-2].startswith(expected)  # the user's value: loaded whenever numba wants
