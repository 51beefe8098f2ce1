"""Captioning Tux Paint's stamps: trained `caption` models against the nearest-neighbour baseline,
on the model's own split, overall and by category, with a figure of test images and their captions.

A small set: 785 stamps with a PNG, the test part 15% of them (118), validation 10% (78); a
category holds from 3 to about 250 stamps, so per-category scores of the small ones say little.
Several stamps come in near-copies ("frog" and "frog-1", the coins), which the split by stamp
may put on both sides: the nearest-neighbour baseline profits from them most.

Baseline: each image gets the caption of the training image nearest in the model's standardised
features (``rnnkit.tasks.caption.nearest_captions``). On the validation part only, the baseline
is also measured with every subset of the feature blocks: how the default blocks were chosen.
Scores: sacrebleu's corpus BLEU and chrF against the single reference caption. Results:
``benchmarks/results/caption.json`` and ``caption_examples.png``. Run from the repository root:

    rnnkit train caption --data tuxpaint-stamps --out models/caption-word --steps 2000
    rnnkit train caption --data tuxpaint-stamps --out models/caption-char --tokenizer char --steps 2000
    python benchmarks/eval_caption.py models/caption-word models/caption-char
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

from common import ROOT, git_commit, machine_info, write
import rnnkit
from rnnkit import metrics as M
from rnnkit.data.images import FEATURES, read_image
from rnnkit.tasks.caption import nearest_captions, write_captions
from rnnkit.training.plots import pyplot, save_figure


def rounded(scores: dict) -> dict:
    return {k: round(v, 2) for k, v in scores.items()}


def block_columns(names: list[str]) -> dict[str, np.ndarray]:
    """The columns of each block in a feature vector of the blocks ``names``, in order."""
    sizes = [FEATURES[n][1] for n in names]
    starts = np.cumsum([0, *sizes])
    return {n: np.arange(starts[i], starts[i + 1]) for i, n in enumerate(names)}


def feature_choice(data) -> list[dict]:
    """The baseline's validation BLEU/chrF with every non-empty subset of the model's blocks."""
    columns = block_columns(data.encoding["features"])
    train_x, valid_x = data.inputs("train"), data.inputs("valid")
    train_c, valid_c = data.captions("train"), data.captions("valid")
    rows = []
    for r in range(1, len(columns) + 1):
        for combo in itertools.combinations(columns, r):
            cols = np.concatenate([columns[n] for n in combo])
            rows.append({"features": ",".join(combo),
                         **rounded(M.bleu_chrf(nearest_captions(train_x[:, cols], train_c, valid_x[:, cols]), valid_c))})
    return rows


def by_category(stamps, hypotheses: dict[str, list[str]]) -> dict:
    """{category: {"stamps": n, system: {bleu, chrf}}} over the test stamps."""
    out = {}
    for category in sorted({s.category for s in stamps}):
        idx = [i for i, s in enumerate(stamps) if s.category == category]
        refs = [stamps[i].caption for i in idx]
        out[category] = {"stamps": len(idx), **{name: rounded(M.bleu_chrf([h[i] for i in idx], refs)) for name, h in hypotheses.items()}}
    return out


def draw_examples(stamps, captions: dict[str, list[str]], path: Path, count: int) -> Path:
    """A row of test images, each with its reference and the systems' captions below."""
    plt = pyplot()
    picks = np.random.default_rng(0).choice(len(stamps), size=min(count, len(stamps)), replace=False)
    fig, axes = plt.subplots(1, len(picks), figsize=(2.2 * len(picks), 4.2), dpi=64)
    for ax, i in zip(np.atleast_1d(axes), sorted(picks)):
        rgba = read_image(stamps[i].image)
        alpha = rgba[..., 3:]
        ax.imshow(rgba[..., :3] * alpha + (1 - alpha))
        ax.set_xticks([])
        ax.set_yticks([])
        lines = [f"ref: {stamps[i].caption}"] + [f"{name}: {c[i]}" for name, c in captions.items()]
        ax.set_xlabel("\n".join(_wrap(line, 30) for line in lines), fontsize=8, loc="left")
    return save_figure(fig, path)


def _wrap(text: str, width: int) -> str:
    words, lines, line = text.split(), [], ""
    for w in words:
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return "\n".join(lines + [line])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dirs", type=Path, nargs="+",
                        help="caption models trained on tuxpaint-stamps with the same seed (the same split); the figure shows the first")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/caption.json")
    parser.add_argument("--figure", type=Path, default=ROOT / "benchmarks/results/caption_examples.png")
    parser.add_argument("--examples", type=int, default=6, help="test images in the figure and the JSON")
    parser.add_argument("--beam", type=int, default=3, help="the beam search's width beside greedy decoding (default 3)")
    args = parser.parse_args(argv)
    result = {"machine": machine_info(), "git": git_commit(), "models": {}}
    figure_captions, stamps = {}, None
    for model_dir in args.model_dirs:
        model = rnnkit.load(model_dir)
        data = model.data()
        opts, beam = model.opts, args.beam
        train_x, train_c = data.inputs("train"), data.captions("train")
        entry = {"options": model.config["task_options"], "data": model.config["data"],
                 "best_step": model.config.get("metrics", {}).get("step"),
                 "validation_metrics": model.config.get("metrics")}
        for part in ("valid", "test"):
            x, refs = data.inputs(part), data.captions(part)
            hyps = {"greedy": write_captions(model.model, model.vocab, x, 1, 0.0),
                    f"beam{beam}": write_captions(model.model, model.vocab, x, beam, opts.length_penalty),
                    "nearest": nearest_captions(train_x, train_c, x)}
            entry[part] = {"stamps": len(refs), **{name: rounded(M.bleu_chrf(h, refs)) for name, h in hyps.items()}}
            if part == "test":
                test_stamps = [s for s, _ in data.parts["test"]]
                entry["test_by_category"] = by_category(test_stamps, hyps)
                entry["distinct_test_captions"] = {name: len(set(h)) for name, h in hyps.items()}
                picks = sorted(np.random.default_rng(0).choice(len(refs), size=min(args.examples, len(refs)), replace=False))
                entry["test_examples"] = [{"stamp": test_stamps[i].name, "reference": refs[i],
                                           **{name: h[i] for name, h in hyps.items()}} for i in picks]
                if stamps is None:  # the figure: the first model's captions and the baseline's
                    figure_captions = {f"{model_dir.name} greedy": hyps["greedy"], "nearest": hyps["nearest"]}
                    stamps = test_stamps
        entry["baseline_feature_choice_valid"] = feature_choice(data)
        result["models"][str(model_dir)] = entry
        print(f"{model_dir}: " + "; ".join(f"{part} " + ", ".join(f"{name} BLEU {s['bleu']:.1f} chrF {s['chrf']:.1f}"
                                                                      for name, s in entry[part].items() if name != "stamps")
                                          for part in ("valid", "test")))
    result["machine"]["load_average_1min_at_end"] = __import__("os").getloadavg()[0]
    write(args.out, result)
    print(f"wrote {args.out}, {draw_examples(stamps, figure_captions, args.figure, args.examples)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
