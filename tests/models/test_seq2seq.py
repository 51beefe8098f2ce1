"""The encoder-decoder: gradients by finite differences, padding, attention, decoding, scheduled sampling."""

import numpy as np
import pytest
from gradcheck import numerical_grad, rel_err

from rnnkit.models.seq2seq import ATTENTIONS, Seq2Seq, gnmt_length_penalty
from rnnkit.nn import Adam, cells, clip_grad_norm_, no_grad

SRC_V, TGT_V = 7, 6
BOS, EOS = 1, 2
COMBOS = [(cell, attention) for cell in ("lstm", "gru") for attention in ATTENTIONS]


def make(cell="lstm", attention="bahdanau", seed=0, **kw):
    kw.setdefault("bidirectional_encoder", attention != "luong-dot")
    return Seq2Seq(SRC_V, TGT_V, embed_size=2, hidden_size=2, cell=cell, attention=attention, dtype=np.float64,
                   rng=seed, **kw)


def batch(seed=1):
    """S = 5 source steps and T = 4 target steps, every sequence of its own length."""
    rng = np.random.default_rng(seed)
    src, tgt_in, tgt_out = rng.integers(0, SRC_V, (5, 3)), rng.integers(0, TGT_V, (4, 3)), rng.integers(0, TGT_V, (4, 3))
    return src, np.array([5, 2, 4]), tgt_in, tgt_out, np.array([3, 4, 1])


def gradients(model, data, **kw):
    model.zero_grad()
    loss = model(*data, **kw)
    model.backward()
    return loss, {name: p.grad.copy() for name, p in model.named_parameters()}


def check_gradients(model, data, entries=None, eps=1e-4, tol=1e-6, **kw):
    """Every parameter against central differences: all its entries, or ``entries`` random ones."""
    state = model.rng.bit_generator.state  # the same dropout masks and sampling draws in every pass

    def loss():
        model.rng.bit_generator.state = state
        with no_grad():
            return model(*data, **kw)

    model.rng.bit_generator.state = state
    _, grads = gradients(model, data, **kw)
    pick = np.random.default_rng(0)
    for name, p in model.named_parameters():
        flat = p.data.reshape(-1)
        idx = np.arange(flat.size) if entries is None else pick.choice(flat.size, min(entries, flat.size), replace=False)
        view = flat[idx]  # a copy: perturbed and written back one entry at a time below

        def loss_at():
            flat[idx] = view
            return loss()

        # eps = 1e-4: the attention's gradients are ~1e-5 in a model this small, where the default
        # step's round-off alone reaches a relative 1e-6
        numeric = numerical_grad(loss_at, view, eps=eps)
        flat[idx] = view
        assert rel_err(grads[name].reshape(-1)[idx], numeric) < tol, name


@pytest.mark.parametrize("cell, attention", COMBOS)
def test_gradients_match_finite_differences(cell, attention):
    check_gradients(make(cell, attention), batch())


@pytest.mark.parametrize("cell, attention", [("lstm", "bahdanau"), ("gru", "luong-general")])
def test_gradients_with_two_layers_dropout_and_scheduled_sampling(cell, attention):
    model = make(cell, attention, num_layers=2, dropout=0.3)
    check_gradients(model, batch(), entries=6, sampling_prob=0.5)


@pytest.mark.parametrize("cell, attention", [("lstm", "bahdanau"), ("gru", "luong-general"), ("lstm", "luong-dot")])
def test_padding_changes_neither_loss_nor_gradients(cell, attention):
    model = make(cell, attention)
    src, sl, ti, to, tl = batch()
    loss, grads = gradients(model, (src, sl, ti, to, tl))
    # other ids past every length, even ones outside the vocabulary, and two more padded steps each
    src2 = np.full((7, 3), 99)
    ti2, to2 = np.full((6, 3), -1), np.full((6, 3), 5)
    for b in range(3):
        src2[: sl[b], b] = src[: sl[b], b]
        ti2[: tl[b], b], to2[: tl[b], b] = ti[: tl[b], b], to[: tl[b], b]
    loss2, grads2 = gradients(model, (src2, sl, ti2, to2, tl))
    assert loss2 == pytest.approx(loss, rel=1e-12)
    for name in grads:
        np.testing.assert_allclose(grads2[name], grads[name], rtol=1e-10, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("attention", ["bahdanau", "luong-dot", "luong-general"])
def test_attention_sums_to_one_over_the_source_and_is_zero_past_its_length(attention):
    model = make("gru", attention)
    src, sl, ti, _, tl = batch()
    _, alpha = model.scores(src, sl, ti, tl)
    assert alpha.shape == (4, 3, 5)
    for b in range(3):
        np.testing.assert_allclose(alpha[: tl[b], b, : sl[b]].sum(axis=1), 1.0, rtol=1e-12)
        assert np.all(alpha[:, b, sl[b] :] == 0) and np.all(alpha[tl[b] :, b] == 0)
        assert np.all(alpha[: tl[b], b, : sl[b]] > 0)
    for b, hyp in enumerate(model.greedy(src, sl, bos=BOS, eos=EOS, max_len=6)):
        assert hyp.attention.shape == (len(hyp.tokens), sl[b])
        np.testing.assert_allclose(hyp.attention.sum(axis=1), 1.0, rtol=1e-12)


def decoder(cell, attention, seed):
    """An untrained model whose outputs depend on the source: every parameter three times its
    initial size. The seeds below give outputs that end with eos and outputs cut at max_len."""
    model = Seq2Seq(SRC_V, TGT_V, embed_size=3, hidden_size=4, cell=cell, attention=attention,
                    bidirectional_encoder=attention != "luong-dot", dtype=np.float64, rng=seed)
    for p in model.parameters():
        p.data *= 3
    return model


DECODERS = [("lstm", "bahdanau", 0), ("gru", "luong-general", 3), ("lstm", "none", 4), ("gru", "luong-dot", 2)]
SOURCES = np.random.default_rng(4).integers(0, SRC_V, (5, 6)), np.array([5, 1, 3, 4, 2, 5])


def own_log_prob(model, src, length, tokens, finished):
    """log p(tokens (, eos) | src) by teacher forcing the model on its own output."""
    y = list(tokens) + ([EOS] if finished else [])
    logits, _ = model.scores(src[:length, None], [length], np.array([BOS] + y[:-1])[:, None])
    z = logits[:, 0].astype(np.float64)
    logp = z - np.log(np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1, keepdims=True)) - z.max(axis=1, keepdims=True)
    return float(logp[np.arange(len(y)), y].sum())


@pytest.mark.parametrize("cell, attention, seed", DECODERS)
def test_greedy_decoding_is_beam_search_with_beam_one(cell, attention, seed):
    model = decoder(cell, attention, seed)
    greedy = model.greedy(*SOURCES, bos=BOS, eos=EOS, max_len=6)
    beam = model.beam_search(*SOURCES, bos=BOS, eos=EOS, beam=1, max_len=6)
    assert {h.finished for h in greedy} == {True, False}  # both ways of ending are compared
    for g, b in zip(greedy, beam):
        assert g.tokens == b.tokens and g.finished == b.finished
        assert g.log_prob == pytest.approx(b.log_prob, rel=1e-12) and b.score == pytest.approx(b.log_prob, rel=1e-12)
        if attention != "none":
            np.testing.assert_allclose(g.attention, b.attention, rtol=1e-12)
        else:
            assert g.attention is None and b.attention is None


@pytest.mark.parametrize("cell, attention, seed", DECODERS)
def test_beam_search_finds_outputs_at_least_as_likely_as_greedy(cell, attention, seed):
    model = decoder(cell, attention, seed)
    src, lengths = SOURCES
    greedy = model.greedy(src, lengths, bos=BOS, eos=EOS, max_len=6)
    beam = model.beam_search(src, lengths, bos=BOS, eos=EOS, beam=4, max_len=6)
    for b, (g, h) in enumerate(zip(greedy, beam)):
        assert h.log_prob >= g.log_prob - 1e-12
        # the reported score is the model's own log-probability of what it returns
        assert h.log_prob == pytest.approx(own_log_prob(model, src[:, b], lengths[b], h.tokens, h.finished), rel=1e-9)
    assert any(h.log_prob > g.log_prob + 1e-9 for g, h in zip(greedy, beam))  # the search did find better ones


def test_length_penalty_is_gnmt_and_ranks_the_returned_hypothesis():
    assert gnmt_length_penalty(7, 0.0) == 1.0 and gnmt_length_penalty(7, 0.6) == pytest.approx(2.0**0.6)
    model = decoder(*DECODERS[0])
    for h in model.beam_search(*SOURCES, bos=BOS, eos=EOS, beam=3, max_len=6, length_penalty=0.8):
        assert h.score == pytest.approx(h.log_prob / gnmt_length_penalty(len(h.tokens) + h.finished, 0.8))


def test_decoding_keeps_nothing_and_restores_the_training_mode():
    model = make("lstm", "luong-general", dropout=0.5)
    src, sl, ti, _, tl = batch()
    first = model.greedy(src, sl, bos=BOS, eos=EOS, max_len=4)
    model.beam_search(src, sl, bos=BOS, eos=EOS, beam=2, max_len=4)
    model.scores(src, sl, ti, tl)
    assert all(not m._caches for m in model.modules())
    assert all(m.training for m in model.modules())
    # eval mode inside: no dropout, so decoding twice gives the same result
    assert [h.tokens for h in model.greedy(src, sl, bos=BOS, eos=EOS, max_len=4)] == [h.tokens for h in first]


@pytest.mark.parametrize("cell, attention", [("lstm", "bahdanau"), ("gru", "luong-general")])
def test_scheduled_sampling_with_probability_zero_is_teacher_forcing(cell, attention):
    model = make(cell, attention)
    data = batch()
    state = model.rng.bit_generator.state
    loss, grads = gradients(model, data)
    loss0, grads0 = gradients(model, data, sampling_prob=0.0)
    assert loss0 == loss and model.rng.bit_generator.state == state  # no draws at all
    for name in grads:
        np.testing.assert_array_equal(grads0[name], grads[name], err_msg=name)


def test_scheduled_sampling_with_probability_one_feeds_the_models_own_predictions():
    model = make("gru", "bahdanau")
    src, sl, ti, to, tl = batch()
    fed = ti.copy()
    for t in range(1, len(ti)):  # the arg max of step t − 1 becomes the input of step t
        logits, _ = model.scores(src, sl, fed, tl)
        fed[t] = logits[t - 1].argmax(axis=1)
    assert np.any(fed[1:] != ti[1:])
    with no_grad():
        assert model(src, sl, ti, to, tl, sampling_prob=1.0) == pytest.approx(model(src, sl, fed, to, tl), rel=1e-12)


# ---- a task it must learn ---------------------------------------------------------------------


def reversal_batch(rng, B, symbols=6):
    """Sources of 2–5 symbols (ids 3 …) and their reversals; 0 pads."""
    n = rng.integers(2, 6, B)
    src, tgt_in, tgt_out = np.zeros((n.max(), B), int), np.zeros((n.max() + 1, B), int), np.zeros((n.max() + 1, B), int)
    for b in range(B):
        x = rng.integers(3, 3 + symbols, n[b])
        src[: n[b], b] = x
        tgt_in[0, b], tgt_in[1 : n[b] + 1, b] = BOS, x[::-1]
        tgt_out[: n[b], b], tgt_out[n[b], b] = x[::-1], EOS
    return src, n, tgt_in, tgt_out, n + 1


def test_beam_search_reverses_sequences_after_a_few_hundred_steps():
    model = Seq2Seq(9, 9, embed_size=8, hidden_size=16, cell="lstm", attention="bahdanau", rng=0)
    opt, rng, steps = Adam(model.parameters(), lr=0.02), np.random.default_rng(0), 400
    for step in range(steps):
        model.zero_grad()
        loss = model(*reversal_batch(rng, 16))
        model.backward()
        clip_grad_norm_(model.parameters(), 5.0)
        opt.lr = 0.02 * (1 - 0.9 * step / steps)
        opt.step()
    assert loss < 0.05
    src, lengths, *_ = reversal_batch(np.random.default_rng(123), 20)
    for b, h in enumerate(model.beam_search(src, lengths, bos=BOS, eos=EOS, beam=3)):
        assert h.tokens == src[: lengths[b], b][::-1].tolist() and h.finished
        # attending to the mirrored source position: the alignment is the anti-diagonal
        assert np.array_equal(h.attention.argmax(axis=1), np.arange(lengths[b])[::-1])


# ---- input checks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, match", [
    (dict(cell="mingru"), "cell: expected one of rnn, irnn, lstm, gru, .*got 'mingru'"),
    (dict(attention="dot"), "attention: expected one of bahdanau"),
    (dict(attention="luong-dot", bidirectional_encoder=True), "bidirectional_encoder=False"),
])
def test_bad_construction_is_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make(**kwargs)


def test_bad_inputs_are_named():
    model = make()
    src, sl, ti, to, tl = batch()
    bad_src = src.copy()
    bad_src[1, 1] = SRC_V  # inside row 1's length 2
    with pytest.raises(ValueError, match=r"src: id 7 at step 1 of sequence 1 is out of range; expected ids in \[0, 7\)"):
        model(bad_src, sl, ti, to, tl)
    bad_out = to.copy()
    bad_out[0, 2] = -3
    with pytest.raises(ValueError, match="tgt_out: id -3"):
        model(src, sl, ti, bad_out, tl)
    with pytest.raises(ValueError, match=r"src_lengths: expected lengths in \[1, 5\]"):
        model(src, [6, 2, 4], ti, to, tl)
    with pytest.raises(ValueError, match="tgt_lengths: expected one length per sequence, 3 in all"):
        model(src, sl, ti, to, [1, 2])
    with pytest.raises(ValueError, match=r"tgt_in: expected shape \(steps >= 1, batch=3\)"):
        model(src, sl, ti[:, :2], to, tl)
    with pytest.raises(ValueError, match="tgt_out: expected the shape of tgt_in"):
        model(src, sl, ti, to[:3], tl)
    with pytest.raises(ValueError, match="sampling_prob"):
        model(src, sl, ti, to, tl, sampling_prob=1.5)
    with pytest.raises(ValueError, match=r"eos: expected a target id in \[0, 6\)"):
        model.greedy(src, sl, bos=BOS, eos=6)
    with pytest.raises(ValueError, match="beam: expected an integer >= 1"):
        model.beam_search(src, sl, bos=BOS, eos=EOS, beam=0)
    with pytest.raises(ValueError, match="length_penalty"):
        model.beam_search(src, sl, bos=BOS, eos=EOS, length_penalty=-1)
    assert all(not m._caches for m in model.modules())  # every check comes before any forward step
    with pytest.raises(RuntimeError, match="Seq2Seq.backward called more times than forward"):
        model.backward()


@pytest.mark.parametrize("cell", cells.names(step=True))
def test_every_kind_with_a_cell_encodes_decodes_and_is_differentiated(cell):
    model = make(cell, "bahdanau", num_layers=2)
    rng = np.random.default_rng(0)
    for p in model.parameters():  # away from IRNN's tiny input weights, whose gradients are below round-off
        p.data += rng.normal(0, 0.3, p.shape)
    # the kinds' own gradients are checked to 1e-6 by the shared suite; here, that seq2seq carries
    # each kind's state through the bridge and the decoder (an error there is of order 1)
    check_gradients(model, batch(), entries=6, eps=1e-5, tol=1e-4)
    hypotheses = model.greedy(*SOURCES, bos=BOS, eos=EOS, max_len=6)
    assert len(hypotheses) == len(SOURCES[1]) and all(len(h.tokens) <= 6 for h in hypotheses)


def test_a_kinds_settings_reach_the_encoder_and_every_decoder_cell():
    model = Seq2Seq(7, 9, 4, 5, "zoneout", num_layers=2, rng=0, cell_settings={"zoneout_h": 0.3})
    assert model.encoder.zoneout_h == 0.3 and model.encoder.zoneout_c == 0.5
    assert [(c.zoneout_h, c.zoneout_c) for c in model._cells] == [(0.3, 0.5)] * 2
    with pytest.raises(ValueError, match="^p: lstm has no setting .p."):
        Seq2Seq(7, 9, 4, 5, "lstm", rng=0, cell_settings={"p": 0.3})
