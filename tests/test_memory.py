"""rnnkit.memory: the allocator setting the command applies."""

import ctypes
import sys

import numpy as np
import pytest

import rnnkit
from rnnkit import memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keep_freed_memory_takes_on_glibc_and_arrays_still_work():
    assert rnnkit.keep_freed_memory() is True
    a = np.ones(3 * 2**20)  # 24 MB: below the fixed threshold, from the heap now
    del a
    b = np.full(3 * 2**20, 2.0)
    assert b.sum() == 6 * 2**20


def test_elsewhere_it_does_nothing(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert memory.keep_freed_memory() is False


def test_without_mallopt_it_does_nothing(monkeypatch):
    monkeypatch.setattr(ctypes, "CDLL", lambda name: object())  # a C library without mallopt
    assert memory.keep_freed_memory() is False
