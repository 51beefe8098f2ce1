"""Optimizers, clipping, schedules and the weights' moving average against torch.optim on the same sequences."""

import io
import math

import numpy as np
import pytest
from gradcheck import rel_err

from rnnkit.nn.module import Module, Parameter
from rnnkit.nn.optim import (
    SGD,
    Adam,
    AdamW,
    CosineAnnealingLR,
    LinearWarmup,
    StepLR,
    WeightAverage,
    clip_grad_norm_,
    clip_grad_value_,
)

torch = pytest.importorskip("torch")

TOL = {np.float64: 1e-12, np.float32: 1e-5}

CONFIGS = {
    "sgd": (SGD, torch.optim.SGD, dict(lr=0.1)),
    "sgd_momentum": (SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9)),
    "sgd_nesterov": (SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    "sgd_weight_decay": (SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.5, weight_decay=0.05)),
    "sgd_dampening": (SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    "adam": (Adam, torch.optim.Adam, dict(lr=0.05)),
    "adam_weight_decay": (Adam, torch.optim.Adam, dict(lr=0.05, betas=(0.8, 0.99), weight_decay=0.1)),
    "adam_amsgrad": (Adam, torch.optim.Adam, dict(lr=0.05, amsgrad=True, eps=1e-6)),
    "adam_amsgrad_weight_decay": (Adam, torch.optim.Adam, dict(lr=0.05, amsgrad=True, weight_decay=0.1)),
    "adamw": (AdamW, torch.optim.AdamW, dict(lr=0.05)),
    "adamw_amsgrad": (AdamW, torch.optim.AdamW, dict(lr=0.05, betas=(0.5, 0.9), weight_decay=0.3, amsgrad=True)),
}
# the names torch gives the per-parameter state our optimizers keep
TORCH_BUFFERS = ("momentum_buffer", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")


def random_shapes(rng):
    return [tuple(int(n) for n in rng.integers(1, 6, size=rng.integers(1, 4))) for _ in range(rng.integers(1, 4))]


def random_grads(rng, shapes, dtype, steps):
    """Gradients whose scale jumps between steps, so AMSGrad's running maximum matters."""
    return [[(rng.normal(size=s) * rng.uniform(0.1, 3.0)).astype(dtype) for s in shapes] for _ in range(steps)]


def run_ours(opt, params, grads):
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad[...] = g
        opt.step()


def run_torch(opt, tensors, grads):
    for step_grads in grads:
        for t, g in zip(tensors, step_grads):
            t.grad = torch.from_numpy(g.copy())
        opt.step()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_optimizer_matches_torch_over_steps_with_an_lr_change(name, dtype):
    ours_cls, torch_cls, kwargs = CONFIGS[name]
    rng = np.random.default_rng(sorted(CONFIGS).index(name))
    shapes = random_shapes(rng)
    start = [rng.normal(size=s).astype(dtype) for s in shapes]
    grads = random_grads(rng, shapes, dtype, steps=6)

    params = [Parameter(w.copy()) for w in start]
    tensors = [torch.tensor(w.copy(), requires_grad=True) for w in start]
    opt, ref = ours_cls(params, **kwargs), torch_cls(tensors, **kwargs)
    run_ours(opt, params, grads[:3])
    run_torch(ref, tensors, grads[:3])
    opt.lr = kwargs["lr"] / 2
    ref.param_groups[0]["lr"] = kwargs["lr"] / 2
    run_ours(opt, params, grads[3:])
    run_torch(ref, tensors, grads[3:])

    for p, t, w0 in zip(params, tensors, start):
        expected = t.detach().numpy()
        assert p.data.dtype == dtype
        assert rel_err(p.data, expected) <= TOL[dtype]
        # the displacement alone, so an update error is not hidden behind the weights' size
        assert rel_err(p.data.astype(np.float64) - w0, expected.astype(np.float64) - w0) <= TOL[dtype]
    for i, t in enumerate(tensors):
        torch_state = ref.state[t]
        for buffer in TORCH_BUFFERS:
            assert (buffer in opt.state[i]) == (buffer in torch_state), buffer
            if buffer in torch_state:
                assert rel_err(opt.state[i][buffer], torch_state[buffer].numpy()) <= TOL[dtype]


def test_sgd_dampening_leaves_the_first_momentum_step_undamped():
    p = Parameter(np.zeros(3))
    opt = SGD([p], lr=1.0, momentum=0.9, dampening=0.5)
    p.grad[...] = [1.0, 2.0, 3.0]
    opt.step()
    np.testing.assert_array_equal(p.data, [-1.0, -2.0, -3.0])
    opt.step()  # b = 0.9 b + 0.5 g
    np.testing.assert_allclose(p.data, -2.4 * np.array([1.0, 2.0, 3.0]), rtol=1e-15)


class TwoWeights(Module):
    def __init__(self):
        super().__init__()
        self.a = Parameter(np.ones((2, 3)))
        self.b = Parameter(np.ones(4))


def test_optimizer_accepts_a_module_and_zero_grad_clears_its_gradients():
    model = TwoWeights()
    opt = Adam(model, lr=0.1)
    assert opt.params == model.parameters()
    for p in model.parameters():
        p.grad[...] = 1.0
    opt.step()
    assert np.all(model.a.data < 1) and np.all(model.b.data < 1)
    opt.zero_grad()
    assert all(not p.grad.any() for p in model.parameters())


# ---- checkpoints ----------------------------------------------------------------------


def save_and_reload(state: dict) -> dict:
    """Through np.savez and np.load, as a trainer's checkpoint would go."""
    buffer = io.BytesIO()
    np.savez(buffer, **state)
    buffer.seek(0)
    with np.load(buffer) as loaded:
        return dict(loaded)


@pytest.mark.parametrize("name", ["sgd_dampening", "sgd_nesterov", "adam_amsgrad_weight_decay", "adamw"])
def test_state_dict_round_trip_resumes_exactly(name):
    ours_cls, _, kwargs = CONFIGS[name]
    rng = np.random.default_rng(7)
    shapes = random_shapes(rng)
    start = [rng.normal(size=s) for s in shapes]
    grads = random_grads(rng, shapes, np.float64, steps=6)

    params = [Parameter(w.copy()) for w in start]
    opt = ours_cls(params, **kwargs)
    run_ours(opt, params, grads[:3])
    saved, weights = opt.state_dict(), [p.data.copy() for p in params]
    run_ours(opt, params, grads[3:])  # must not change what was saved

    resumed = [Parameter(w) for w in weights]
    opt2 = ours_cls(resumed, lr=1.0)  # hyperparameters come from the checkpoint
    opt2.load_state_dict(save_and_reload(saved))
    run_ours(opt2, resumed, grads[3:])
    for p, q in zip(params, resumed):
        np.testing.assert_array_equal(q.data, p.data)
    assert opt2.lr == kwargs["lr"]


def test_state_dict_holds_plain_scalars_and_arrays():
    params = [Parameter(np.ones((2, 2))), Parameter(np.ones(3))]
    opt = Adam(params, lr=0.01, amsgrad=True)
    opt.step()
    state = opt.state_dict()
    assert state["step"] == 1 and state["lr"] == 0.01 and state["betas"] == (0.9, 0.999)
    assert {k for k in state if "." in k} == {
        f"{b}.{i}" for b in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq") for i in range(2)
    }
    assert all(isinstance(v, np.ndarray) for k, v in state.items() if "." in k)


def test_load_state_dict_rejects_what_does_not_fit():
    opt = SGD([Parameter(np.ones(3))], lr=0.1, momentum=0.9)
    opt.step()
    good = opt.state_dict()
    with pytest.raises(ValueError, match="momentum_buffer.0: expected shape"):
        opt.load_state_dict({**good, "momentum_buffer.0": np.ones(4)})
    with pytest.raises(ValueError, match="unexpected key 'exp_avg.0'"):
        opt.load_state_dict({**good, "exp_avg.0": np.ones(3)})
    with pytest.raises(ValueError, match="unexpected key 'momentum_buffer.1'"):
        opt.load_state_dict({**good, "momentum_buffer.1": np.ones(3)})
    with pytest.raises(ValueError, match="momentum_buffer.0: contains NaN"):
        opt.load_state_dict({**good, "momentum_buffer.0": np.array([1.0, np.nan, 1.0])})
    with pytest.raises(ValueError, match="missing keys \\['lr'\\]"):
        opt.load_state_dict({k: v for k, v in good.items() if k != "lr"})
    with pytest.raises(ValueError, match="lr"):
        opt.load_state_dict({**good, "lr": -1.0})


# ---- gradient clipping ----------------------------------------------------------------


def grads_pair(rng, dtype, scale):
    shapes = random_shapes(rng)
    grads = [(rng.normal(size=s) * scale).astype(dtype) for s in shapes]
    params = [Parameter(np.zeros(s, dtype=dtype)) for s in shapes]
    for p, g in zip(params, grads):
        p.grad[...] = g
    tensors = [torch.zeros(s, dtype=torch.from_numpy(g).dtype) for s, g in zip(shapes, grads)]
    for t, g in zip(tensors, grads):
        t.grad = torch.from_numpy(g.copy())
    return params, tensors


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf, "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_torch(norm_type, max_norm, dtype):
    params, tensors = grads_pair(np.random.default_rng(3), dtype, scale=2.0)
    total = clip_grad_norm_(params, max_norm, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(tensors, max_norm, norm_type)
    assert isinstance(total, float)
    assert abs(total - expected.item()) <= TOL[dtype] * expected.item()
    for p, t in zip(params, tensors):
        assert rel_err(p.grad, t.grad.numpy()) <= TOL[dtype]


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_clip_grad_norm_returns_a_non_finite_norm_as_torch_does(bad):
    params, tensors = grads_pair(np.random.default_rng(4), np.float64, scale=1.0)
    params[0].grad.flat[0] = bad
    tensors[0].grad.view(-1)[0] = bad
    total = clip_grad_norm_(params, 1.0)
    expected = torch.nn.utils.clip_grad_norm_(tensors, 1.0)
    assert not math.isfinite(total)
    np.testing.assert_array_equal(total, expected.item())
    for p, t in zip(params, tensors):
        np.testing.assert_array_equal(p.grad, t.grad.numpy())


def test_clip_grad_value_matches_torch():
    params, tensors = grads_pair(np.random.default_rng(5), np.float64, scale=2.0)
    clip_grad_value_(params, 0.7)
    torch.nn.utils.clip_grad_value_(tensors, 0.7)
    for p, t in zip(params, tensors):
        np.testing.assert_array_equal(p.grad, t.grad.numpy())


# ---- learning-rate schedules ----------------------------------------------------------

STEPS = 30


def lr_sequence(schedule, steps=STEPS):
    lrs = [schedule.optimizer.lr]
    for _ in range(steps):
        schedule.step()
        assert schedule.get_lr() == schedule.optimizer.lr
        lrs.append(schedule.optimizer.lr)
    return lrs


def torch_lr_sequence(make, lr, steps=STEPS):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = make(opt)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(steps):
        opt.step()  # no gradient: nothing moves, but torch sees the order it expects
        scheduler.step()
        lrs.append(opt.param_groups[0]["lr"])
    return lrs


def ours_opt(lr):
    return SGD([Parameter(np.zeros(1))], lr=lr)


S = torch.optim.lr_scheduler
SCHEDULES = {
    "step": (lambda o: StepLR(o, 7, gamma=0.5), lambda o: S.StepLR(o, 7, gamma=0.5)),
    "cosine": (lambda o: CosineAnnealingLR(o, 20, eta_min=0.01), lambda o: S.CosineAnnealingLR(o, 20, eta_min=0.01)),
    "warmup": (lambda o: LinearWarmup(o, 8), lambda o: S.LinearLR(o, 1 / 8, 1.0, 8)),
    "warmup_start": (lambda o: LinearWarmup(o, 5, start_factor=0.3), lambda o: S.LinearLR(o, 0.3, 1.0, 5)),
    "warmup_cosine": (
        lambda o: LinearWarmup(o, 6, after=CosineAnnealingLR(o, 18)),
        lambda o: S.SequentialLR(o, [S.LinearLR(o, 1 / 6, 1.0, 6), S.CosineAnnealingLR(o, 18)], milestones=[6]),
    ),
    "warmup_step": (
        lambda o: LinearWarmup(o, 4, start_factor=0.5, after=StepLR(o, 5, gamma=0.3)),
        lambda o: S.SequentialLR(o, [S.LinearLR(o, 0.5, 1.0, 4), S.StepLR(o, 5, gamma=0.3)], milestones=[4]),
    ),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_matches_torch_lr_sequence(name):
    ours, theirs = SCHEDULES[name]
    got = lr_sequence(ours(ours_opt(0.2)))
    np.testing.assert_allclose(got, torch_lr_sequence(theirs, 0.2), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ["cosine", "warmup_cosine"])
def test_schedule_state_dict_resumes_the_sequence(name):
    make = SCHEDULES[name][0]
    schedule = make(ours_opt(0.2))
    lr_sequence(schedule, 10)
    saved = schedule.state_dict()
    expected = lr_sequence(schedule, 10)

    resumed = make(ours_opt(0.7))  # base lr and position both come from the checkpoint
    resumed.load_state_dict(save_and_reload(saved))
    assert resumed.optimizer.lr == expected[0]
    assert lr_sequence(resumed, 10) == expected


# ---- argument checks -------------------------------------------------------------------


def one_param():
    return [Parameter(np.zeros(2))]


BAD_ARGUMENTS = [
    (lambda: SGD(one_param(), lr=-0.1), "lr"),
    (lambda: SGD(one_param(), lr=math.nan), "lr"),
    (lambda: SGD(one_param(), lr=0.1, momentum=-0.5), "momentum"),
    (lambda: SGD(one_param(), lr=0.1, nesterov=True), "nesterov"),
    (lambda: SGD(one_param(), lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "nesterov"),
    (lambda: SGD(one_param(), lr=0.1, weight_decay=-1e-4), "weight_decay"),
    (lambda: SGD([], lr=0.1), "params"),
    (lambda: SGD([Parameter(np.zeros(2))] * 2, lr=0.1), "params"),
    (lambda: Adam(one_param(), betas=(1.0, 0.999)), r"betas\[0\]"),
    (lambda: Adam(one_param(), betas=(0.9, -0.1)), r"betas\[1\]"),
    (lambda: Adam(one_param(), betas=0.9), "betas"),
    (lambda: Adam(one_param(), eps=-1e-8), "eps"),
    (lambda: AdamW(one_param(), weight_decay=-0.01), "weight_decay"),
    (lambda: clip_grad_norm_(one_param(), -1.0), "max_norm"),
    (lambda: clip_grad_norm_(one_param(), 1.0, norm_type=0), "norm_type"),
    (lambda: clip_grad_norm_(one_param(), 1.0, norm_type="two"), "norm_type"),
    (lambda: clip_grad_value_(one_param(), -0.1), "clip_value"),
    (lambda: StepLR(ours_opt(0.1), step_size=0), "step_size"),
    (lambda: CosineAnnealingLR(ours_opt(0.1), T_max=0), "T_max"),
    (lambda: CosineAnnealingLR(ours_opt(0.1), T_max=10, eta_min=-1.0), "eta_min"),
    (lambda: LinearWarmup(ours_opt(0.1), warmup_steps=0), "warmup_steps"),
    (lambda: LinearWarmup(ours_opt(0.1), 5, start_factor=0.0), "start_factor"),
    (lambda: LinearWarmup(ours_opt(0.1), 5, after=StepLR(ours_opt(0.1), 3)), "after"),
]


@pytest.mark.parametrize("make, argument", BAD_ARGUMENTS)
def test_bad_argument_names_the_argument(make, argument):
    with pytest.raises(ValueError, match=argument):
        make()


def test_setting_a_negative_lr_is_refused():
    opt = Adam(one_param())
    with pytest.raises(ValueError, match="lr"):
        opt.lr = -1e-3


def test_params_of_the_wrong_type_are_refused():
    with pytest.raises(TypeError, match="params"):
        SGD([np.zeros(2)], lr=0.1)
    with pytest.raises(TypeError, match="optimizer"):
        StepLR(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1), 3)


# ---- the weights' moving average ---------------------------------------------------------


def value_sequence(dtype, steps=12, seed=0):
    """Parameter values after each of ``steps`` updates: a drift plus noise, as training gives."""
    rng = np.random.default_rng(seed)
    start = rng.normal(size=(3, 4)), rng.normal(size=5)
    return [[(a + 0.3 * t + rng.normal(scale=0.5, size=a.shape)).astype(dtype) for a in start] for t in range(steps)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("decay", [0.5, 0.9, 0.999])
def test_weight_average_is_the_discounted_mean_of_the_values_seen(dtype, decay):
    values = value_sequence(dtype)
    params = [Parameter(v.copy()) for v in values[0]]
    average = WeightAverage(params, decay)
    for t, step_values in enumerate(values, start=1):
        for p, v in zip(params, step_values):
            p.data[...] = v
        average.update()
        weights = decay ** np.arange(t - 1, -1, -1, dtype=np.float64)  # decay^(t−s), s = 1…t
        for i, got in enumerate(average.averages):
            expected = sum(w * values[s][i].astype(np.float64) for s, w in enumerate(weights)) / weights.sum()
            assert got.dtype == dtype
            assert rel_err(got, expected) <= TOL[dtype], (t, i)


def test_weight_average_equals_torch_averaged_model_with_its_avg_fn():
    from torch.optim.swa_utils import AveragedModel

    decay, values = 0.8, value_sequence(np.float64, seed=3)
    params = [Parameter(v.copy()) for v in values[0]]
    average = WeightAverage(params, decay)
    module = torch.nn.ParameterList([torch.nn.Parameter(torch.tensor(v)) for v in values[0]])
    # n: the updates before this one, a tensor (int(n): a float to the power of an int64 tensor is float32)
    theirs = AveragedModel(module, avg_fn=lambda avg, p, n: avg + (p - avg) * (1 - decay) / (1 - decay ** (int(n) + 1)))
    for step_values in values:
        for p, q, v in zip(params, module, step_values):
            p.data[...] = v
            q.data.copy_(torch.tensor(v))
        average.update()
        theirs.update_parameters(module)
    for ours, expected in zip(average.averages, theirs.module):
        np.testing.assert_allclose(ours, expected.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_weight_average_swaps_in_and_out_and_resumes_from_its_state_dict():
    values = value_sequence(np.float32)
    params = [Parameter(v.copy()) for v in values[0]]
    average = WeightAverage(params, 0.7)
    for step_values in values[:6]:
        for p, v in zip(params, step_values):
            p.data[...] = v
        average.update()
    with pytest.raises(RuntimeError, match="inside"), average.swapped():
        for p, a in zip(params, average.averages):
            np.testing.assert_array_equal(p.data, a)
        raise RuntimeError("inside")
    for p, v in zip(params, values[5]):  # the live values are back, after an exception too
        np.testing.assert_array_equal(p.data, v)

    resumed = WeightAverage([Parameter(v.copy()) for v in values[5]], 0.7)
    resumed.load_state_dict(save_and_reload(average.state_dict()))
    for step_values in values[6:]:
        for ours in (average, resumed):
            for p, v in zip(ours.params, step_values):
                p.data[...] = v
            ours.update()
    for a, b in zip(average.averages, resumed.averages):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"average.1: expected shape \(5,\)"):
        resumed.load_state_dict({"updates": 3, "average.0": np.zeros((3, 4)), "average.1": np.zeros(4)})


@pytest.mark.parametrize("decay", [0, 1, 1.5, -0.1, True, "0.9"])
def test_weight_average_refuses_a_decay_outside_0_1(decay):
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(one_param(), decay)
