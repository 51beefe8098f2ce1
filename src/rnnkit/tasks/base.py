"""What every task is: options, how to build a model and a training run, how to load one back.

The trainer, the command line and the Python API are generic over tasks; one registry maps
task names to tasks.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import MISSING, asdict, fields
from pathlib import Path

import numpy as np

from ..version import __version__
from ..memory import within_memory
from ..data import DataError
from ..export import get_format
from ..models.sequence_model import INITS, cell_choices, cell_settings
from ..training import model_dir as md
from ..training import parallel
from ..training.trainer import Trainer, TrainingError, TrainingOptions


def network_checks(options, step: bool = False) -> dict[str, bool]:
    """The checks of the options every task's network shares, for ``check_options``: a registered
    --cell (with ``step``, one that has a cell for decoding), a known --init, sizes of at least 1. The kind's
    settings (``cell_option``) are checked here and completed with its defaults, so config.json
    keeps every one (a bad one is an error naming --cell-option)."""
    checks = {"cell": options.cell in cell_choices(step)}
    if checks["cell"]:
        options.cell_option = cell_settings(options.cell, options.cell_option)
    if hasattr(options, "init"):
        checks["init"] = options.init in INITS
    checks.update({name: getattr(options, name) >= 1 for name in ("embed", "hidden", "layers", "batch_size") if hasattr(options, name)})
    return checks


class Task:
    """A task: its options, how its data becomes (data, encoding), its model, its training run,
    and the trained model with the task's action. ``build``, ``rebuild`` and ``load`` are the
    same for every task that fills in ``prepare``, ``make_model`` and ``make_run``."""

    name = ""
    action = ""  # the command that uses a trained model: rnnkit ACTION DIR
    description = ""
    Options: type = object  # a dataclass with a HELP dict
    Trained: type = object  # the loaded model: Trained(out_dir, config, model)
    encoding_key = "encoding"  # where config.json keeps what the model learnt from its data
    needs_data = True  # False: the task has a default corpus, read when --data is not given
    #: JSON schema of the task's own entries of config.json (beside task_options and training);
    #: by default: an object under ``encoding_key``
    config_schema: dict | None = None
    #: the validation metrics --monitor may name, each with its direction: "min" where lower is
    #: better (losses, errors, perplexity), "max" where higher is (scores); the one table of it
    monitors: dict[str, str] = {"loss": "min"}
    #: the metric that picks the best weights when --monitor is not given
    default_monitor = "loss"

    def check_config(self, config: dict, where: str):
        """Validate a stored config's entries against the task's schemas; (options, training)."""
        md.check_json(config, {"type": "object", "required": ["task_options", "training"],
                               "properties": {"task_options": options_schema(self.Options),
                                              "training": options_schema(TrainingOptions)}}, where)
        md.check_json(config, self.config_schema or {"type": "object", "required": [self.encoding_key],
                                                     "properties": {self.encoding_key: {"type": "object"}}}, where)
        stored = []
        for key, options_class in (("task_options", self.Options), ("training", TrainingOptions)):
            # an option added since the model was trained means what the model was trained with,
            # which is not always the new default (Options.BEFORE says so)
            given = {**getattr(options_class, "BEFORE", {}), **config[key]}
            try:
                stored.append(options_class(**given))
            except (ValueError, TypeError) as exc:  # "--valid-fraction: invalid value ..." names the field
                flag, _, why = str(exc).partition(": ")
                raise md.ModelDirError(f"{where}: {key}.{flag.lstrip('-').replace('-', '_')}: {why}") from None
        return tuple(stored)

    def check_monitor(self, monitor: str) -> None:
        if monitor not in self.monitors:
            raise ValueError(f"--monitor: a {self.name} model's validation reports {', '.join(self.monitors)}, "
                             f"not {monitor!r}")

    def config_entries(self, encoding) -> dict:
        """The entries of config.json that keep the encoding (by default: ``encoding_key``)."""
        return {self.encoding_key: encoding}

    def stored_encoding(self, config: dict):
        """The encoding from the entries ``config_entries`` wrote."""
        return config[self.encoding_key]

    def prepare(self, options, seed: int, stored: dict | None = None):
        """(data, encoding, description): the data read and split; the encoding (vocabulary,
        labels, scaling…) fitted on the training part, or ``stored`` when resuming or loading."""
        raise NotImplementedError

    def make_model(self, options, encoding: dict, seed: int):
        raise NotImplementedError

    def settle(self, options, training: TrainingOptions, data, encoding: dict, quiet: bool) -> None:
        """Choices a new run's data decides before its model is built; by default none. It may
        add to ``encoding`` and change ``training`` (classify's cross-validation chooses the
        steps), and config.json records both."""

    def make_run(self, model, data, options, seed: int):
        """The trainer's run: train_step, evaluate, state_dict, load_state_dict."""
        raise NotImplementedError

    def steps_trained(self, run) -> int:
        """How many steps a new run's model arrives trained for (``settle`` trained it: classify's
        --final folds); the trainer then validates and keeps it as it is. By default 0: none."""
        return 0

    def build(self, options, training: TrainingOptions, out_dir: Path, quiet: bool):
        """Read the data and build (model, run, config) for a new training run."""
        def read():
            if self.needs_data and not options.data:
                raise ValueError(f"--data: a {self.name} model needs data (see `rnnkit train {self.name} --help`)")
            return self.prepare(options, training.seed)

        # in a job every rank reads the data; an error on any of them ends all of them, here,
        # before the first collective of training (a fold of cross-validation has some)
        data, encoding, description = parallel.world().settled(read)
        self.settle(options, training, data, encoding, quiet)
        model = within_memory(lambda: self.make_model(options, encoding, training.seed), options, training=True)
        return model, self.make_run(model, data, options, training.seed), {**self.config_entries(encoding), "data": description}

    def rebuild(self, config: dict, out_dir: Path, quiet: bool):
        """(model, run) for resuming the run that ``config`` describes."""
        options, seed = self.Options(**config["task_options"]), config["training"]["seed"]
        data, encoding, _ = self.prepare(options, seed, self.stored_encoding(config))
        model = within_memory(lambda: self.make_model(options, encoding, seed), options, training=True)
        return model, self.make_run(model, data, options, seed)

    def after_training(self, out_dir: Path, quiet: bool) -> None:
        """What the task does once a run has ended well, still under the directory's lock (by
        default nothing; ``forecast --refit`` trains its final network here)."""

    def load(self, out_dir: Path, config: dict):
        """The trained model with this task's action, from a model directory."""
        options = self.Options(**config["task_options"])
        model = within_memory(lambda: self.make_model(options, self.stored_encoding(config), 0), options)
        model.load_state_dict(md.load_model_weights(out_dir))
        return self.Trained(out_dir, config, model)


class Exportable:
    """What every loaded model's ``export`` shares (``rnnkit export DIR``). A task whose model
    ONNX can express gives its Trained class ``onnx_model()``: the checked ModelProto, or
    ``{part: ModelProto}`` for a model deployed as several (translate: encoder and decoder step),
    which ``export/onnx.py`` builds with ``export_metadata`` and the task's own entries."""

    def export(self, out, format: str = "onnx", overwrite: bool = False) -> list[Path]:
        """Write the model for another runtime to the file ``out`` (a model of several parts: one
        file per part, ``model.encoder.onnx`` beside ``model.onnx``), each atomically; an existing
        file is replaced only with ``overwrite``, and nothing is written while any is refused.
        Returns the paths written."""
        get_format(format)
        out = Path(out)
        if out.is_dir():
            raise ValueError(f"--out: {out} is a directory; name the file to write (model.onnx)")
        if not out.parent.is_dir():
            raise ValueError(f"--out: the directory {out.parent} does not exist")
        build = getattr(self, "onnx_model", None)
        if build is None:
            exportable = ", ".join(name for name, t in TASKS.items() if hasattr(t.Trained, "onnx_model"))
            raise ValueError(f"not exportable: {self.config['task']} models have no ONNX export yet (tasks that export: "
                             f"{exportable})")
        models = build()
        files = ({out.with_name(f"{out.stem}.{part}{out.suffix}"): m for part, m in models.items()}
                 if isinstance(models, dict) else {out: models})
        for path in files:
            if path.exists() and not overwrite:
                raise ValueError(f"--out: {path} exists; pass --overwrite to replace it")
        for path, model in files.items():
            md.atomic_write_bytes(path, model.SerializeToString())
        return list(files)


def export_metadata(trained) -> dict[str, str]:
    """The metadata every exported model carries: its task, the rnnkit that wrote it, its options."""
    return {"task": trained.config["task"], "rnnkit_version": __version__,
            "options": json.dumps(trained.config["task_options"], sort_keys=True)}


class BucketedRun:
    """For a training run whose batches come from ``self.batches`` (a ``BucketBatches``): the
    position in its epochs is the run's whole state."""

    def state_dict(self) -> dict:
        return {f"batches.{k}": v for k, v in self.batches.state_dict().items()}

    def load_state_dict(self, d: dict) -> None:
        self.batches.load_state_dict({k[len("batches."):]: v for k, v in d.items() if k.startswith("batches.")})


class SeededRun:
    """For a training run that draws batch k from a generator seeded by (seed, k): the count of
    batches drawn is the run's whole state."""

    seed = 0
    batches_done = 0

    def batch_rng(self) -> np.random.Generator:
        rng = np.random.default_rng([self.seed, self.batches_done])
        self.batches_done += 1
        return rng

    def state_dict(self) -> dict:
        return {"batches_done": np.array(self.batches_done)}

    def load_state_dict(self, d: dict) -> None:
        self.batches_done = int(d["batches_done"])


def validation_line(metrics: dict) -> str:
    """The `describe` line of a model's best validation metrics."""
    shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
    return f"validation {shown} (step {metrics.get('step')})"


def input_texts(args) -> list[str]:
    """The texts an action verb works on: its TEXT arguments, or the non-blank lines of --data."""
    if args.data and args.texts:
        raise ValueError("give TEXT arguments or --data FILE, not both")
    if args.data:
        from ..data import read_text_file

        texts = [line.strip() for line in read_text_file(args.data).split("\n") if line.strip()]
    else:
        texts = args.texts
    if not texts:
        raise ValueError("TEXT: give at least one text, or --data FILE")
    return texts


TASKS: dict[str, Task] = {}


def register(cls: type[Task]) -> type[Task]:
    """Class decorator: the task becomes known to the trainer, the CLI and the API."""
    TASKS[cls.name] = cls()
    return cls


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"task: unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]


def read_model(directory, expect_task: str | None = None) -> tuple[Task, dict]:
    """(task, config) of a model directory, its config validated whole.

    ``expect_task``: the verb's task; a model of another task is refused, naming the verb that fits.
    """
    d = Path(directory)
    config = md.load_config(d)
    task = TASKS.get(config["task"])
    if task is None:
        raise md.ModelDirError(f"{d} holds a {config['task']!r} model; this rnnkit knows the tasks "
                               f"{', '.join(sorted(TASKS))}; upgrade rnnkit")
    if expect_task is not None and task.name != expect_task:
        raise md.ModelDirError(f"`rnnkit {TASKS[expect_task].action}` needs a model of task {expect_task!r}, "
                               f"but {d} holds a {task.name!r} model; use `rnnkit {task.action} {d}`")
    options, training = task.check_config(config, f"{md.CONFIG} in {d}")
    # an option config.json leaves out takes its default: every reader of the stored options sees them all
    config.update(task_options=asdict(options), training=asdict(training))
    return task, config


def load_model(directory, expect_task: str | None = None):
    """The trained model in ``directory`` with its task's action (see ``read_model``)."""
    task, config = read_model(directory, expect_task)
    try:
        return task.load(Path(directory), config)
    except (md.ModelDirError, DataError):
        raise
    except ValueError as exc:  # a value the layers refuse (a size below 1 ...): the engine's message names it
        raise md.ModelDirError(f"{md.CONFIG} in {directory}: {exc}") from None
    except (KeyError, IndexError, TypeError, AttributeError) as exc:  # an entry no schema describes
        raise md.ModelDirError(f"{md.CONFIG} in {directory} is damaged ({type(exc).__name__}: {exc}); "
                               "retrain or restore it") from None


_JSON_TYPES = {"int": "integer", "float": "finite", "str": "string", "bool": "boolean", "dict": "object",
               "int | str": ["integer", "string"]}  # a number, or several as text (forecast's --season 48,336)

# pieces of the tasks' config_schema
#: a mean of data values, which the readers keep within float32's range
MEAN_SCHEMA = {"type": "finite", "minimum": -float(np.finfo(np.float32).max), "maximum": float(np.finfo(np.float32).max)}
#: a standard deviation, which values are divided by: training floors it at 1e-8
SPREAD_SCHEMA = {"type": "finite", "minimum": 1e-8, "maximum": float(np.finfo(np.float32).max)}
MEANS_SCHEMA = {"type": "array", "minItems": 1, "items": MEAN_SCHEMA}  # per channel
SPREADS_SCHEMA = {"type": "array", "minItems": 1, "items": SPREAD_SCHEMA}
#: names, each once (labels, tags, columns, classes)
NAMES_SCHEMA = {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"type": "string"}}


def data_schema(*counts: str) -> dict:
    """The JSON schema of the description of a model's data in config.json: its source and
    counts (``required``; ``describe`` prints every count, so each is an integer)."""
    return {"type": "object", "required": ["source", *counts], "properties": {"source": {"type": "string"}},
            "additionalProperties": {"type": "integer", "minimum": 0}}


def options_schema(options_class) -> dict:
    """The JSON schema of an options dataclass as config.json stores it: each field's type, no
    other entries (a missing field takes its default)."""
    properties = {f.name: {"type": _JSON_TYPES[f.type]} for f in fields(options_class)
                  if isinstance(f.type, str) and f.type in _JSON_TYPES}
    return {"type": "object", "properties": properties, "additionalProperties": False}


# ---- options as command-line flags ---------------------------------------------------------------


def add_options(parser: argparse.ArgumentParser, options_class, title: str) -> None:
    """One flag per dataclass field, with its HELP text and default (unless the text says it), and
    its choices where the dataclass's CHOICES dict lists them (usage then shows ``{lstm,gru,…}``).
    A dict field (``cell_option``) is a repeatable ``--flag NAME=VALUE``: a list of the texts,
    which the dataclass reads.
    Defaults are SUPPRESSed, so the parsed namespace holds only what the user gave (which is what
    --resume must check)."""
    group = parser.add_argument_group(title)
    choices = getattr(options_class, "CHOICES", {})
    for f in fields(options_class):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        help_text = options_class.HELP.get(f.name, "")
        if f.type in ("bool", bool):  # one that is on by default can be turned off: --no-FLAG
            action = argparse.BooleanOptionalAction if f.default is True else "store_true"
            group.add_argument(flag, dest=f.name, action=action, default=argparse.SUPPRESS, help=help_text)
        elif f.type in ("dict", dict):
            group.add_argument(flag, dest=f.name, action="append", default=argparse.SUPPRESS, help=help_text,
                               metavar="NAME=VALUE")
        else:
            kind = {"int": int, "float": float, "str": str}.get(f.type if isinstance(f.type, str) else f.type.__name__, str)
            if "(default" not in help_text:
                help_text += f" (default: {default!r})"
            group.add_argument(flag, dest=f.name, type=kind, default=argparse.SUPPRESS, help=help_text,
                               choices=choices.get(f.name), metavar=None if f.name in choices else f.name.upper())


def given(namespace: argparse.Namespace, options_class) -> dict:
    names = {f.name for f in fields(options_class)}
    return {k: v for k, v in vars(namespace).items() if k in names}


# ---- training, fresh or resumed -------------------------------------------------------------------


def train(task_name: str | None, out_dir, task_options: dict, training_options: dict,
          resume: bool = False, quiet: bool = False, overwrite: bool = False) -> dict:
    """Train a task into ``out_dir``, or resume it; returns the best validation metrics.

    Every option and the data are checked before anything in ``out_dir`` is touched; the
    directory is then locked for the run. ``overwrite`` replaces a model already in
    ``out_dir``; a directory holding files rnnkit did not write is refused either way.
    """
    out, group = Path(out_dir), parallel.world()
    quiet = quiet or not group.first  # in a job, rank 0 reports
    if resume:
        return _resume(task_name, out, task_options, training_options, quiet)
    task = get_task(task_name)

    def check() -> tuple:
        group.on_first(lambda: md.check_out_dir(out, overwrite))  # the quick refusals, before the data is read
        training = TrainingOptions(**{"monitor": task.default_monitor, **training_options})
        options = task.Options(**task_options)
        task.check_monitor(training.monitor)
        check_batch(options, group.size)
        return training, options

    training, options = group.settled(check)
    model, run, config = task.build(options, training, out, quiet)
    config.update(task=task.name, rnnkit_version=__version__, task_options=asdict(options), training=asdict(training))
    group.check_config(config)
    with group.first_only(md.writing(out)):
        def clear() -> None:
            md.check_out_dir(out, overwrite, locked=True)  # again, now that no other run can write it
            if overwrite:
                md.clear_model_dir(out)

        group.on_first(clear)
        trainer = Trainer(model, run, out, config, training, quiet, task.monitors[training.monitor])
        trained = task.steps_trained(run)
        if trained:
            trainer.adopt(trained)
        metrics = trainer.fit()
        task.after_training(out, quiet)
        return metrics


def check_batch(options, processes: int) -> None:
    """A job of K processes splits each batch K ways: --batch-size must give each rank a share."""
    if getattr(options, "batch_size", processes) < processes:
        raise ValueError(f"--batch-size: {options.batch_size} is fewer than the {processes} processes that share each "
                         f"batch; give at least {processes}, or start fewer processes")


def _resume(task_name: str | None, out: Path, task_options: dict, training_options: dict, quiet: bool) -> dict:
    group = parallel.world()
    with group.first_only(md.writing(out, "--resume")):
        def check() -> tuple:
            task, config = read_model(out)
            if task_name and task_name != task.name:
                raise TrainingError(f"--resume: {out} holds a {task.name!r} run, not {task_name!r}")
            # the options given as the stored ones read them (--cell-option's texts become its numbers)
            read = asdict(task.Options(**{**config["task_options"], **task_options}))
            given = {k: read[k] for k in task_options}
            changes = _resume_changes(config, given, training_options)
            config["training"].update({k: new for k, (old, new) in changes.items()})
            training = TrainingOptions.from_dict(config["training"])
            task.check_monitor(training.monitor)
            check_batch(task.Options(**config["task_options"]), group.size)
            return task, config, changes, training

        task, config, changes, training = group.settled(check)
        model, run = group.settled(lambda: task.rebuild(config, out, quiet))
        trainer = Trainer(model, run, out, config, training, quiet, task.monitors[training.monitor])
        if group.settled(lambda: md.has_checkpoint(out)):
            group.settled(lambda: trainer.resume(schedule_changed=any(k in changes for k in TrainingOptions.SCHEDULE)))
        elif group.first:  # stopped before its first checkpoint: the stored options start it again from step 0
            md.rewind_metrics(out, 0)
        if changes and group.first:  # the model's history says which options changed where
            config.setdefault("history", []).append({"step": trainer.step, "changed": changes})
            md.atomic_write_json(out / md.CONFIG, config)
        metrics = trainer.fit()
        task.after_training(out, quiet)
        return metrics


def _resume_changes(config: dict, task_options: dict, training_options: dict) -> dict:
    """{option: [stored, new]} of the training options a resumed run changes; an option that may
    not change (the model, the data, the optimizer) is an error naming it."""
    clashes = [f"--{k.replace('_', '-')} {v!r} (stored: {config['task_options'].get(k)!r})"
               for k, v in task_options.items() if config["task_options"].get(k) != v]
    clashes += [f"--{k.replace('_', '-')} {v!r} (stored: {config['training'].get(k)!r})"
                for k, v in training_options.items()
                if k not in TrainingOptions.CHANGEABLE and config["training"].get(k) != v]
    if clashes:
        raise TrainingError("--resume: options contradict the stored configuration: " + "; ".join(clashes)
                            + f"; only {', '.join('--' + e.replace('_', '-') for e in TrainingOptions.CHANGEABLE)} may change")
    return {k: [config["training"].get(k), v] for k, v in training_options.items() if config["training"].get(k) != v}
