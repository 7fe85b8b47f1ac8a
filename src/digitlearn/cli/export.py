"""`digitlearn export`: a run's model as one ONNX or TorchScript file for other runtimes."""

import argparse

from .shared import add_device

NAME, HELP, TORCH = "export", "write a run's model as an ONNX or TorchScript file", True


def add_arguments(q: argparse.ArgumentParser) -> None:
    q.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `digitlearn train`")
    q.add_argument("--format", choices=["onnx", "torchscript"], default="onnx", help="default %(default)s")
    q.add_argument("--out", required=True, metavar="FILE", help="the file to write, e.g. model.onnx")
    add_device(q, "cpu")


def run(args: argparse.Namespace) -> int:
    import contextlib
    import io

    from ..inference.export import export
    from ..inference.predictor import Predictor

    predictor = Predictor.load(args.run_dir, args.device)
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter's own progress lines
        path = export(predictor, args.out, args.format)
    h, w = predictor.size
    print(
        f"wrote {path}: {args.format}, input float32 (N, 1, {h}, {w}) pixels in [0, 1], ink 1; "
        f"output the probabilities of {', '.join(predictor.classes)}"
    )
    return 0
