"""The compiled kernels (nn/kernels, numba) against the NumPy reference, and the backend switch.

Equality: every accelerated kind, on random configurations (layers, directions, projection,
lengths, initial state, the gradient through out and the final state), gives the reference's
outputs, final states, input and initial-state gradients and every parameter gradient, within
1e-12 norm-wise in float64 and 1e-5 in float32.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from rnnkit.nn import backend, cells
from rnnkit.nn import no_grad as nn_no_grad

pytest.importorskip("numba")

from rnnkit.nn.kernels.activations import exp, sigmoid, tanh  # noqa: E402  (numba is there)

ACCELERATED = [cells.get(name) for name in backend.accelerated()]
BOUND = {np.float64: 1e-12, np.float32: 1e-5}


def random_configuration(kind, seed: int, dtype):
    rng = np.random.default_rng(seed)
    I, H, B, T = (int(v) for v in rng.integers(1, 7, size=4))
    H += 1
    opts = dict(num_layers=int(rng.integers(1, 4)), bidirectional=bool(rng.integers(2)), bias=bool(rng.random() < 0.8))
    if kind.projection and rng.random() < 0.5:
        opts["proj_size"] = int(rng.integers(1, H))
    layer = kind.layer(I, H, dtype=dtype, rng=seed, **kind.options, **opts).eval()
    x = rng.standard_normal((T, B, I)).astype(dtype)
    lengths = rng.integers(1, T + 1, size=B) if rng.random() < 0.5 else None
    given = rng.random() < 0.5
    return layer, x, lengths, given, rng


def run(layer, x, lengths, given, seed):
    """Forward and backward with gradients drawn from ``seed``; every result, flattened to a list."""
    rng = np.random.default_rng(seed)
    layer.zero_grad()
    shapes = [(layer.num_layers * layer.num_directions, x.shape[1], layer.output_size if p == "h" else layer.hidden_size)
              for p in layer.kind.states]
    h0 = [rng.standard_normal(s).astype(x.dtype) for s in shapes] if given else None
    pack = (lambda parts: tuple(parts) if len(parts) > 1 else parts[0])
    out, state = layer(x, None if h0 is None else pack(h0), lengths=lengths)
    d_out = rng.standard_normal(out.shape).astype(x.dtype)
    d_state = pack([rng.standard_normal(s).astype(x.dtype) for s in shapes])
    dx, d0 = layer.backward(d_out, d_state)
    parts = lambda v: list(v) if isinstance(v, tuple) else [v]  # noqa: E731
    return [out, *parts(state), dx, *parts(d0)] + [p.grad.copy() for _, p in layer.named_parameters()]


def relative_error(a, b) -> float:
    return float(np.linalg.norm((a - b).astype(np.float64)) / max(np.linalg.norm(b.astype(np.float64)), 1e-30))


def as_on_cores(monkeypatch, count: int) -> None:
    """``backend.chunks()`` as on a machine with ``count`` cores, for this test alone: the products
    made for another count (``backend.products()`` keeps them, since the cores do not change in
    a process) are set aside too."""
    monkeypatch.setattr(backend, "chunks", lambda: count)
    monkeypatch.setattr(backend, "_products", {})


@pytest.fixture
def kernel_threads():
    """Sets the kernels' threads for a test, then restores the automatic choice; BLAS at one
    thread, as the thread policy holds it, so that the products outside the loops are split
    between the kernels' threads too (nn/kernels/products.py)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        yield backend.set_threads
    backend.set_threads(None)


# 3 chunks of at most 6 units: uneven, some one unit wide; 4: the last ones empty (H = 5: 2, 2, 1, none)
@pytest.mark.parametrize("chunks", [1, 3, 4])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("kind", ACCELERATED, ids=[k.name for k in ACCELERATED])
def test_kernels_equal_the_reference(kind, seed, dtype, chunks, kernel_threads, monkeypatch):
    layer, x, lengths, given, _ = random_configuration(kind, seed, dtype)
    as_on_cores(monkeypatch, chunks)
    kernel_threads(2)
    with backend.use_backend("numpy"):
        expected = run(layer, x, lengths, given, seed)
    with backend.use_backend("numba"):
        got = run(layer, x, lengths, given, seed)
    errors = [relative_error(g, e) for g, e in zip(got, expected)]
    assert max(errors) <= BOUND[dtype], (layer, errors)


@pytest.mark.parametrize("chunks", [None, 3])
@pytest.mark.parametrize("kind", ACCELERATED, ids=[k.name for k in ACCELERATED])
def test_the_results_are_the_same_to_the_last_bit_on_any_number_of_threads(kind, chunks, kernel_threads, monkeypatch):
    """The thread count follows the load (``backend.threads``); the numbers must not, or a run
    resumed on a busy machine drifts from an uninterrupted one. Float32, every product outside
    the loop cut into parts (whatever its size) and every step's units into chunks; from two
    threads the two directions run side by side, each on one (``backend.side_by_side``)."""
    from rnnkit.nn.kernels import products

    monkeypatch.setattr(products, "CUT_FROM_FLOPS", 0)
    if chunks is not None:
        as_on_cores(monkeypatch, chunks)
    rng = np.random.default_rng(5)
    layer = kind.layer(24, 40, num_layers=2, bidirectional=True, dtype=np.float32, rng=5, **kind.options)
    x = rng.standard_normal((9, 6, 24)).astype(np.float32)
    lengths = np.array([9, 9, 7, 4, 4, 1])
    results = {}
    with backend.use_backend("numba"):
        for count in (1, 2, 3):
            kernel_threads(count)
            results[count] = run(layer, x, lengths, True, 5)
    for count in (2, 3):
        for got, expected in zip(results[count], results[1]):
            np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("kind", ACCELERATED, ids=[k.name for k in ACCELERATED])
def test_the_recorded_gradient_flow_is_the_references(kind):
    layer, x, lengths, given, _ = random_configuration(kind, 3, np.float64)
    layer.record_grad_norms = True
    norms = {}
    for name in backend.BACKENDS:
        with backend.use_backend(name):
            run(layer, x, lengths, given, 3)
            norms[name] = layer.grad_norms.copy()
    np.testing.assert_allclose(norms["numba"], norms["numpy"], rtol=1e-12)


def test_every_kind_with_equations_has_a_kernel_or_runs_the_reference():
    # the kernels' table names registered kinds only; the others fall back to their own equations
    assert set(backend.accelerated()) <= set(cells.names())
    for kind in cells.kinds():
        if kind.sequence is not None:
            with backend.use_backend("numba"):
                eq = backend.equations(kind)
            assert callable(eq.sequence) and callable(eq.sequence_backward)
            assert (eq is kind) == (kind.name not in backend.accelerated())


@pytest.mark.parametrize("dtype,ulps", [(np.float32, 6), (np.float64, 2)])
def test_kernel_tanh_and_sigmoid_are_within_a_few_ulp(dtype, ulps):
    from numba import njit

    @njit
    def apply(x, t, s):
        for k in range(x.size):
            t[k] = tanh(x[k])
            s[k] = sigmoid(x[k])

    x = np.concatenate([np.linspace(-30, 30, 200_001), np.logspace(-30, 1.3, 20_001), -np.logspace(-30, 1.3, 20_001), [0.0]]).astype(dtype)
    t, s = np.empty_like(x), np.empty_like(x)
    apply(x, t, s)
    exact = np.tanh(x.astype(np.float64))
    assert t.dtype == dtype and s.dtype == dtype
    assert np.all(np.abs(t - exact) <= ulps * np.spacing(np.abs(exact).astype(dtype)) + np.finfo(dtype).tiny)
    exact_s = 0.5 + 0.5 * np.tanh(0.5 * x.astype(np.float64))
    assert np.abs(s - exact_s).max() <= 2 * ulps * np.finfo(dtype).eps


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_exp_is_within_an_ulp_or_two_zero_where_float32_would_be_subnormal_and_inf_past_its_range(dtype):
    from numba import njit

    @njit
    def apply(x, out):
        for k in range(x.size):
            out[k] = exp(x[k])

    x = np.concatenate([np.linspace(-120, 88.72, 400_001), -np.logspace(-30, 1.9, 20_001), np.logspace(-30, 1.9, 20_001),
                        [0.0, -0.0, -87.33, 88.0, 88.7228, -np.inf]]).astype(dtype)
    out = np.empty_like(x)
    apply(x, out)
    exact = np.exp(x.astype(np.float64))
    normal = (exact >= np.finfo(dtype).tiny) & (exact <= np.finfo(dtype).max)
    error = np.abs(out[normal] - exact[normal]) / np.spacing(exact[normal].astype(dtype)).astype(np.float64)
    assert out.dtype == dtype and error.max() <= (2 if dtype == np.float32 else 1), error.max()
    tiny = out[exact < np.finfo(dtype).tiny]
    assert np.all((tiny >= 0) & (tiny <= np.finfo(dtype).tiny))  # float32: 0 below −87.3, no garbage from the bits of 2ⁿ
    beyond = np.array([88.73, 89.0, 1e4, np.inf], dtype)
    big = np.empty_like(beyond)
    apply(beyond, big)
    assert np.all(big > np.finfo(np.float32).max)  # float32: inf, as the true exp rounds
    nan = np.array([np.nan], dtype)
    apply(nan, nan)
    assert np.isnan(nan[0])


@pytest.fixture
def two_threads():
    previous = backend.explicit_threads()
    backend.set_threads(2)
    yield
    backend.set_threads(previous)


@pytest.mark.parametrize("size", [6, 512], ids=["small", "split"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", [k for k in ACCELERATED if k.cell], ids=[k.name for k in ACCELERATED if k.cell])
def test_a_cells_compiled_step_equals_the_reference(kind, dtype, size, two_threads):
    """At size 512 the weights pass SPLIT_BYTES and the step's gate rows are shared by two threads;
    a step under no_grad (which hands back no cache) gives the same state as one that keeps it."""
    from rnnkit.nn.kernels import steps

    rng = np.random.default_rng(7)
    cell = kind.make_cell(5 if size == 6 else size, size, dtype=dtype, rng=7)
    assert steps._arrays((cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh), np.dtype(dtype), lambda: 2)[4] == (size == 512)
    assert backend.cell_step(kind) is None or backend.current() == "numba"
    x = rng.standard_normal((3, cell.input_size)).astype(dtype)
    state = tuple(rng.standard_normal((3, size)).astype(dtype) for _ in kind.states)
    state = state if len(state) > 1 else state[0]
    d = tuple(rng.standard_normal((3, size)).astype(dtype) for _ in kind.states)
    results = {}
    for name in backend.BACKENDS:
        with backend.use_backend(name):
            cell.zero_grad()
            with nn_no_grad():
                streamed = cell(x, state)
            new = cell(x, state)
            dx, d_prev = cell.backward(*d)
            parts = lambda v: list(v) if isinstance(v, tuple) else [v]  # noqa: E731
            np.testing.assert_array_equal(np.concatenate(parts(streamed)), np.concatenate(parts(new)))
            results[name] = parts(new) + [dx] + parts(d_prev) + [p.grad.copy() for _, p in cell.named_parameters()]
    with backend.use_backend("numba"):
        assert backend.cell_step(kind) is not None
    errors = [relative_error(g, e) for g, e in zip(results["numba"], results["numpy"])]
    assert max(errors) <= BOUND[dtype], errors


@pytest.mark.parametrize("kind", [k for k in ACCELERATED if k.cell], ids=[k.name for k in ACCELERATED if k.cell])
def test_a_cells_compiled_step_is_the_same_to_the_last_bit_on_one_thread_or_two(kind):
    from rnnkit.nn.kernels import KERNELS

    cell = kind.make_cell(512, 512, dtype=np.float32, rng=3)
    x = np.random.default_rng(3).standard_normal((2, 512)).astype(np.float32)
    weights = (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    states = tuple(np.full((2, 512), 0.5, np.float32) for _ in kind.states)
    step = KERNELS[kind.name]["cell_step"]
    one, two = step(x, states, weights, lambda: 1), step(x, states, weights, lambda: 2)
    for got, expected in zip(two[0] + two[1:2], one[0] + one[1:2]):  # the new states, the gates
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kind", [k for k in ACCELERATED if k.cell], ids=[k.name for k in ACCELERATED if k.cell])
def test_a_layers_single_steps_without_gradient_take_the_compiled_step_and_equal_the_reference(kind, seed, dtype):
    layer, x, _, given, rng = random_configuration(kind, seed, dtype)
    B = x.shape[1]
    h0 = tuple(rng.standard_normal((layer.num_layers * layer.num_directions, B, layer.output_size if p == "h" else layer.hidden_size))
               .astype(dtype) for p in kind.states)
    results, steps = {}, []
    for name in backend.BACKENDS:
        with backend.use_backend(name), nn_no_grad():
            state = (h0 if len(h0) > 1 else h0[0]) if given else None
            outs = []
            for t in range(x.shape[0]):  # token by token, the state fed back
                out, state = layer(x[t : t + 1], state)
                outs.append(out)
            results[name] = [np.concatenate(outs), *(state if isinstance(state, tuple) else [state])]
            steps.append(layer._steps_alone(1, B, False))
    assert steps == [False, not layer.proj_size]  # the compiled step on the numba backend, unless projected
    if not layer.bidirectional:  # step by step is then the whole sequence at once
        with backend.use_backend("numba"), nn_no_grad():
            whole = layer(x, (h0 if len(h0) > 1 else h0[0]) if given else None)
        assert relative_error(results["numba"][0], whole[0]) <= BOUND[dtype]
    errors = [relative_error(g, e) for g, e in zip(results["numba"], results["numpy"])]
    assert max(errors) <= BOUND[dtype], errors


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["mingru", "minlstm"])
def test_the_compiled_minimal_loop_equals_the_parallel_scan_over_many_pieces(name, dtype):
    """T·B·H = 600·4·64: three pieces of the scan, half the gates saturated (a_t ≈ 0 or 1), ragged
    lengths, both directions; the reference runs its parallel scan, the compiled path its loop."""
    rng = np.random.default_rng(11)
    layer = cells.get(name).layer(3, 64, bidirectional=True, dtype=dtype, rng=11)
    for _, p in layer.named_parameters():
        p.data[::2] *= 40  # saturates half the units' gates
    x = rng.standard_normal((600, 4, 3)).astype(dtype)
    lengths = np.array([600, 599, 333, 1])
    results = {}
    for backend_name in backend.BACKENDS:
        with backend.use_backend(backend_name):
            results[backend_name] = run(layer, x, lengths, True, 11)
    errors = [relative_error(g, e) for g, e in zip(results["numba"], results["numpy"])]
    assert max(errors) <= BOUND[dtype], errors


def test_a_bidirectional_layers_directions_run_side_by_side_from_two_threads(kernel_threads):
    """Each on its own thread with its kernel on one; on one thread, one after the other."""
    import threading

    import numba

    def job(f):
        return threading.current_thread().name, numba.get_num_threads(), getattr(f, "func", f).__name__  # a partial of the kernel

    with backend.use_backend("numba"):
        kernel_threads(2)
        (first, n1, f1), (second, n2, f2) = backend.side_by_side(cells.get("lstm"), [job, job], "sequence")
        assert first == threading.current_thread().name and second.startswith("rnnkit-direction")
        assert n1 == n2 == 1 and f1 == f2 == "lstm_sequence"
        kernel_threads(1)
        assert [r[0] for r in backend.side_by_side(cells.get("lstm"), [job, job], "sequence")] == [first, first]


@pytest.mark.parametrize("name", ["mingru", "minlstm"])
def test_a_minimal_layers_forward_on_one_backend_and_backward_on_the_other_agree(name):
    """The compiled forward keeps its kernels in the cache and the reference's keeps its scan's
    decays: either backward follows either forward."""
    rng = np.random.default_rng(8)
    layer = cells.get(name).layer(3, 5, num_layers=2, bidirectional=True, dtype=np.float64, rng=8)
    x = rng.standard_normal((7, 3, 3))
    lengths = np.array([7, 4, 2])
    results = {}
    for forward, backward in [("numpy", "numpy"), ("numba", "numpy"), ("numpy", "numba")]:
        layer.zero_grad()
        with backend.use_backend(forward):
            out, h_n = layer(x, lengths=lengths)
        with backend.use_backend(backward):
            dx, dh0 = layer.backward(np.cos(out), np.sin(h_n))
        results[forward, backward] = [out, h_n, dx, dh0] + [p.grad.copy() for _, p in layer.named_parameters()]
    for mixed in [("numba", "numpy"), ("numpy", "numba")]:
        errors = [relative_error(g, e) for g, e in zip(results[mixed], results["numpy", "numpy"])]
        assert max(errors) <= BOUND[np.float64], (mixed, errors)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_fused_minlstm_keeps_its_coefficients_where_both_gates_underflow(dtype):
    """f and i both below the smallest float (k_f, k_i ≈ −150 … −400): the reference takes d =
    log i − log f, the fused kernel the ratio i/f from the exponents; both must give finite and
    equal outputs, states and gradients."""
    rng = np.random.default_rng(5)
    layer = cells.get("minlstm").layer(2, 6, dtype=dtype, rng=5)
    layer.weight_l0.data[:] = 0
    layer.bias_l0.data[:12] = rng.uniform(-400, -150, 12).astype(dtype)  # k_f, k_i
    x = rng.standard_normal((9, 3, 2)).astype(dtype)
    results = {}
    for name in backend.BACKENDS:
        with backend.use_backend(name):
            results[name] = run(layer, x, np.array([9, 5, 2]), True, 5)
    assert all(np.all(np.isfinite(r)) for r in results["numba"])
    errors = [relative_error(g, e) for g, e in zip(results["numba"], results["numpy"])]
    assert max(errors) <= BOUND[dtype], errors


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("shape", [(7, 3, 5, 4), (20, 8, 16, 12), (1, 9, 2, 3)], ids=["ragged", "even", "one step"])
def test_the_products_split_between_threads_equal_one_call(shape, threads, dtype, monkeypatch):
    """The input projection and the weight gradients cut into row blocks on the products' threads
    (nn/kernels/products.py) give one BLAS call's numbers, GRU's two gate gradients included, and
    the same numbers on one thread as on several; so does a Linear's backward (``affine_backward``,
    cut into column blocks of dW and row blocks of dx). The shapes are small: the test cuts them
    whatever their size."""
    from threadpoolctl import threadpool_limits

    from rnnkit.nn import functional as F
    from rnnkit.nn.kernels import products
    from rnnkit.nn.module import Parameter
    from rnnkit.nn.recurrent import _DirectionWeights

    T, B, I, H = shape
    rng = np.random.default_rng(sum(shape) + threads)
    draw = lambda *s: rng.standard_normal(s).astype(dtype)  # noqa: E731
    X, H_prev, dG, dG_h = draw(T, B, I), draw(T, B, H), draw(T, B, 3 * H), draw(T, B, 3 * H)
    params = [Parameter(draw(3 * H, I)), Parameter(draw(3 * H, H)), Parameter(draw(3 * H)), Parameter(draw(3 * H))]
    w = _DirectionWeights(*params, None, cells.get("gru"))
    monkeypatch.setattr(products, "CUT_FROM_FLOPS", 0)
    with threadpool_limits(1, user_api="blas"):
        assert products._parts(threads, T * B, 1.0) == (threads if T * B >= 2 * threads else 1)
        results = {}
        for parts, count in ((1, 1), (threads, 1), (threads, threads)):
            for p in params:
                p.grad = np.ones_like(p.data)  # accumulates into what is there
            Y = products.affine(X, w.W_ih.data, w.bias_x, parts, count)
            dX = products.accumulate_weight_grads(w, X, H_prev, dG, dG_h, parts=parts, threads=count)
            dW, db = np.ones((3 * H, I), dtype), np.ones(3 * H, dtype)
            dx = products.affine_backward(dG.reshape(T * B, -1), X.reshape(T * B, I), w.W_ih.data, dW, db, parts, count)
            results[parts, count] = [Y, dX, dx, dW, db] + [p.grad.copy() for p in params]
    np.testing.assert_array_equal(results[1, 1][0], F.affine(X, w.W_ih.data, w.bias_x))  # one part is the reference
    dW, db = np.ones((3 * H, I), dtype), np.ones(3 * H, dtype)
    np.testing.assert_array_equal(results[1, 1][2], F.affine_backward(dG.reshape(T * B, -1), X.reshape(T * B, I), w.W_ih.data, dW, db))
    np.testing.assert_array_equal(results[1, 1][3], dW)
    np.testing.assert_array_equal(results[1, 1][4], db)
    errors = [relative_error(g, e) for g, e in zip(results[threads, threads], results[1, 1])]
    assert max(errors) <= BOUND[dtype] / 10, errors
    for got, expected in zip(results[threads, threads], results[threads, 1]):  # the parts' threads change no bit
        np.testing.assert_array_equal(got, expected)


def test_each_product_is_judged_by_its_own_operations(monkeypatch):
    """What affine, affine_backward and accumulate_weight_grads count before deciding to cut:
    2·N·I·O for X Wᵀ, 4·N·I·O for dW and dX, 2·T·B·G·(2I + H) for W_ih's and W_hh's gradients and dX."""
    from rnnkit.nn.kernels import products
    from rnnkit.nn.module import Parameter
    from rnnkit.nn.recurrent import _DirectionWeights

    seen = []
    monkeypatch.setattr(products, "_parts", lambda parts, n, flops: seen.append(flops) or 1)
    N, I, O = 6, 5, 7
    X, W, dY = np.ones((N, I)), np.ones((O, I)), np.ones((N, O))
    products.affine(X, W, None, 2, 2)
    products.affine_backward(dY, X, W, np.zeros_like(W), None, 2, 2)
    T, B, H = 3, 2, 4
    params = [Parameter(np.ones((3 * H, I))), Parameter(np.ones((3 * H, H))), Parameter(np.ones(3 * H)), Parameter(np.ones(3 * H))]
    products.accumulate_weight_grads(_DirectionWeights(*params, None, cells.get("gru")), np.ones((T, B, I)), np.ones((T, B, H)),
                                     np.ones((T, B, 3 * H)), parts=2, threads=2)
    assert seen == [2 * N * I * O, 4 * N * I * O, 2 * T * B * 3 * H * (2 * I + H)]


def test_a_small_product_is_not_cut():
    """Handing a part to another thread costs more than a small product saves (products.py)."""
    from threadpoolctl import threadpool_limits

    from rnnkit.nn.kernels import products

    with threadpool_limits(1, user_api="blas"):
        assert products._parts(2, 128, 2 * 128 * 64 * 64) == 1  # a Linear(64, 64) over 128 steps
        assert products._parts(2, 3200, 2 * 3200 * 256 * 1024) == 2  # a layer's input projection
        assert products._parts(2, 3, 1e12) == 1  # fewer rows than two per part


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_per_step_product_equals_numpys_at_every_edge(dtype):
    """matmul_into over panels: rows past the last tile of four, columns past the last panel,
    one row, one k, A's columns from an offset k0; rows past ``rows`` are left alone."""
    from rnnkit.nn.kernels.matmul import NR, matmul_into, panels

    rng = np.random.default_rng(0)
    for M, K, N in [(1, 1, 1), (3, 5, NR - 1), (4, 33, NR), (7, 8, NR + 3), (9, 17, 2 * NR + 5), (16, 64, 3 * NR)]:
        B = rng.standard_normal((K, N)).astype(dtype)
        for k0 in (0, 3):
            A = rng.standard_normal((M, k0 + K + 2)).astype(dtype)  # columns beyond k0 + K are not read
            for rows in {M, max(M - 2, 1)}:
                out = np.full((M, N), 7.0, dtype)
                matmul_into(A, panels(B), out, rows, k0)
                assert relative_error(out[:rows], A[:rows, k0 : k0 + K] @ B) <= BOUND[dtype] / 10, (M, K, N, rows, k0)
                assert (out[rows:] == 7.0).all()


def test_the_automatic_thread_count_is_within_the_cores(kernel_threads):
    assert 1 <= backend.threads() <= backend.cores()
    kernel_threads(3)
    assert backend.threads() == 3
    with pytest.raises(ValueError, match="threads: expected a number of threads >= 1 or None, got 0"):
        backend.set_threads(0)


def test_switching_backends():
    before = backend.current()
    with backend.use_backend("numpy"):
        assert backend.current() == "numpy"
        assert backend.equations(cells.get("lstm")) is cells.get("lstm")
    assert backend.current() == before
    with pytest.raises(ValueError, match=r"^backend: expected one of numpy, numba, got 'cuda'$"):
        backend.set_backend("cuda")


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, timeout=120)


def test_the_environment_chooses_the_backend_and_a_bad_value_is_one_line():
    code = "from rnnkit.nn import backend; print(backend.current())"
    assert run_python(code, RNNKIT_BACKEND="numpy").stdout.strip() == "numpy"
    assert run_python(code, RNNKIT_BACKEND="").stdout.strip() == "numba"  # the default where numba imports
    bad = run_python(code, RNNKIT_BACKEND="fast")
    assert "$RNNKIT_BACKEND: expected one of numpy, numba, got 'fast'" in bad.stderr


def test_cached_kernels_are_dropped_when_any_kernel_source_changes(tmp_path):
    """numba keys a cached kernel on its own file only; the helpers it calls from other files are
    compiled into it, so a change to any kernel source must drop every cached kernel."""
    from rnnkit.nn.kernels import forget_stale_caches

    (tmp_path / "lstm.py").write_text("from .matmul import matmul_into\n")
    (tmp_path / "matmul.py").write_text("K = 4\n")
    cache = tmp_path / "__pycache__"
    assert forget_stale_caches(tmp_path)  # no stamp yet
    numba_files = [cache / "lstm.lstm_loop-48.py311.nbi", cache / "lstm.lstm_loop-48.py311.1.nbc"]
    bytecode = cache / "lstm.cpython-311.pyc"
    for f in [*numba_files, bytecode]:
        f.write_text("compiled")
    assert not forget_stale_caches(tmp_path)  # nothing changed: kept
    assert all(f.exists() for f in numba_files)
    (tmp_path / "matmul.py").write_text("K = 8\n")  # the helper's file, not lstm.py
    assert forget_stale_caches(tmp_path)
    assert not any(f.exists() for f in numba_files) and bytecode.exists()
    assert not forget_stale_caches(tmp_path)
