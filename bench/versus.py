"""Side by side, in one run: digitlearn's recipes, fastai's Learner and PyTorch's MNIST example.

Contenders, all on full MNIST (60,000 training images, accuracy on the 10,000 test images), at
the same thread count, alternating within each round (the order rotates from round to round, so
a busy moment of a shared machine hits them alike); medians over the rounds:

- `digitlearn fast`: our Learner and the fast recipe, in this process
  (`RECIPES["fast"].learner(ds, seed)`, then `recipe.fit(learn)`);
- `digitlearn fast, no skipping`: the same recipe with `skip_learned=0`, so every epoch trains on
  every example: the same work as fastai does below;
- `fastai fast`, `fastai best` (each recipe of `--fastai-recipes`): fastai's `Learner` on the very
  same network (`MODELS["lenet"]` with the recipe's options, in the same channels-last layout),
  the same normalised float tensors, the recipe's batch size, epochs, peak rate and label
  smoothing (for fast: batch 256, `fit_one_cycle(2, 0.015, moms=(0.75, 0.65, 0.75))`,
  cross-entropy smoothed by 0.1) with fastai's Adam at the recipe's betas (0.7, 0.9), no weight
  decay, eps 1e-8, validated once at the end, no skipping. Where the recipe whitens its first
  convolution or augments (best), fastai's model is whitened by the same function and a fastai
  callback applies the same `random_affine` to the same epochs' batches (fastai's own affine
  augmentation lives in fastai.vision, which needs torchvision, and PyPI's torchvision cannot load
  its compiled operators with the CPU torch). It runs in a process of
  its own (fastai is not a dependency of digitlearn: `make bench-versus` installs it into
  `.venv-bench`), with an untimed warm-up there first;
- `pytorch example`: PyTorch's official MNIST example (`reference()` of time_to_accuracy.py:
  its network, Adadelta, batch 64, a plain PyTorch loop), for `--ref-epochs`, in this process.

`--recipes` names digitlearn's recipes (default fast,best; any name in `RECIPES`, `top` once it
exists); fastai runs each of them too, unless `--fastai-recipes` names fewer.
Every contender reports the CPU and instruction set (ISA) of the process that trained it.
If fastai cannot be imported by this Python or by `--fastai-python`, the JSON says so and the
other contenders run.

    make bench-versus
    .venv-bench/bin/python bench/versus.py --rounds 3 --seeds 1,2,3 --ref-epochs 1
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from digitlearn import load_dataset
from digitlearn.hardware import machine_info, set_threads
from digitlearn.models import MODELS
from digitlearn.training.recipes import RECIPES, Recipe

HERE = Path(__file__).resolve()
DEFAULT_FASTAI_PYTHON = HERE.parent.parent / ".venv-bench" / "bin" / "python"
REFERENCE = "pytorch example"


def where() -> dict:
    """The machine this process trains on, with torch's own name for the ISA it uses."""
    return {**machine_info("cpu"), "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def no_skipping(recipe: Recipe) -> Recipe:
    """`recipe` training on every example in every epoch."""
    return replace(recipe, skip_learned=0.0, skip_from=1.0)


def same_work(name: str) -> str:
    """The contender that trains recipe `name` with digitlearn on every example: fastai's work."""
    return f"digitlearn {name}, no skipping"


# ------------------------------------------------------------------ digitlearn


def digitlearn_run(recipe: Recipe, ds: Any, seed: int) -> dict:
    """Train `recipe` with digitlearn's Learner: seconds of `fit` (the last validation included)."""
    learn = recipe.learner(ds, seed, progress=False)  # builds data and model: not timed
    start = time.perf_counter()
    recipe.fit(learn)
    seconds = time.perf_counter() - start
    last = learn.recorder.history[-1]
    return {"seed": seed, "train_seconds": seconds, "accuracy": last[learn.recorder.metric_columns[0]]}


# ------------------------------------------------------------------ fastai


def fastai_run(recipe: Recipe, seed: int, workers: int | None, warmup: bool) -> dict:
    """Train the recipe's network and schedule with fastai's Learner (imported only here);
    `workers`: its DataLoader's loader processes (None: fastai's default, one per CPU)."""
    from functools import partial

    import fastai.callback.progress  # Learner.no_bar (and the progress bar every fastai user gets)
    import fastai.callback.schedule  # noqa: F401  (Learner.fit_one_cycle)
    from fastai.callback.core import Callback, CancelValidException
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner
    from fastai.metrics import accuracy
    from fastai.optimizer import Adam
    from fastai.torch_core import set_seed
    from torch.nn import functional as F
    from torch.utils.data import TensorDataset

    from digitlearn.training import Augment as Augmenting
    from digitlearn.training import random_affine
    from digitlearn.training.whiten import N_IMAGES, whiten_first_conv

    class ValidateAtEnd(Callback):
        """What the recipe does (`validate="last"`): skip validation until the last epoch."""

        def before_validate(self) -> None:
            if self.epoch < self.n_epoch - 1:
                raise CancelValidException()

    class Augment(Callback):
        """What the recipe's `Augment(plain_ends=...)` does, as a fastai callback: a fresh random
        affine transform of each training image in the epochs digitlearn's callback augments."""

        epochs = Augmenting(plain_ends=recipe.plain_ends)

        def before_batch(self) -> None:
            if self.training and self.epochs.augments(self.epoch, self.n_epoch):
                self.learn.xb = (random_affine(self.xb[0], fill=-mean / std),)

    ds = load_dataset("mnist")
    mean, std = 0.1307, 0.3081  # the training pixels' statistics, as digitlearn rounds them

    def images(x: torch.Tensor) -> torch.Tensor:
        return ((x.float() / 255 - mean) / std).unsqueeze(1)

    train = TensorDataset(images(ds.train.x), ds.train.y)
    test = TensorDataset(images(ds.valid.x), ds.valid.y)

    loss = partial(F.cross_entropy, label_smoothing=recipe.label_smoothing)

    def learner(train: TensorDataset) -> Learner:
        loaders = {} if workers is None else {"num_workers": workers}
        dls = DataLoaders.from_dsets(train, test, bs=recipe.bs, device=torch.device("cpu"), **loaders)
        h, w = ds.train.x.shape[1:]
        model = MODELS[recipe.model].build(len(ds.classes), (h, w), recipe.options)
        if recipe.whiten:  # the first convolution made from the same images, and frozen, as the recipe does
            whiten_first_conv(model, train.tensors[0][:N_IMAGES])
        model = model.to(memory_format=torch.channels_last)  # as the recipe places it
        # fastai's Adam is AdamW (decoupled weight decay) like ours; the recipe has none, and eps 1e-8
        opt = partial(Adam, mom=recipe.momentum, sqr_mom=recipe.sqr_mom, eps=1e-8, wd=recipe.wd)
        cbs = [ValidateAtEnd(), *([Augment()] if recipe.augment else [])]
        return Learner(dls, model, loss_func=loss, opt_func=opt, metrics=accuracy, cbs=cbs)

    high, low = round(recipe.momentum + 0.05, 6), round(recipe.momentum - 0.05, 6)
    if warmup:  # the first fit of a process is slower (oneDNN kernels, allocator): a short one, untimed
        set_seed(seed)
        warm = learner(TensorDataset(*train[:10_000]))
        with warm.no_bar(), warm.no_logging():
            warm.fit_one_cycle(1, recipe.lr, moms=(high, low, high))
    set_seed(seed)
    learn = learner(train)
    with learn.no_bar(), learn.no_logging():  # fastai's progress bar and its table of epochs, silenced
        start = time.perf_counter()
        learn.fit_one_cycle(recipe.epochs, recipe.lr, moms=(high, low, high))
        seconds = time.perf_counter() - start
    value = learn.recorder.values[-1][-1]  # train loss, valid loss, accuracy of the last epoch
    return {"seed": seed, "train_seconds": seconds, "accuracy": float(value)}


def fastai_version(python: str) -> str | None:
    """fastai's version as `python` imports it, or None when it cannot."""
    done = subprocess.run(
        [python, "-c", "import fastai; print(fastai.__version__)"], capture_output=True, text=True
    )
    return done.stdout.strip() if done.returncode == 0 else None


def fastai_apart(python: str, recipe_name: str, seed: int, threads: int, workers: int) -> dict:
    """One fastai run in a fresh process of `python`: fastai's import and global settings stay
    out of this process, and it runs as a fastai user's would (without digitlearn's settings)."""
    cmd = [python, str(HERE), "--worker", "--recipes", recipe_name, "--seeds", str(seed)]
    cmd += ["--threads", str(threads), "--fastai-workers", str(workers)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"the fastai run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def worker(args: argparse.Namespace) -> None:
    """`--worker`: one fastai run, printed as JSON with this process's machine."""
    set_threads(args.threads)
    recipe = RECIPES[args.recipes]
    workers = None if args.fastai_workers < 0 else args.fastai_workers
    run = fastai_run(no_skipping(recipe), int(args.seeds), workers, warmup=True)
    print(json.dumps({**run, "machine": where()}))


# ------------------------------------------------------------------ the comparison


def summary(runs: list[dict], epochs: int) -> dict:
    seconds = statistics.median(r["train_seconds"] for r in runs)
    return {
        "epochs": epochs,
        "median_train_seconds": round(seconds, 2),
        "median_seconds_per_epoch": round(seconds / epochs, 2),
        "median_accuracy": round(statistics.median(r["accuracy"] for r in runs), 4),
        "runs": [
            {**r, "train_seconds": round(r["train_seconds"], 2), "accuracy": round(r["accuracy"], 4)}
            for r in runs
        ],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="rounds; round i trains at the i-th seed (cycling)")
    p.add_argument("--seeds", default="1,2,3", help="comma-separated seeds")
    p.add_argument("--recipes", default="fast,best", help="digitlearn recipes (fast,top once top exists)")
    p.add_argument(
        "--fastai-recipes", default=None,
        help="the recipes whose network and schedule fastai runs (default: all of --recipes)",
    )  # fmt: skip
    p.add_argument("--fastai-python", default=None, help="a Python that imports fastai (default: this one, "
                   f"else {DEFAULT_FASTAI_PYTHON.relative_to(HERE.parent.parent)})")  # fmt: skip
    p.add_argument("--no-fastai", action="store_true", help="leave fastai out")
    p.add_argument(
        "--fastai-workers", type=int, default=0,
        help="fastai's loader processes; 0, as the data are tensors in memory (-1: its default, one a CPU)",
    )  # fmt: skip
    p.add_argument("--ref-epochs", type=int, default=1, help="epochs of PyTorch's example (0: leave it out)")
    p.add_argument(
        "--ref-rounds", type=int, default=1,
        help="the first N rounds run PyTorch's example (an epoch of it takes as long as a round of the rest)",
    )  # fmt: skip
    p.add_argument(
        "--threads", type=int, default=None, help="threads of every contender (default: one a core)"
    )
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one fastai run, for main
    args = p.parse_args()
    if args.worker:
        return worker(args)

    if args.rounds < 1:
        sys.exit("--rounds: 1 or more")
    threads = set_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    names = args.recipes.split(",")
    fastai_names = [] if args.no_fastai else (args.fastai_recipes or args.recipes).split(",")
    unknown = [n for n in [*names, *fastai_names] if n not in RECIPES]
    if unknown:
        sys.exit(f"unknown recipe {unknown[0]!r} (known: {', '.join(RECIPES)})")
    not_ours = [n for n in fastai_names if n not in names]
    if not_ours:
        sys.exit(f"--fastai-recipes: {not_ours[0]!r} is not in --recipes, so nothing would run beside it")
    slow = [n for n in fastai_names if RECIPES[n].precision != "fp32"]
    if slow:
        sys.exit(f"the fastai contender runs fp32 recipes, and {slow[0]!r} is not one")
    report: dict[str, Any] = {"machine": where(), "accuracy on": "the 10,000 test images"}

    # the contenders: name -> (epochs, one run at a seed)
    ds = load_dataset("mnist")  # fetched and decoded once, before anything is timed
    contenders: dict[str, tuple[int, Any]] = {}
    for name in names:
        recipe = RECIPES[name]
        contenders[f"digitlearn {name}"] = (recipe.epochs, lambda s, r=recipe: digitlearn_run(r, ds, s))
        if recipe.skip_learned and (name in fastai_names or name == names[0]):  # fastai's work
            plain = no_skipping(recipe)
            contenders[same_work(name)] = (plain.epochs, lambda s, r=plain: digitlearn_run(r, ds, s))
    if fastai_names:
        candidates = (
            [args.fastai_python] if args.fastai_python else [sys.executable, str(DEFAULT_FASTAI_PYTHON)]
        )
        found = [(py, v) for py in candidates if Path(py).exists() and (v := fastai_version(py))]
        if found:
            python, version = found[0]
            report["fastai"] = {"version": version, "python": python}
            for name in fastai_names:
                contenders[f"fastai {name}"] = (
                    RECIPES[name].epochs,
                    lambda s, n=name: fastai_apart(python, n, s, threads, args.fastai_workers),
                )
        else:
            report["fastai"] = {
                "error": f"fastai cannot be imported by {' or '.join(candidates)}: "
                "run `make bench-versus`, which installs it into .venv-bench"
            }
    if args.ref_epochs:
        sys.path.insert(0, str(HERE.parent))
        from time_to_accuracy import reference

        def ref(seed: int) -> dict:
            out = reference(seed, args.ref_epochs)
            # its seconds per epoch include scoring the test set after each epoch
            return {"seed": seed, "train_seconds": sum(out["seconds_per_epoch"]),
                    "accuracy": out["accuracy_per_epoch"][-1]}  # fmt: skip

        contenders[REFERENCE] = (args.ref_epochs, ref)

    # an untimed warm-up of this process for each recipe (oneDNN's kernels for its layer sizes) and
    # the allocator's first big blocks; each fastai process warms up on its recipe too
    for name in names:
        digitlearn_run(replace(RECIPES[name], epochs=1), ds, 0)

    runs: dict[str, list[dict]] = {name: [] for name in contenders}
    order = list(contenders)
    for i in range(args.rounds):
        seed = seeds[i % len(seeds)]
        k = i % len(order)
        for name in order[k:] + order[:k]:
            if name == REFERENCE and i >= args.ref_rounds:
                continue
            epochs, run = contenders[name]
            result = {"round": i + 1, **run(seed)}
            runs[name].append(result)
            print(f"round {i + 1} {name} seed {seed}: {result['train_seconds']:.2f} s, "
                  f"accuracy {result['accuracy']:.4f}", file=sys.stderr, flush=True)  # fmt: skip

    results = {}
    for name, (epochs, _) in contenders.items():
        results[name] = summary(runs[name], epochs)
        machines = [r.pop("machine") for r in results[name]["runs"] if "machine" in r]
        results[name]["machine"] = machines[0] if machines else report["machine"]
    report["contenders"] = results

    # ratios taken round by round, then their median: the two runs of a round are a minute or two
    # apart at most, so a busy spell of the shared machine slows both alike
    def ratio(a: str, b: str, per_epoch: bool = False) -> dict | None:
        if a not in results or b not in results:
            return None
        seconds = {
            name: {
                r["round"]: r["train_seconds"] / (contenders[name][0] if per_epoch else 1) for r in runs[name]
            }
            for name in (a, b)
        }
        each = [
            round(seconds[a][i] / seconds[b][i], 2) for i in sorted(seconds[a].keys() & seconds[b].keys())
        ]
        return {"median": round(statistics.median(each), 2), "rounds": each}

    ratios = {}
    for name in fastai_names:
        ours, plain, theirs = f"digitlearn {name}", same_work(name), f"fastai {name}"
        if plain not in results:  # a recipe that does not skip: ours is already the same work
            ratios[f"{theirs} / {ours}: training s, the same work"] = ratio(theirs, ours)
            continue
        ratios[f"{theirs} / {plain}: training s, the same work"] = ratio(theirs, plain)
        ratios[f"{theirs} / {ours}: training s, what each gives its user"] = ratio(theirs, ours)
        ratios[f"{plain} / {ours}: training s, what skipping saves"] = ratio(plain, ours)
    first = f"digitlearn {names[0]}"
    plain = same_work(names[0]) if same_work(names[0]) in results else first
    own_terms = f"pytorch example / {first}: training s, each its own schedule and accuracy"
    ratios[own_terms] = ratio(REFERENCE, first)
    ratios[f"pytorch example / {plain}: s per epoch (batch 64, a bigger net)"] = ratio(REFERENCE, plain, True)
    report["ratios"] = {k: v for k, v in ratios.items() if v is not None}
    report["threads"] = threads
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
