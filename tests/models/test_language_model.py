import numpy as np
import pytest

from gradcheck import numerical_grad, rel_err
from init_laws import assert_law, assert_standard_normal, assert_uniform, torch_laws
from rnnkit.models.language_model import LanguageModel
from rnnkit.models.sampling import check_sampling, generate_ids, next_token_distribution, sample_next
from rnnkit.nn import CrossEntropyLoss, no_grad


def loss_and_grads(model, ids, targets, condition=None, state=None):
    ce = CrossEntropyLoss()
    logits, _ = model(ids, state, condition)
    loss = ce(logits, targets)
    model.zero_grad()
    model.backward(ce.backward())
    return loss


@pytest.mark.parametrize(
    "opts",
    [
        dict(cell="lstm", num_layers=2),
        dict(cell="gru", num_layers=1, tie_weights=True, embed_size=4, hidden_size=4),
        dict(cell="rnn", num_layers=2, num_conditions=3),
        dict(cell="lstm", num_layers=2, num_conditions=2),
    ],
)
def test_language_model_gradients_match_finite_differences(opts):
    opts = {"embed_size": 3, "hidden_size": 4, **opts}
    model = LanguageModel(7, dtype=np.float64, rng=0, **opts)
    rng = np.random.default_rng(1)
    ids, targets = rng.integers(0, 7, (5, 2)), rng.integers(0, 7, (5, 2))
    condition = np.array([1, 0]) if opts.get("num_conditions") else None
    ce = CrossEntropyLoss()

    def loss():
        with no_grad():
            return ce(model(ids, None, condition)[0], targets)

    loss_and_grads(model, ids, targets, condition)
    names = [n for n, _ in model.named_parameters()]
    if opts.get("tie_weights"):
        assert "head.weight" not in names  # one matrix, reached first as the embedding
        every_name = [n for n, _ in model.named_parameters(remove_duplicate=False)]  # torch's state_dict names
        assert sorted(every_name) == sorted([*names, "head.weight"])
        assert model.head.weight is model.embedding.weight
    if condition is not None:
        assert np.linalg.norm(model.condition.weight.grad) > 0
    for name, p in model.named_parameters():
        assert rel_err(p.grad, numerical_grad(loss, p.data)) < 1e-6, name


def test_condition_changes_the_initial_state_and_its_output():
    model = LanguageModel(5, 3, 4, num_conditions=2, rng=0, dtype=np.float64)
    model.condition.weight.data[...] = np.random.default_rng(0).standard_normal(model.condition.weight.shape)
    ids = np.zeros((3, 1), dtype=int)
    with no_grad():
        a, _ = model(ids, None, np.array([0]))
        b, _ = model(ids, None, np.array([1]))
    assert not np.allclose(a, b)


def test_model_without_conditions_refuses_one():
    model = LanguageModel(5, 3, 4, rng=0)
    with pytest.raises(ValueError, match="condition: this model was trained without conditions"):
        model(np.zeros((2, 1), dtype=int), None, np.array([0]))


def test_tying_needs_equal_sizes():
    with pytest.raises(ValueError, match="tie_weights: needs hidden_size == embed_size"):
        LanguageModel(5, 3, 4, tie_weights=True)


def test_top_k_and_top_p_truncate_the_distribution():
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    p = next_token_distribution(logits, top_k=2)
    np.testing.assert_allclose(p, [0.625, 0.375, 0, 0])
    p = next_token_distribution(logits, top_p=0.75)  # 0.5 + 0.3 reaches 0.75
    np.testing.assert_allclose(p, [0.625, 0.375, 0, 0])
    p = next_token_distribution(logits, temperature=0.5)
    np.testing.assert_allclose(p, np.array([0.25, 0.09, 0.0225, 0.0025]) / 0.365)


def test_greedy_is_the_arg_max_and_sampling_follows_the_distribution():
    rng = np.random.default_rng(0)
    logits = np.log(np.array([0.1, 0.6, 0.3]))
    assert sample_next(logits, rng, temperature=0) == 1
    draws = np.bincount([sample_next(logits, rng) for _ in range(4000)], minlength=3) / 4000
    np.testing.assert_allclose(draws, [0.1, 0.6, 0.3], atol=0.03)


@pytest.mark.parametrize("args,match", [((-1.0, 0, 1.0), "temperature"), ((1.0, -2, 1.0), "top_k"), ((1.0, 0, 0.0), "top_p")])
def test_bad_sampling_arguments_are_named(args, match):
    with pytest.raises(ValueError, match=match):
        check_sampling(*args)


def test_generation_is_reproducible_and_streams_step_by_step():
    model = LanguageModel(6, 3, 5, rng=0)
    first = list(generate_ids(model, [1, 2], 20, np.random.default_rng(3)))
    again = list(generate_ids(model, [1, 2], 20, np.random.default_rng(3)))
    assert first == again and len(first) == 20
    # step-by-step with the carried state equals reading the whole sequence at once
    with no_grad():
        whole, _ = model(np.array([1, 2] + first[:-1])[:, None])
    greedy = list(generate_ids(model, [1, 2], 5, np.random.default_rng(0), temperature=0))
    assert greedy[0] == int(np.argmax(whole[1, 0]))


# ---- init="torch": PyTorch's defaults, in law (the checks: tests/init_laws.py) ----------------------
# big enough for every statistic above to be sharp (the smallest tensor, a bias of 4·H, has 512 values), small enough to build in ~50 ms
V, E, H = 97, 64, 128


def torch_lm(torch, kind, tie=False):
    """The twin of LanguageModel in torch, as benchmarks/bench_lm.py's TorchLM (same names)."""

    class TorchLM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(V, E if not tie else H)
            self.rnn = getattr(torch.nn, kind)(E if not tie else H, H, 2)
            self.head = torch.nn.Linear(H, V)
            if tie:
                self.head.weight = self.embedding.weight

    torch.manual_seed(0)
    return TorchLM()


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_torch_init_has_torchs_names_shapes_and_laws(cell):
    torch = pytest.importorskip("torch")
    ref = torch_lm(torch, cell.upper())
    ours = LanguageModel(V, E, H, 2, cell, rng=0, init="torch")
    theirs = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    mine = ours.state_dict()
    assert {k: v.shape for k, v in mine.items()} == {k: v.shape for k, v in theirs.items()}
    laws = torch_laws(ref)
    assert set(laws) == set(theirs)
    for name, law in laws.items():
        assert_law(theirs[name], law, f"torch {name}")  # the checks hold torch's own draw
        assert_law(mine[name], law, name)


def test_torch_init_with_tied_weights_keeps_the_embeddings_normal_draw():
    torch = pytest.importorskip("torch")
    ref = torch_lm(torch, "LSTM", tie=True)
    ours = LanguageModel(V, H, H, 2, "lstm", tie_weights=True, rng=0, init="torch")
    assert ours.head.weight is ours.embedding.weight
    assert set(ours.state_dict()) <= set(ref.state_dict()) | {"head.weight"}
    assert_standard_normal(ours.head.weight.data, "tied head.weight")
    assert_uniform(ours.head.bias.data, 1 / np.sqrt(H), "head.bias")
    tied = LanguageModel(V, H, H, 2, "lstm", tie_weights=True, rng=0)  # rnnkit's: U(±0.1), as AWD-LSTM
    assert tied.head.weight is tied.embedding.weight
    assert_uniform(tied.embedding.weight.data, 0.1, "rnnkit's tied embedding")


def test_forget_gate_bias_is_one_under_rnnkit_init_and_torchs_draw_under_torch_init():
    forget = slice(H, 2 * H)  # gate order i, f, g, o
    rnnkit_lm = LanguageModel(V, E, H, 2, "lstm", rng=0)
    torch_lm_ = LanguageModel(V, E, H, 2, "lstm", rng=0, init="torch")
    for k in range(2):
        b_ih, b_hh = (getattr(rnnkit_lm.rnn, f"bias_{s}_l{k}").data[forget] for s in ("ih", "hh"))
        assert np.all(b_ih == 1) and np.all(b_hh == 0)
        both = np.concatenate([getattr(torch_lm_.rnn, f"bias_{s}_l{k}").data[forget] for s in ("ih", "hh")])
        assert_uniform(both, 1 / np.sqrt(H), f"forget-gate biases of layer {k}")


def test_torch_init_skips_every_kinds_own_initialisation():
    irnn = LanguageModel(V, E, H, 1, "irnn", rng=0, init="torch")  # rnnkit's IRNN: W_hh = I, W_ih ~ N(0, 0.001²)
    for name, p in irnn.rnn.named_parameters():
        assert_uniform(p.data, 1 / np.sqrt(H), name)
    conditional = LanguageModel(V, E, H, 1, "lstm", num_conditions=3, rng=0, init="torch")
    assert_standard_normal(conditional.condition.weight.data, "condition.weight")  # rnnkit's: ×0.1


def test_an_unknown_init_is_named():
    with pytest.raises(ValueError, match="init: expected one of rnnkit, torch, got 'foo'"):
        LanguageModel(V, E, H, 1, "lstm", init="foo")
