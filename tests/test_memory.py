"""rnnkit.memory: the allocator setting the command applies, and whether a model fits."""

import contextlib
import ctypes
import sys

import numpy as np
import pytest

import rnnkit
from rnnkit import memory
from rnnkit.nn import allocator, backend


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keep_freed_memory_takes_on_glibc_and_arrays_still_work():
    assert rnnkit.keep_freed_memory() is True
    a = np.ones(3 * 2**20)  # 24 MB: below the fixed threshold, from the heap now
    del a
    b = np.full(3 * 2**20, 2.0)
    assert b.sum() == 6 * 2**20


FAULTS_ON_REUSE = """
import resource, sys
import numpy as np
np._core.multiarray._set_madvise_hugepage(False)  # small pages: the count below does not depend on the kernel's huge pages
{code}
a = np.ones(2**21)  # 16 MB
del a
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
b = np.ones(2**21)  # the same size again: from the freed block, or from pages faulted in afresh
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_python_api_reuses_freed_arrays_as_the_command_does(tmp_path):
    import subprocess

    def faults(code):
        done = subprocess.run([sys.executable, "-c", FAULTS_ON_REUSE.format(code=code)], capture_output=True, text=True,
                              timeout=120, check=True)
        return int(done.stdout.split()[-1])

    api = f"import rnnkit\ntry:\n    rnnkit.load({str(tmp_path)!r})\nexcept Exception:\n    pass"
    assert faults("import rnnkit") > 1000  # glibc's own way: 16 MB faulted in again, 4,096 pages
    assert faults(api) < 50  # 0 here


LAYER_ALONE = """
import numpy as np
from rnnkit import nn
nn.backend.set_backend({backend!r})
nn.LSTM(3, 8)(np.ones((5, 2, 3), np.float32))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
@pytest.mark.skipif("numba" not in backend.available(), reason="the compiled kernels")
def test_a_program_with_rnnkit_nn_alone_reuses_freed_arrays_where_the_kernels_run_unless_glibc_was_tuned():
    import os
    import subprocess

    def faults(backend, **env):
        code = FAULTS_ON_REUSE.format(code=LAYER_ALONE.format(backend=backend))
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True,
                              env={**os.environ, **env})
        return int(done.stdout.split()[-1])

    assert faults("numba") < 50  # a layer's compiled forward set it
    assert faults("numpy") > 1000  # the reference leaves the allocator as it is
    assert faults("numba", MALLOC_MMAP_THRESHOLD_="131072") > 1000  # the user's own setting rules
    assert memory.keep_freed_memory is allocator.keep_freed_memory  # one definition, the command's too


def test_a_user_tuned_allocator_is_left_alone(monkeypatch):
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=0")
    assert memory.keep_freed_memory() is False
    monkeypatch.delenv("GLIBC_TUNABLES")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "0")
    assert memory.keep_freed_memory() is False


def test_elsewhere_it_does_nothing(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert memory.keep_freed_memory() is False


def test_without_mallopt_it_does_nothing(monkeypatch):
    monkeypatch.setattr(ctypes, "CDLL", lambda name: object())  # a C library without mallopt
    assert memory.keep_freed_memory() is False


# ---- whether a model fits ----------------------------------------------------------------------------


def lstm_options(**kw):
    from types import SimpleNamespace

    return SimpleNamespace(**{"hidden": 32, "embed": 8, "layers": 1, **kw})


def test_a_memory_error_while_building_is_one_line_naming_the_size_options():
    def build():
        raise MemoryError("Unable to allocate 149. GiB for an array with shape (400000, 100000) and data type float32")

    with pytest.raises(ValueError) as info:
        memory.within_memory(build, lstm_options(hidden=100000))
    message = str(info.value)
    assert message.startswith("--hidden 100000, --embed 8, --layers 1: the model does not fit in memory (Unable to "
                              "allocate 149. GiB") and message.endswith("lower --hidden, --embed, --layers")
    assert "GiB of memory are available" in message and "\n" not in message


def test_training_that_would_not_fit_is_refused_with_the_memory_needed_and_available(monkeypatch):
    from rnnkit.nn import LSTM

    build = lambda: LSTM(8, 32)  # noqa: E731  (5,376 parameters: 21 KB of weights)
    monkeypatch.setattr(memory, "available_bytes", lambda: 10_000)
    monkeypatch.setattr(memory, "_address_space_limit", lambda extra: contextlib.nullcontext())  # the build's own test below
    assert memory.within_memory(build, lstm_options()).num_parameters() == 5376  # loading: no optimizer state
    with pytest.raises(ValueError, match=r"^--hidden 32, --embed 8, --layers 1: training this model needs about 0.0 GiB "
                                         r"\(5,376 parameters: weights, gradients, Adam's two moments, a checkpoint copy\), "
                                         r"but 0.0 GiB of memory are available; lower --hidden, --embed, --layers$"):
        memory.within_memory(build, lstm_options(), training=True)
    monkeypatch.setattr(memory, "available_bytes", lambda: 2**30)
    assert memory.within_memory(build, lstm_options(), training=True).num_parameters() == 5376


def test_available_bytes_reads_the_system():
    available = memory.available_bytes()
    assert available is None or available > 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="an address-space limit on /proc/self/statm's size")
def test_a_model_larger_than_the_memory_available_fails_while_building_not_when_touched(monkeypatch):
    import resource

    from rnnkit.nn import LSTM

    before = resource.getrlimit(resource.RLIMIT_AS)
    monkeypatch.setattr(memory, "available_bytes", lambda: 50 * 2**20)
    with pytest.raises(ValueError, match=r"^--hidden 2000, --embed 8, --layers 1: the model does not fit in memory "
                                         r"\(Unable to allocate"):
        memory.within_memory(lambda: LSTM(8, 2000), lstm_options(hidden=2000))  # 128 MB of weights and gradients
    assert resource.getrlimit(resource.RLIMIT_AS) == before  # the limit holds for the build only
    assert np.ones(2**25).sum() == 2**25  # 256 MB: allocations work again
