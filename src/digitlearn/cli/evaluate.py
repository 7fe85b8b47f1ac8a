"""`digitlearn evaluate`: a run's accuracy, per-class scores, confusion matrix and top losses."""

import argparse
import json
from pathlib import Path

from ..errors import DigitlearnError
from ..files import atomic_path
from ..jsondata import jsonable
from ..tables import table
from .shared import add_device, count, size

NAME, HELP, TORCH = "evaluate", "accuracy, per-class precision/recall and confusion matrix of a run", True


def add_arguments(q: argparse.ArgumentParser) -> None:
    q.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `digitlearn train`")
    q.add_argument("--data", help="dataset to evaluate on (default: the one the run was trained on)")
    q.add_argument("--size", type=size, help="resize every image, e.g. 28 or 28x28")
    q.add_argument("--split", default="valid", help="split to evaluate (default %(default)s)")
    add_device(q, "cpu")
    q.add_argument("--out", metavar="DIR", help="write confusion_matrix.png, top_losses.png, evaluation.json")
    q.add_argument("--top-losses", type=count, default=16, help="images in top_losses.png")
    q.add_argument("--json", action="store_true", help="print the figures as JSON")


def run(args: argparse.Namespace) -> int:
    from ..data.dataset import load_dataset
    from ..inference.interpret import Interpretation
    from ..inference.predictor import Predictor
    from ..plots.charts import save_figure

    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not out.is_dir():
        raise DigitlearnError(f"{out} is a file: --out names a folder for the figures")
    predictor = Predictor.load(args.run_dir, args.device)
    data = args.data or predictor.trained_on
    if not data:
        raise DigitlearnError(
            f"{args.run_dir}: the run does not say what data it was trained on: give --data"
        )
    ds = load_dataset(data, size=args.size)
    predictor.check_data(ds, data)
    split = ds.split(args.split)
    interp = Interpretation.from_predictor(predictor, split)
    report = {"run": str(args.run_dir), "data": data, "split": args.split, **interp.summary()}
    written = []
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        written.append(save_figure(interp.plot_confusion_matrix(), out / "confusion_matrix.png"))
        written.append(save_figure(interp.plot_top_losses(args.top_losses), out / "top_losses.png"))
        with atomic_path(out / "evaluation.json") as tmp:
            tmp.write_text(json.dumps(jsonable(report), indent=2) + "\n")
        written.append(out / "evaluation.json")
    if args.json:
        print(json.dumps(jsonable(report), indent=2))
        return 0
    arch = (predictor.config.get("model") or {}).get("arch", "model")
    correct = int(interp.confusion_matrix().diag().sum())
    print(f"{args.run_dir} ({arch}) on {data} {args.split}: {len(split):,} images")
    print(f"accuracy {interp.accuracy:.4f} ({correct:,}/{len(split):,})\n")
    rows = [
        [r["class"], f"{r['precision']:.4f}", f"{r['recall']:.4f}", f"{r['f1']:.4f}", f"{r['support']:,}"]
        for r in report["per_class"]
    ]
    print(table(["class", "precision", "recall", "f1", "images"], rows, align=">>>>>"))
    print("\nconfusion matrix (rows: actual, columns: predicted)")
    cm = report["confusion_matrix"]
    cells = [[c, *(f"{v:,}" for v in line)] for c, line in zip(predictor.classes, cm, strict=True)]
    print(table(["", *predictor.classes], cells, align=">" * (len(cm) + 1)))
    if report["most_confused"]:
        shown = ", ".join(
            f"{m['actual']} as {m['predicted']} ({m['count']})" for m in report["most_confused"][:5]
        )
        print(f"\nmost confused (actual as predicted): {shown}")
    for path in written:
        print(f"wrote {path}")
    return 0
