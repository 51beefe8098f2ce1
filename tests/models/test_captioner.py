"""The captioner: seq2seq's decoder started from image features. Gradients by finite differences
(parameters and features), its torch twin, decoding, and bad inputs."""

import numpy as np
import pytest
from gradcheck import numerical_grad, rel_err

from rnnkit.models.captioner import Captioner
from rnnkit.nn import no_grad

F, V = 5, 7
BOS, EOS = 1, 2


def make(cell="lstm", seed=0, **kw):
    return Captioner(F, V, embed_size=3, hidden_size=4, cell=cell, dtype=np.float64, rng=seed, **kw)


def batch(seed=1):
    """Three images and captions of 4, 2 and 3 steps (bos/eos included), padded to 4."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((3, F)), rng.integers(0, V, (4, 3)), rng.integers(0, V, (4, 3)), np.array([4, 2, 3])


@pytest.mark.parametrize("cell, layers, dropout", [("lstm", 1, 0.0), ("gru", 1, 0.0), ("lstm", 2, 0.3), ("gru", 2, 0.3)])
def test_gradients_of_parameters_and_features_match_finite_differences(cell, layers, dropout):
    model = make(cell, num_layers=layers, dropout=dropout)
    features, tgt_in, tgt_out, lengths = batch()
    state = model.rng.bit_generator.state  # the same dropout masks in every pass

    def loss():
        model.rng.bit_generator.state = state
        with no_grad():
            return model(features, tgt_in, tgt_out, lengths)

    model.rng.bit_generator.state = state
    model.zero_grad()
    model(features, tgt_in, tgt_out, lengths)
    d_features = model.backward()
    assert rel_err(d_features, numerical_grad(loss, features)) < 1e-6
    for name, p in model.named_parameters():
        assert rel_err(p.grad, numerical_grad(loss, p.data)) < 1e-6, name
    assert {"bridge_h_l0.weight", "tgt_embedding.weight", "decoder_l0.weight_hh", "head.weight"} <= dict(model.named_parameters()).keys()
    assert any(n.startswith("bridge_c_l") for n, _ in model.named_parameters()) == (cell == "lstm")


def test_padding_past_a_captions_length_changes_nothing():
    model = make()
    features, tgt_in, tgt_out, lengths = batch()
    other_in, other_out = tgt_in.copy(), tgt_out.copy()
    other_in[2:, 1], other_out[2:, 1] = 0, 6  # caption 1 is 2 steps long
    assert model(features, tgt_in, tgt_out, lengths) == model(features, other_in, other_out, lengths)


def test_greedy_is_beam_search_of_width_one_and_a_wider_beam_finds_likelier_captions():
    model = make(seed=3)
    features = np.random.default_rng(4).standard_normal((4, F))
    greedy = model.greedy(features, bos=BOS, eos=EOS, max_len=6)
    beam1 = model.beam_search(features, bos=BOS, eos=EOS, beam=1, max_len=6)
    assert [h.tokens for h in greedy] == [h.tokens for h in beam1]
    wide = model.beam_search(features, bos=BOS, eos=EOS, beam=4, max_len=6)
    assert all(w.log_prob >= g.log_prob - 1e-9 for w, g in zip(wide, greedy) if w.finished and g.finished)
    assert all(h.attention is None for h in greedy)


def test_the_image_decides_the_caption():
    """A few hundred Adam steps on two images with two captions: each image gets its own."""
    from rnnkit.nn import Adam

    model = Captioner(2, 5, embed_size=4, hidden_size=8, rng=0)
    features = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    captions = np.array([[BOS, 3, 4], [BOS, 4, 3]]).T, np.array([[3, 4, EOS], [4, 3, EOS]]).T
    opt = Adam(model.parameters(), lr=0.05)
    for _ in range(150):
        model.zero_grad()
        model(features, *captions)
        model.backward()
        opt.step()
    assert [h.tokens for h in model.greedy(features, bos=BOS, eos=EOS)] == [[3, 4], [4, 3]]


def test_bad_features_are_named():
    model = make()
    _, tgt_in, tgt_out, lengths = batch()
    with pytest.raises(ValueError, match=r"features: expected shape \(batch >= 1, 5\)"):
        model(np.zeros((3, 4)), tgt_in, tgt_out, lengths)
    with pytest.raises(ValueError, match="features: expected finite"):
        model(np.full((3, F), np.nan), tgt_in, tgt_out, lengths)
    with pytest.raises(ValueError, match="feature_size"):
        Captioner(0, V)


def test_the_captioner_is_its_torch_twin():
    """tanh(Linear(f)) as h_0 and c_0, Embedding → LSTMCell → Linear, cross-entropy over the real
    tokens: the loss and every gradient equal torch's (float64)."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    model = make("lstm", seed=5)
    features, tgt_in, tgt_out, lengths = batch(6)
    model.zero_grad()
    loss = model(features, tgt_in, tgt_out, lengths)
    d_features = model.backward()

    twin = nn.ModuleDict({"bridge_h_l0": nn.Linear(F, 4), "bridge_c_l0": nn.Linear(F, 4), "tgt_embedding": nn.Embedding(V, 3),
                          "decoder_l0": nn.LSTMCell(3, 4), "head": nn.Linear(4, V)}).double()
    twin.load_state_dict({k: torch.from_numpy(p.data) for k, p in model.named_parameters()})
    f = torch.from_numpy(features).requires_grad_()
    h, c = torch.tanh(twin["bridge_h_l0"](f)), torch.tanh(twin["bridge_c_l0"](f))
    logits = []
    for y in torch.from_numpy(tgt_in):
        h, c = twin["decoder_l0"](twin["tgt_embedding"](y), (h, c))
        logits.append(twin["head"](h))
    inside = torch.arange(4)[:, None] < torch.from_numpy(lengths)[None, :]
    target = torch.where(inside, torch.from_numpy(tgt_out), torch.tensor(-100))
    expected = nn.functional.cross_entropy(torch.stack(logits).reshape(-1, V), target.reshape(-1), ignore_index=-100)
    expected.backward()
    assert abs(loss - expected.item()) < 1e-12
    assert rel_err(d_features, f.grad.numpy()) < 1e-10
    for name, p in model.named_parameters():
        assert rel_err(p.grad, dict(twin.named_parameters())[name].grad.numpy()) < 1e-10, name
