"""rnnkit: recurrent neural networks on NumPy, with hand-written BPTT, equal to PyTorch.

``rnnkit.nn`` is the engine (NumPy alone); ``rnnkit.train`` and ``rnnkit.load`` mirror the
``rnnkit`` command for notebooks.
"""

from .version import __version__


def train(task, out, resume=False, quiet=False, overwrite=False, callbacks=(), **options):
    from .api import train as _train  # deferred: `import rnnkit.nn` stays NumPy-only

    return _train(task, out, resume=resume, quiet=quiet, overwrite=overwrite, callbacks=callbacks, **options)


def load(model_dir):
    from .api import load as _load

    return _load(model_dir)


def import_weights(task, weights, out, overwrite=False, quiet=False, seed=0, **options):
    from .api import import_weights as _import

    return _import(task, weights, out, overwrite=overwrite, quiet=quiet, seed=seed, **options)


def keep_freed_memory():
    """Let glibc reuse freed arrays instead of returning them to the OS (see rnnkit.nn.allocator)."""
    from .nn.allocator import keep_freed_memory as _keep

    return _keep()
