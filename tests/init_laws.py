"""The laws PyTorch's default initialisation draws from, as checks: ``--init torch`` is held to them
(tests/models/test_language_model.py, tests/models/test_sequence_model.py)."""

import numpy as np

# Each check's tolerance is 6 standard errors of the statistic for the sample's size n, so a
# correct draw fails about once in 10⁸ checks, while a wrong law (another bound, a constant
# block, a uniform for a normal) moves the statistic by many standard errors at these sizes.
SIGMAS = 6.0


def assert_uniform(x, a, name):
    """x ~ U(−a, a): mean 0 (s.e. a/√(3n)), std a/√3 (s.e. a/√(15n)), every value within ±a, the
    largest |x| near a (P(max |x| < a(1 − 40/n)) = (1 − 40/n)ⁿ ≈ e⁻⁴⁰), half of them within ±a/2."""
    x, n = np.asarray(x, np.float64).ravel(), x.size
    assert abs(x.mean()) < SIGMAS * a / np.sqrt(3 * n), f"{name}: mean {x.mean()} for U(±{a})"
    assert abs(x.std() - a / np.sqrt(3)) < SIGMAS * a / np.sqrt(15 * n), f"{name}: std {x.std()}, U(±{a}) has {a / np.sqrt(3)}"
    assert np.abs(x).max() <= a * (1 + 1e-6), f"{name}: {np.abs(x).max()} outside ±{a}"
    assert np.abs(x).max() > a * (1 - 40 / n), f"{name}: max |x| {np.abs(x).max()} far below the bound {a}"
    inner = np.mean(np.abs(x) < a / 2)
    assert abs(inner - 0.5) < SIGMAS * np.sqrt(0.25 / n), f"{name}: {inner:.3f} of the values within ±a/2, not 1/2"


def assert_standard_normal(x, name):
    """x ~ N(0, 1): mean 0 (s.e. 1/√n), std 1 (s.e. 1/√(2n)), P(|x| > 2) = 0.0455 (a uniform of std 1 has none)."""
    x, n = np.asarray(x, np.float64).ravel(), x.size
    assert abs(x.mean()) < SIGMAS / np.sqrt(n), f"{name}: mean {x.mean()} for N(0, 1)"
    assert abs(x.std() - 1) < SIGMAS / np.sqrt(2 * n), f"{name}: std {x.std()} for N(0, 1)"
    p = 0.04550026
    tail = np.mean(np.abs(x) > 2)
    assert abs(tail - p) < SIGMAS * np.sqrt(p * (1 - p) / n), f"{name}: {tail:.4f} of the values beyond ±2, N(0, 1) has {p:.4f}"


def torch_laws(torch_model):
    """{parameter name: ("normal",) or ("uniform", a)} as torch 2.x's reset_parameters draws them:
    Embedding normal_; Linear kaiming_uniform_(a=√5) = U(±1/√in_features), its bias likewise;
    RNNBase and RNNCellBase every parameter U(±1/√hidden_size)."""
    nn = __import__("torch").nn
    laws = {}
    for prefix, module in torch_model.named_modules():
        own = {f"{prefix}.{k}" if prefix else k: p for k, p in module.named_parameters(recurse=False)}
        if isinstance(module, nn.Embedding):
            laws.update({k: ("normal",) for k in own})
        elif isinstance(module, nn.Linear):
            laws.update({k: ("uniform", 1 / np.sqrt(module.in_features)) for k in own})
        elif isinstance(module, (nn.RNNBase, nn.RNNCellBase)):
            laws.update({k: ("uniform", 1 / np.sqrt(module.hidden_size)) for k in own})
    return laws


def assert_law(x, law, name):
    if law[0] == "normal":
        assert_standard_normal(x, name)
    else:
        assert_uniform(x, law[1], name)
