"""The one trainer every task uses.

A task hands over a *run*: an object with

    train_step() -> (loss, n_tokens, n_terms)
                                       forward and backward of the next batch (grads accumulated);
                                       n_terms: how many terms the loss is the mean of (examples or
                                       tokens), which weighs a rank's share under data parallelism
    evaluate()   -> {"loss": ..., ...} validation metrics (the trainer calls it under no_grad)
    state_dict() / load_state_dict(d)  its own resumable state (data position, carried state):
                                       numpy arrays and JSON-able scalars

The trainer owns the rest: optimizer, schedule, clipping, the weights' moving average (``--ema``),
validation, early stopping, best and last checkpoints, progress bar, metrics log and loss curve.
Everything random is drawn from generators whose states are checkpointed, so a run killed and
resumed ends with the same weights as a run never interrupted.

Under ``mpiexec -n K`` (``parallel``) every rank runs this same loop on its share of each batch:
the gradients, the loss and the stop flags are summed across ranks once a step, so every rank
takes the same decisions; every rank validates (on its share, where the run shares the data out)
and takes rank 0's metrics; rank 0 alone writes.
"""

from __future__ import annotations

import collections
import contextlib
import math
import signal
import threading
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

from ..nn import SGD, Adam, AdamW, CosineAnnealingLR, LinearWarmup, StepLR, WeightAverage, clip_grad_norm_, grad_norm, no_grad
from ..nn.recurrent import RecurrentLayer
from ..nn.validation import NonFiniteError
from . import model_dir as md
from . import parallel


class TrainingError(RuntimeError):
    """Training cannot go on (diverged, or asked to resume what cannot be resumed)."""


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped a run after it saved a checkpoint; the message says how to resume."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


#: state.json's "state" as the trainer writes it (model_dir checks the file around it)
STATE_SCHEMA = {
    "type": "object",
    "required": ["step", "best", "bad_validations", "rng", "run"],
    "properties": {
        "step": {"type": "integer", "minimum": 0},
        "best": {"type": "number"},
        "bad_validations": {"type": "integer", "minimum": 0},
        "rng": {"type": "object", "additionalProperties": md.RNG_SCHEMA},
        "run": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},  # positions, counts, layout
        "schedule": {"type": ["object", "null"]},
        "window": {"type": "array", "prefixItems": [{"type": "finite"}, {"type": "integer", "minimum": 0},
                                                     {"type": "integer", "minimum": 0}], "minItems": 3, "maxItems": 3},
        "recent_losses": {"type": "array", "items": {"type": "finite"}},
        "exploding": {"type": "integer", "minimum": 0},
        "ema_updates": {"type": "integer", "minimum": 0},
    },
}

#: loss.png is redrawn at a validation at most this often (a drawing takes about half a second, more
#: than a small run's steps between validations), and once more when the run ends or is interrupted
PLOT_EVERY_S = 30.0

#: a loss above its bound this many steps in a row is divergence: with clipping, a run can spike
#: by 10^7 and recover within five steps, so a spike is not enough
EXPLODING_STEPS = 25


def check_options(options, checks: dict[str, bool]) -> None:
    """Raise the command line's error for the first option whose check is False: its flag, the
    value given and its help text (an options dataclass has a HELP dict)."""
    for name, ok in checks.items():
        if not ok:
            raise ValueError(f"--{name.replace('_', '-')}: invalid value {getattr(options, name)!r} ({options.HELP[name]})")


@dataclass
class TrainingOptions:
    steps: int = 2000
    lr: float = 2e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: str = "constant"
    warmup: int = 0
    clip: float = 5.0
    ema: float = 0.0
    valid_every: int = 200
    patience: int = 0
    seed: int = 0
    log_every: int = 10
    time_limit: float = 0.0
    diagnose_every: int = 0
    monitor: str = "loss"

    # the values an option takes (the command line lists them in its usage)
    CHOICES = {"optimizer": ("adam", "adamw", "sgd"), "schedule": ("constant", "cosine", "step")}
    HELP = {
        "steps": "optimizer steps in all (a resumed run may raise it)",
        "lr": "learning rate",
        "optimizer": "adam, adamw or sgd",
        "weight_decay": "L2 penalty (sgd, adam) or decoupled weight decay (adamw)",
        "momentum": "momentum for sgd",
        "schedule": "learning-rate schedule after warm-up: constant, cosine (to 0 at the last step) or step (x0.5 every quarter)",
        "warmup": "steps of linear learning-rate warm-up",
        "clip": "clip the gradients' global norm to this (0: no clipping)",
        "ema": "keep an exponential moving average of the weights with this decay a step (e.g. 0.99: about the "
               "last 100 steps; 0: off); validation, the best weights and the saved model use the average",
        "valid_every": "validate, checkpoint and keep the best weights every N steps",
        "patience": "stop after this many validations without improvement (0: never stop early)",
        "monitor": "the validation metric that picks the best weights and decides early stopping: loss, or another "
                   "the task reports; errors and perplexity count lower as better, scores (accuracy, macro_f1, f1, bleu, "
                   "chrf) higher (default: loss; transcribe: cer; caption: chrf)",
        "seed": "seed of every random draw (same seed, same weights)",
        "log_every": "write a metrics line every N steps",
        "time_limit": "stop after this many seconds of training (0: no limit)",
        "diagnose_every": "every N steps, log ‖∂L/∂h_t‖ per layer and time step and each parameter's gradient norm (0: never)",
    }
    # options a resumed run may change (recorded in config.json's history): the budget and the
    # step size, not the model, the data or the optimizer; SCHEDULE: those that shape the lr
    CHANGEABLE = ("steps", "time_limit", "patience", "log_every", "diagnose_every", "valid_every",
                  "lr", "clip", "schedule", "warmup")
    SCHEDULE = ("steps", "lr", "schedule", "warmup")

    def __post_init__(self):
        checks = {
            "steps": self.steps >= 1, "lr": self.lr > 0, "valid_every": self.valid_every >= 1,
            "clip": self.clip >= 0, "ema": 0 <= self.ema < 1, "warmup": self.warmup >= 0, "patience": self.patience >= 0,
            "log_every": self.log_every >= 1, "time_limit": self.time_limit >= 0, "diagnose_every": self.diagnose_every >= 0,
            "weight_decay": self.weight_decay >= 0, "momentum": self.momentum >= 0,
            "optimizer": self.optimizer in ("adam", "adamw", "sgd"),
            "schedule": self.schedule in ("constant", "cosine", "step"),
            "monitor": isinstance(self.monitor, str) and self.monitor.isidentifier(),
        }
        check_options(self, checks)

    @classmethod
    def from_dict(cls, d: dict) -> TrainingOptions:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def for_steps(self, steps: int, **changes) -> TrainingOptions:
        """These options for a run trained for exactly ``steps`` steps, chosen by an earlier run (a
        refit, an ensemble's other networks): one validation, at the end, so the last step's weights
        are kept; no early stopping, time limit or diagnostics."""
        return replace(self, steps=steps, valid_every=steps, patience=0, time_limit=0.0, diagnose_every=0,
                                   **changes)


def make_optimizer(params, opt: TrainingOptions):
    if opt.optimizer == "sgd":
        optimizer = SGD(params, lr=opt.lr, momentum=opt.momentum, weight_decay=opt.weight_decay)
    elif opt.optimizer == "adamw":
        optimizer = AdamW(params, lr=opt.lr, weight_decay=opt.weight_decay)
    else:
        optimizer = Adam(params, lr=opt.lr, weight_decay=opt.weight_decay)
    after = None
    remaining = max(1, opt.steps - opt.warmup)
    if opt.schedule == "cosine":
        after = CosineAnnealingLR(optimizer, T_max=remaining)
    elif opt.schedule == "step":
        after = StepLR(optimizer, step_size=max(1, remaining // 4), gamma=0.5)
    schedule = LinearWarmup(optimizer, opt.warmup, after=after) if opt.warmup else after
    return optimizer, schedule


def _progress(total: int, initial: int, quiet: bool):
    from ..progress import Progress

    return Progress("training", total, initial, unit="step", quiet=quiet, keep=True)


class Trainer:
    """Train ``model`` with ``run`` into ``out_dir``; ``config`` is what config.json records.

    direction: "min" or "max", whether a lower or a higher ``options.monitor`` is better (the
    task's ``monitors`` table says which). keep_validated: a directory where the weights of every
    validation (as validated: the average, with --ema) are also saved, ``validated_weights[step]``
    naming the file; on disk, not in memory, where a cross-validation's folds keep them all until
    it chooses a step (each process its own directory)."""

    def __init__(self, model, run, out_dir, config: dict, options: TrainingOptions, quiet: bool = False,
                 direction: str = "min", keep_validated: Path | str | None = None):
        if direction not in ("min", "max"):
            raise ValueError(f"direction: expected 'min' or 'max', got {direction!r}")
        self.group = parallel.world()
        self.writes = self.group.first  # rank 0 writes the directory and draws the progress
        self.model, self.run, self.out = model, run, Path(out_dir)
        self.config, self.opt, self.quiet, self.direction = config, options, quiet or not self.writes, direction
        self.validations: list[dict] = []  # every validation's record of this fit: step and valid_* metrics
        self.keep_validated = None if keep_validated is None else Path(keep_validated)
        if self.keep_validated is not None:
            self.keep_validated.mkdir(parents=True, exist_ok=True)
        self.validated_weights: dict[int, Path] | None = None if keep_validated is None else {}
        self._plotted, self._plotted_at = 0, -math.inf  # validations drawn in loss.png, and when
        self.optimizer, self.schedule = make_optimizer(model.parameters(), options)
        self.average = WeightAverage(model.parameters(), options.ema) if options.ema else None
        self.step, self.best, self.bad_validations = 0, math.inf, 0
        self.adopted = False  # the model arrived trained (``adopt``): fit validates and keeps it first
        self.window = [0.0, 0, 0]  # loss sum, steps and clipped steps since the last metrics line
        self.recent_losses: collections.deque = collections.deque(maxlen=100)
        self.exploding = 0  # steps in a row whose loss was above the bound

    # ---- checkpoints ------------------------------------------------------------------------
    def _rng_states(self) -> dict:
        return {"model": md.rng_state(self.model.rng)} if hasattr(self.model, "rng") else {}

    def save_checkpoint(self) -> None:
        run_state = self.run.state_dict()
        arrays = {f"run.{k}": v for k, v in run_state.items() if isinstance(v, np.ndarray)}
        scalars = {k: v for k, v in run_state.items() if not isinstance(v, np.ndarray)}
        weights = dict(self.model.state_dict(), **arrays)
        if self.average:
            average = self.average.state_dict()
            weights.update({f"ema.{k}": v for k, v in average.items() if k != "updates"})
        state = {
            "step": self.step, "best": self.best, "bad_validations": self.bad_validations,
            "rng": self._rng_states(), "run": scalars,
            "schedule": self.schedule.state_dict() if self.schedule else None,
            "window": self.window, "recent_losses": list(self.recent_losses), "exploding": self.exploding,
        }
        if self.average:
            state["ema_updates"] = self.average.updates
        if self.writes:
            md.save_checkpoint(self.out, weights, self.optimizer.state_dict(), state)
        self.group.barrier()  # a fault on another rank after this step cannot cut the checkpoint short

    def resume(self, schedule_changed: bool = False) -> None:
        """Continue from the checkpoint; ``schedule_changed``: the resumed run changed an option of
        ``TrainingOptions.SCHEDULE``, so the lr follows the new options from the current step."""
        weights, opt_state, state = md.load_checkpoint(self.out)
        where = f"state.json in {self.out / md.CHECKPOINT}"
        md.check_json(state, STATE_SCHEMA, where, prefix="state.")
        if hasattr(self.model, "rng") and "model" not in state["rng"]:
            raise md.ModelDirError(f"{where}: rng: missing the model's generator state, which exact resume needs")
        run_arrays = {k[4:]: v for k, v in weights.items() if k.startswith("run.")}
        averages = {k[4:]: v for k, v in weights.items() if k.startswith("ema.")}
        try:
            self.model.load_state_dict({k: v for k, v in weights.items() if not k.startswith(("run.", "ema."))})
            self.optimizer.load_state_dict(opt_state)
            if self.average:  # (a checkpoint without the count is refused: the bias correction needs it)
                self.average.load_state_dict(dict(averages, **({"updates": state["ema_updates"]} if "ema_updates" in state else {})))
            self.run.load_state_dict(dict(state["run"], **run_arrays))
        except (KeyError, TypeError, ValueError) as exc:
            raise md.ModelDirError(f"the checkpoint in {self.out} does not fit this run ({exc}); restore it, "
                                   f"or start the run again with --overwrite") from None
        self.step, self.best, self.bad_validations = state["step"], state["best"], state["bad_validations"]
        if self.schedule and (schedule_changed or not state.get("schedule")):
            self.schedule.load_state_dict({"last_step": self.step, "base_lr": self.opt.lr})
        elif self.schedule:
            self.schedule.load_state_dict(state["schedule"])
        else:
            self.optimizer.lr = self.opt.lr
        if "model" in state["rng"]:
            self.model.rng.bit_generator.state = md.restore_rng(state["rng"]["model"]).bit_generator.state
        self.window = state.get("window", [0.0, 0, 0])
        self.recent_losses.extend(state.get("recent_losses", []))
        self.exploding = state.get("exploding", 0)
        if self.writes:
            md.rewind_metrics(self.out, self.step)  # lines logged after the checkpoint come again, identically

    def _diverged(self, what: str) -> TrainingError:
        fix = f"a lower --lr (e.g. --lr {self.opt.lr / 10:g})" + ("" if self.opt.clip else " or --clip 1 (gradient clipping is off)")
        return parallel.everywhere(TrainingError(
            f"{what}: training diverged; the last good checkpoint is kept: continue it with "
            f"`rnnkit train --resume {self.out}` and {fix}"))

    def _loss_bound(self) -> float:
        """Above this a step's loss is exploding: far above its recent median, or (for a run that
        states ``uniform_loss``, the loss of a uniform guess such as log V) far above that."""
        bound = math.inf
        uniform = getattr(self.run, "uniform_loss", None)
        if uniform:
            bound = max(3 * uniform, uniform + 3)
        if len(self.recent_losses) >= 20:
            median = float(np.median(self.recent_losses))
            bound = min(bound, median + 10 * max(abs(median), 1.0))
        return bound

    def _check_explosion(self, loss: float) -> None:
        bound = self._loss_bound()
        if loss <= bound:
            self.exploding = 0
            self.recent_losses.append(loss)
            return
        self.exploding += 1
        if self.exploding >= EXPLODING_STEPS:
            raise self._diverged(f"the loss exploded at step {self.step} ({loss:.4g}, above {bound:.4g} for "
                                 f"{EXPLODING_STEPS} steps in a row)")

    @contextlib.contextmanager
    def _stop_signals(self):
        """While training, SIGINT and SIGTERM only ask the loop to stop after the current step (so a
        checkpoint can be written); a second signal acts at once."""
        received: list[int] = []
        if threading.current_thread() is not threading.main_thread():  # handlers can only be set there
            yield received
            return

        def ask_to_stop(signum, frame):
            received.append(signum)
            signal.signal(signum, previous[signum])

        previous = {s: signal.signal(s, ask_to_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield received
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _interrupted(self, signum: int) -> TrainingInterrupted:
        self.save_checkpoint()
        self._plot(final=True)
        name = signal.Signals(signum).name
        return parallel.everywhere(TrainingInterrupted(f"{name} at step {self.step} of {self.opt.steps}: a checkpoint of step {self.step} "
                                   f"is saved; continue with `rnnkit train --resume {self.out}`", signum))

    # ---- the loop ---------------------------------------------------------------------------
    def adopt(self, step: int) -> None:
        """Take the model as trained for ``step`` steps elsewhere (classify --final folds: a fold
        network of the cross-validation): ``fit`` then writes config.json, validates it, keeps it as
        the model and checkpoints it before any step, and trains on only if ``options.steps`` is more."""
        self.step, self.adopted = step, True

    def fit(self) -> dict:
        """Train to ``options.steps`` (or the time limit, or early stop); returns the best metrics."""
        opt, params = self.opt, self.model.parameters()
        grads = [p.grad for p in params]
        if self.step == 0 or self.adopted:
            if self.writes:
                md.save_model(self.out, dict(self.config, status="training"), self.model.state_dict())
            if self.step == 0:  # (an adopted model's first checkpoint follows its validation, below)
                self.save_checkpoint()  # the starting state: from here on, what a run holds only in memory (classify's fold networks) survives a kill
        bar = self.bar = _progress(opt.steps, self.step, self.quiet)
        if self.group.size > 1:
            description = self.group.describe()  # collective: every rank takes part
            bar.note(f"training on {description}")
        started, tokens = time.perf_counter(), 0
        recurrent = [m for m in self.model.modules() if isinstance(m, RecurrentLayer)]
        status = "finished"
        signals = contextlib.ExitStack()
        stop = signals.enter_context(self._stop_signals())
        try:
            if self.adopted:  # validated and kept as it came
                self.adopted = False
                self.validate()
            while self.step < opt.steps:
                self.step += 1
                self.model.train()
                self.optimizer.zero_grad()
                self._seed_ranks()
                diagnosing = bool(opt.diagnose_every) and self.step % opt.diagnose_every == 0
                for layer in recurrent:
                    layer.record_grad_norms = diagnosing
                # overflow is expected when a run diverges; it is detected and reported below
                with np.errstate(over="ignore", invalid="ignore"):
                    try:
                        loss, n_tokens, n_terms = self.run.train_step()
                    except parallel.EmptyShare:
                        loss, n_tokens, n_terms = parallel.NO_SHARE
                    except NonFiniteError as exc:  # the weights overflowed: the forward pass met inf or NaN
                        if self.group.size == 1:
                            raise self._diverged(f"non-finite loss detected at step {self.step} (the forward pass overflowed: {exc})")
                        loss, n_tokens, n_terms = math.nan, 0, 1  # every rank learns of it from the sum below
                    elapsed = time.perf_counter() - started
                    # one sum across ranks (nothing on one process): gradients, loss, tokens, and
                    # whether any rank was asked to stop or ran out of time, so all decide alike
                    out_of_time = bool(opt.time_limit and elapsed >= opt.time_limit)
                    summed = self.group.reduce_step(grads, [n_terms, n_terms * loss, n_tokens, bool(stop), out_of_time])
                    if self.group.size > 1:
                        loss = summed[1] / summed[0] if summed[0] else math.nan
                        n_tokens, out_of_time, stopping = int(summed[2]), summed[4] > 0, summed[3] > 0
                    else:
                        stopping = bool(stop)
                    if not math.isfinite(loss):
                        raise self._diverged(f"non-finite loss detected at step {self.step} ({loss})")
                    self._check_explosion(loss)
                    if diagnosing and self.writes:
                        self._log_gradients(recurrent)
                    norm = clip_grad_norm_(params, opt.clip) if opt.clip else grad_norm(params)
                if not math.isfinite(norm):
                    raise self._diverged(f"non-finite gradient norm detected at step {self.step}")
                self.optimizer.step()
                if self.schedule:
                    self.schedule.step()
                if self.average:
                    self.average.update()
                tokens += n_tokens
                self.window = [self.window[0] + loss, self.window[1] + 1, self.window[2] + bool(opt.clip and norm > opt.clip)]
                bar.update(1)
                if self.step % opt.log_every == 0:
                    window_loss, window_n, window_clipped = self.window
                    record = {"step": self.step, "train_loss": window_loss / window_n, "lr": self.optimizer.lr,
                              "grad_norm": float(norm), "clipped_fraction": window_clipped / window_n,
                              "tokens_per_s": tokens / max(time.perf_counter() - started, 1e-9)}
                    if self.writes:
                        md.append_metrics(self.out, record)
                    bar.log(record)
                    self.window = [0.0, 0, 0]
                if self.step % opt.valid_every == 0 or self.step == opt.steps or out_of_time:
                    if self.validate():
                        status = "stopped early"
                        break
                if out_of_time:
                    status = "time limit"
                    break
                if stopping:
                    self._set_status("interrupted")
                    raise self._interrupted(stop[0] if stop else signal.SIGTERM)
        except TrainingError:
            self._set_status("diverged")
            raise
        finally:
            signals.close()
            bar.close()
        self._plot(final=True)
        return self._set_status(status).get("metrics", {})

    def _seed_ranks(self) -> None:
        """In a job of K > 1 ranks, each rank's draws in this step (dropout masks) come from a
        generator seeded by (seed, step, rank): different on every rank, and a function of the
        step alone, so a run resumed with another K needs no generator states of the others."""
        if self.group.size > 1 and hasattr(self.model, "rng"):
            fresh = np.random.default_rng([self.opt.seed, self.step, self.group.rank])
            self.model.rng.bit_generator.state = fresh.bit_generator.state

    def _set_status(self, status: str) -> dict:
        """Record how the run ended in config.json; the config as written (on every rank)."""

        def record() -> dict:
            config = md.load_config(self.out)
            config["status"] = status
            md.atomic_write_json(self.out / md.CONFIG, config)
            return config

        return self.group.on_first(record)

    def _log_gradients(self, recurrent) -> None:
        """A diagnostics line: ‖∂L/∂h_t‖ per recurrent layer and step, ‖grad‖ per parameter (before clipping)."""
        record = {"step": self.step, "param_grad_norms": {n: float(np.linalg.norm(p.grad)) for n, p in self.model.named_parameters()}}
        for i, layer in enumerate(recurrent):
            for label, row in zip(layer.direction_labels(), layer.grad_norms):
                record.setdefault("grad_flow", {})[f"{i}:{label}"] = [float(v) for v in row]
        md.append_metrics(self.out, record)

    def validate(self) -> bool:
        """Evaluate, keep the best weights, checkpoint, plot; True when patience has run out.
        In a job, every rank evaluates (a run may share the validation data out) and takes rank 0's
        metrics, so that early stopping and the best weights are decided alike."""
        self.group.check_same(self.model.parameters(), self.step)
        with self.average.swapped() if self.average else contextlib.nullcontext():
            self._validate_and_keep()
        self.save_checkpoint()
        self._plot()
        return bool(self.opt.patience and self.bad_validations >= self.opt.patience)

    def _validate_and_keep(self) -> None:
        """Evaluate the weights the model holds (the average, with --ema), and save them as the
        model when they are the best so far."""
        metrics = self.group.agreed(self.group.settled(self._evaluate))
        record = {"step": self.step, **{f"valid_{k}": v for k, v in metrics.items()}}
        self.validations.append(record)
        if self.validated_weights is not None:
            path = self.keep_validated / f"validated-{self.step}.safetensors"
            md.save_weights(path, self.model.state_dict())
            self.validated_weights[self.step] = path
        if self.writes:
            md.append_metrics(self.out, record)
        self.bar.validated(record)
        if self.opt.monitor not in metrics:
            raise parallel.everywhere(TrainingError(
                f"--monitor: this task's validation reports {', '.join(metrics)}, not {self.opt.monitor!r}"))
        # where higher is better, compare the negative, so that the best is always the minimum
        value = metrics[self.opt.monitor] * (-1 if self.direction == "max" else 1)
        if value < self.best:
            self.best, self.bad_validations = value, 0
            config = dict(self.config, status="training", metrics=dict(metrics, step=self.step))
            if self.writes:
                md.save_model(self.out, config, self.model.state_dict())
        else:
            self.bad_validations += 1

    def _plot(self, final: bool = False) -> None:
        """Redraw loss.png when validations came since the last drawing, at most every PLOT_EVERY_S
        (always when ``final``: the run ends)."""
        if not self.writes or self._plotted == len(self.validations):
            return
        if final or time.monotonic() - self._plotted_at >= PLOT_EVERY_S:
            from .plots import plot_loss_curve

            plot_loss_curve(self.out)
            self._plotted, self._plotted_at = len(self.validations), time.monotonic()

    def _evaluate(self) -> dict:
        with no_grad():
            self.model.eval()
            return self.run.evaluate()
