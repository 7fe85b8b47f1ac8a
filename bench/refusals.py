"""How fast bad input is refused: the speed half of the hostile-input tests, which check only
what is refused and how it is said.

    python bench/refusals.py [--rounds 5]

Times, as medians of `--rounds`: a decompression bomb (220 kB of PNG that decode to 7071x7071
RGBA, rotated by EXIF) refused from its header; a run folder whose config.json nests 100,000
levels deep, and one whose weights hold the wrong shapes; a JSON request body of 5,000 digits; a
FIFO named like an IDX file; a 1600x1200 page of 6,000 dots read as a number (target: 0.5 s).
Prints one JSON object with the machine it ran on.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from digitlearn import DigitlearnError, Predictor, load_dataset, load_model
from digitlearn.hardware import machine_info
from digitlearn.jsondata import read_json
from digitlearn.models.saved import CONFIG, WEIGHTS
from digitlearn.vision.images import open_image
from tests.conftest import draw_digit, save_untrained
from tests.test_numbers import dots
from tests.test_serve_load import rotated_rgba


def refusal_seconds(attempt, rounds: int) -> float:
    """The median time `attempt()` takes to raise a DigitlearnError (and it must raise one)."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        try:
            attempt()
        except DigitlearnError:
            times.append(time.perf_counter() - start)
        else:
            raise SystemExit(f"{attempt.__name__} was not refused")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    run = save_untrained(tmp / "run")
    deep = tmp / "deep"
    deep.mkdir()
    (deep / CONFIG).write_bytes(b"[" * 100_000 + b"]" * 100_000)
    (deep / WEIGHTS).write_bytes((run / WEIGHTS).read_bytes())
    wrong = tmp / "wrong"
    wrong.mkdir()
    (wrong / CONFIG).write_text((run / CONFIG).read_text().replace('"n_out": 10', '"n_out": 9'))
    (wrong / WEIGHTS).write_bytes((run / WEIGHTS).read_bytes())
    fifo = tmp / "idx"
    fifo.mkdir()
    os.mkfifo(fifo / "train-images-idx3-ubyte")
    bomb = rotated_rgba(7071)

    def bomb_image():
        open_image(bomb)

    def deep_config():
        load_model(deep)

    def wrong_weights():
        load_model(wrong)

    def long_number():
        read_json(b'{"image": ' + b"9" * 5000 + b"}", 32, 100)

    def fifo_dataset():
        load_dataset(fifo)

    predictor = Predictor.load(run)
    page = dots(2, 6000)  # 1600x1200, 6,000 dots: read as "11111111111" in 10 s once
    predictor.predict_number(draw_digit("7"))  # warm: the first call imports SciPy

    def page_of_dots_as_a_number():
        predictor.predict_number(page)

    cases = (bomb_image, deep_config, wrong_weights, long_number, fifo_dataset, page_of_dots_as_a_number)
    seconds = {case.__name__: round(refusal_seconds(case, args.rounds), 4) for case in cases}
    print(
        json.dumps({"machine": machine_info(), "rounds": args.rounds, "seconds_to_refuse": seconds}, indent=2)
    )


if __name__ == "__main__":
    main()
