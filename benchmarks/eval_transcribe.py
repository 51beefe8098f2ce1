"""Speech recognition on Fish Fillets' Czech (or Dutch) dialogue: a trained `transcribe` model
against the issue's baselines, on the same split.

Split: whole levels, test = md5(level) % 5 == 0 (``rnnkit.data.speech.held_out``), validation =
a seeded share of the other levels (the model's own). Text normalised as the task does
(lowercase; letters, digits, apostrophes and spaces). Baselines on the test levels:

* empty output: CER 100% by definition;
* the closest duration: for each test clip, the transcript of the training clip whose duration
  is nearest (the issue measured 88.5% for cs, 83.2% for nl on its split).

The model: greedy decoding and a prefix beam search (``--beam``), CER and WER on the training,
validation and test levels; with ``--lm DIR``, the beam again with that character language
model, trained on the TRAINING levels' transcripts only (``--lm-text FILE`` writes them, one
normalised line per utterance, for ``rnnkit train lm``); its weight and length bonus are chosen
on the validation levels from a small grid. Results: ``benchmarks/results/transcribe_<lang>.json`` and a few
test utterances with reference and hypothesis. Run from the repository root after training:

    rnnkit train transcribe --data fillets-speech:cs --out models/asr-cs --steps 3000
    python benchmarks/eval_transcribe.py models/asr-cs --lm-text cs.txt      # the LM's corpus
    rnnkit train lm --data cs.txt --out models/lm-cs --hidden 256 --layers 1 --steps 1500
    python benchmarks/eval_transcribe.py models/asr-cs --beam 8 --lm models/lm-cs
"""

from __future__ import annotations

import argparse
import bisect
from pathlib import Path

import numpy as np

from common import ROOT, git_commit, machine_info, write
import rnnkit
from rnnkit import metrics as M
from rnnkit.tasks.transcribe import (LanguageModelScorer, SpeechData, TranscribeOptions, decode_ids, encode_text, score,
                                     transcribe_features)


def closest_duration_cer(data: SpeechData, encoding: dict) -> float:
    """CER of answering each test clip with the training transcript of the nearest length."""
    train = sorted((len(f), text) for f, text, *_ in data.parts["train"])
    lengths = [n for n, _ in train]
    refs, hyps = [], []
    for f, text, *_ in data.parts["test"]:
        i = bisect.bisect_left(lengths, len(f))
        near = min((j for j in (i - 1, i) if 0 <= j < len(train)), key=lambda j: abs(lengths[j] - len(f)))
        refs.append(decode_ids(encoding, encode_text(encoding, text)))
        hyps.append(train[near][1])
    return M.error_rate(refs, hyps, "char")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--beam", type=int, default=8, help="width of the prefix beam search (default 8)")
    parser.add_argument("--examples", type=int, default=8, help="test utterances shown with reference and hypothesis")
    parser.add_argument("--lm", type=Path, help="a character language model for the beam (trained on --lm-text)")
    parser.add_argument("--lm-text", type=Path, help="write the training levels' transcripts to this file and stop")
    args = parser.parse_args(argv)
    model = rnnkit.load(args.model_dir)
    opts = TranscribeOptions(**model.config["task_options"])
    data = SpeechData(opts, model.config["training"]["seed"], model.encoding)
    enc, batch = model.encoding, opts.batch_size
    if args.lm_text:
        args.lm_text.write_text("\n".join(text for _, text, *_ in data.parts["train"]) + "\n", encoding="utf-8")
        print(f"wrote {args.lm_text}: {len(data.parts['train'])} training utterances")
        return 0
    result = {"model": str(args.model_dir), "data": model.config["data"], "options": model.config["task_options"],
              "steps": model.config.get("metrics", {}).get("step"), "baselines": {"test_cer_empty": 1.0,
                                                                                   "test_cer_closest_duration": closest_duration_cer(data, enc)}}
    for name in ("train", "valid", "test"):
        result[f"{name}_greedy"] = score(model.model, enc, data.parts[name], batch)
        result[f"{name}_utterances"] = len(data.parts[name])
    test_features = [f for f, *_ in data.parts["test"]]
    refs = [decode_ids(enc, encode_text(enc, text)) for _, text, *_ in data.parts["test"]]
    beamed = transcribe_features(model.model, enc, test_features, batch, beam=args.beam)
    result[f"test_beam{args.beam}"] = {"cer": M.error_rate(refs, beamed, "char"), "wer": M.error_rate(refs, beamed, "word")}
    if args.lm:
        lm = rnnkit.load(args.lm)
        scorer = lambda: LanguageModelScorer(lm, enc["chars"])  # noqa: E731
        valid_features = [f for f, *_ in data.parts["valid"]]
        valid_refs = [decode_ids(enc, encode_text(enc, text)) for _, text, *_ in data.parts["valid"]]
        grid = {}
        for weight in (0.3, 0.6):
            for bonus in (0.5, 1.5):
                hyps = transcribe_features(model.model, enc, valid_features, batch, args.beam, scorer, weight, bonus)
                grid[f"{weight},{bonus}"] = M.error_rate(valid_refs, hyps, "char")
        weight, bonus = map(float, min(grid, key=grid.get).split(","))
        with_lm = transcribe_features(model.model, enc, test_features, batch, args.beam, scorer, weight, bonus)
        result[f"test_beam{args.beam}_lm"] = {"cer": M.error_rate(refs, with_lm, "char"), "wer": M.error_rate(refs, with_lm, "word"),
                                              "lm": str(args.lm), "lm_weight": weight, "length_bonus": bonus,
                                              "valid_cer_grid": grid}
    rng = np.random.default_rng(0)
    shown = rng.choice(len(refs), size=min(args.examples, len(refs)), replace=False)
    result["examples"] = [{"reference": refs[i], "greedy": transcribe_features(model.model, enc, [test_features[i]], 1)[0],
                           "beam": beamed[i], "audio": str(data.parts["test"][i][3])} for i in shown]
    result["machine"], result["git"] = machine_info(), git_commit()
    lang = opts.data.split(":")[-1] if opts.data.startswith("fillets-speech:") else "data"
    out = ROOT / "benchmarks" / "results" / f"transcribe_{lang}.json"
    write(out, result)
    for key in ("baselines", "train_greedy", "valid_greedy", "test_greedy", f"test_beam{args.beam}", f"test_beam{args.beam}_lm"):
        if key in result:
            print(f"{key:>22}: {result[key]}")
    for ex in result["examples"]:
        print(f"  ref: {ex['reference']}\n  hyp: {ex['beam']}\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
