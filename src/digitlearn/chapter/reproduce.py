"""`digitlearn reproduce`: the chapter end to end, each of its figures next to the one we get.

Every step runs one part of the chapter and adds checks (rows of the table) and figures. A
check passes by one of three rules, stated in its "chapter's figure" cell:
- exact: deterministic figures (data sizes, pixels, distances, gradients, the baseline) must
  print the same digits as the chapter;
- trained: accuracies pass at the chapter's figure minus TOLERANCE or better, because training
  starts from random numbers and our seeds are not the book's;
- further research (full MNIST), where the chapter gives no figure: the rule says what is
  checked instead (each model beats the one before it; the CNN reaches 99%).
"""

import itertools
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn
from tqdm import tqdm  # not tqdm.auto: without ipywidgets it warns in notebooks, for no gain

from ..data.dataset import Dataset, load_dataset
from ..data.loaders import DataLoader
from ..device import pick_device, set_seed
from ..inference.interpret import Interpretation
from ..jsondata import jsonable
from ..models import linear1, simple_net
from ..models.layers import n_params
from ..plots.charts import image_grid, plot_curve, plot_fits, plot_functions, plot_pixels, plot_training
from ..tables import table
from ..training import Learner, interactive
from ..training.losses import mnist_loss
from ..training.metrics import batch_accuracy
from ..training.optim import SGD, BasicOptim
from ..training.recipes import default_recipe
from . import beside
from .baseline import PixelSimilarity, mnist_distance, rmse_distance

TOLERANCE = 0.005  # how far below the chapter's accuracy a trained step may land and still pass
# the chapter's example 3 (threes[1], train/3/10000.png), rows and columns 4:10, as it prints them
EXAMPLE_PIXELS = [
    [0, 0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 29],
    [0, 0, 0, 48, 166, 224],
    [0, 93, 244, 249, 253, 187],
    [0, 107, 253, 253, 230, 48],
    [0, 3, 20, 20, 15, 0],
]


@dataclass
class Check:
    """One row of the table: what was measured, the chapter's figure (and the pass rule when it
    is not "the same digits"), ours, and whether ours passes."""

    section: str
    step: str
    chapter: str
    ours: str
    ok: bool
    value: object = None  # ours, machine-readable, for results.json


def exact(section: str, step: str, chapter: str, ours: str, value: object = None) -> Check:
    """Passes when ours prints exactly as the chapter's figure does."""
    return Check(section, step, chapter, ours, ours == chapter, value)


def at_least(section: str, step: str, chapter: str, value: float, floor: float, rule: str = "") -> Check:
    """Passes when `value` >= `floor`; the chapter's cell says what the floor is and why."""
    why = rule or f">= {floor:.4f} passes"
    return Check(section, step, f"{chapter}; {why}", f"{value:.4f}", value >= floor, value)


def status(checks: Iterable[Check]) -> int:
    """The exit status of a reproduction: 0 when every check passed, 1 when any failed."""
    return 0 if all(c.ok for c in checks) else 1


def format_table(checks: list[Check]) -> str:
    """The checks as an aligned text table, step | chapter's figure | ours | ok, by section."""
    rows = [(c.step, c.chapter, c.ours, "ok" if c.ok else "FAIL") for c in checks]
    header = ("step", "chapter's figure", "ours", "ok")
    lines = table(header, rows, align="<<<<", rule=True, sections=[c.section for c in checks])
    passed = sum(c.ok for c in checks)
    return (
        lines + f"\n{passed} of {len(checks)} checks passed" + ("" if passed == len(checks) else ": FAILED")
    )


@dataclass
class Context:
    """What the steps share: settings, the data (loaded once), and what they found."""

    seed: int = 42
    device: str = "auto"
    quick: bool = False
    checks: list[Check] = field(default_factory=list)
    figures: dict[str, tuple[str, Figure]] = field(default_factory=dict)  # name -> (caption, figure)
    results: dict[str, dict] = field(default_factory=dict)  # section -> its figures, for results.json
    _data: dict[str, Dataset] = field(default_factory=dict)

    def data(self, name: str) -> Dataset:
        if name not in self._data:
            self._data[name] = load_dataset(name)
        return self._data[name]

    def figure(self, name: str, caption: str, fig: Figure) -> None:
        self.figures[name] = (caption, fig)


@dataclass
class Step:
    title: str
    run: Callable[[Context], object]  # what it returns is not used
    quick: bool = True  # part of `--quick`
    beside: bool = False  # needs nothing the other steps make: may run in a second process


# ---------------------------------------------------------------- mnist_sample: the chapter's steps


def _example_three(ds: Dataset):
    return ds.train.of_class(ds.class_index("3"))


def _data(ctx: Context) -> None:
    s, ds = "data", ctx.data("mnist_sample")
    for split, chapter in (("train", "6131 / 6265"), ("valid", "1010 / 1028")):
        sp = ds.split(split)
        n3, n7 = (int((sp.y == ds.class_index(c)).sum()) for c in ("3", "7"))
        ctx.checks.append(exact(s, f"mnist_sample {split}: 3s / 7s", chapter, f"{n3} / {n7}", [n3, n7]))
    threes = _example_three(ds)
    name = f"train/{threes.names[1]}"
    ctx.checks.append(exact(s, "example 3 is threes[1], the second 3 by name", "train/3/10000.png", name))
    grid = threes.x[1, 4:10, 4:10]
    same = int((grid == torch.tensor(EXAMPLE_PIXELS, dtype=torch.uint8)).sum())
    ctx.checks.append(
        Check(
            s,
            "example 3: pixels [4:10, 4:10]",
            "36 values as printed",
            f"{same} of 36 equal",
            same == 36,
            grid.tolist(),
        )
    )
    ctx.results["data"] = {"pixels_4_10": grid.tolist(), "example": name}
    ctx.figure(
        "example_pixels",
        "The example 3's pixels, rows 4 to 14 and columns 4 to 21: 0 is white paper, 255 black ink.",
        plot_pixels(threes.x[1], slice(4, 15), slice(4, 22), f"{name}, pixels [4:15, 4:22]"),
    )


def _pixel_similarity(ctx: Context) -> None:
    s, ds = "pixel similarity", ctx.data("mnist_sample")
    model = PixelSimilarity("l1").fit(ds.train.x, ds.train.y, len(ds.classes))
    mean3, mean7 = model.means
    a_3 = _example_three(ds).floats()[1]
    for c, mean, chapter in (("3", mean3, "0.1114 / 0.2021"), ("7", mean7, "0.1586 / 0.3021")):
        l1, rmse = float(mnist_distance(a_3, mean)), float(rmse_distance(a_3, mean))
        ctx.checks.append(
            exact(
                s, f"example 3: L1 / RMSE distance to mean {c}", chapter, f"{l1:.4f} / {rmse:.4f}", [l1, rmse]
            )
        )
    l1, rmse = float(F.l1_loss(a_3, mean7)), float(F.mse_loss(a_3, mean7).sqrt())
    ctx.checks.append(
        exact(s, "the same by F.l1_loss / F.mse_loss().sqrt()", "0.1586 / 0.3021", f"{l1:.4f} / {rmse:.4f}")
    )
    valid_3 = ds.valid.of_class(ds.class_index("3")).floats()
    shape = str(mnist_distance(valid_3, mean3).shape)  # (1010, 28, 28) against (28, 28): broadcast
    ctx.checks.append(exact(s, "distances of the valid 3s to mean 3: shape", "torch.Size([1010])", shape))
    report = model.evaluate(ds.valid, ds.classes)
    acc = [*report.class_accuracy, report.mean_class_accuracy]
    ctx.checks.append(
        exact(
            s,
            "accuracy on valid 3s / 7s / average",
            "0.9168 / 0.9854 / 0.9511",
            " / ".join(f"{a:.4f}" for a in acc),
            acc,
        )
    )
    ctx.results["pixel_similarity"] = {"accuracy_3s_7s_average": acc}
    ctx.figure(
        "means",
        "The ideal 3 and 7: the mean of every training image of each class.",
        image_grid(model.means, ["mean 3", "mean 7"], size=2.2),
    )


def _gradients(ctx: Context) -> None:
    s = "gradients"
    xt = torch.tensor(3.0).requires_grad_()
    (xt**2).backward()
    ctx.checks.append(exact(s, "d(x**2)/dx at x = 3.0, by backward()", "tensor(6.)", str(xt.grad)))
    xt = torch.tensor([3.0, 4.0, 10.0]).requires_grad_()
    (xt**2).sum().backward()
    ctx.checks.append(
        exact(s, "gradient of sum(x**2) at [3., 4., 10.]", "tensor([ 6.,  8., 20.])", str(xt.grad))
    )
    ctx.figure(
        "activations",
        "The sigmoid squashes any number into (0, 1); ReLU replaces negatives by 0.",
        plot_functions([("sigmoid", torch.sigmoid, -4.0, 4.0), ("ReLU", F.relu, -2.0, 2.0)]),
    )


def quadratic_sgd(seed: int, steps: int = 10, lr: float = 1e-5) -> dict:
    """The chapter's end-to-end SGD example: fit `a*t**2 + b*t + c` to 20 noisy measurements of a
    roller coaster's speed over the top of a hump, by the seven steps (initialise, predict, loss,
    gradient, step, repeat, stop). Returns the data, the parameters and loss before each step."""
    set_seed(seed)
    t = torch.arange(0, 20).float()
    speed = torch.randn(20) * 3 + 0.75 * (t - 9.5) ** 2 + 1
    params = torch.randn(3).requires_grad_()  # 1. initialise
    history = []
    for _ in range(steps + 1):
        a, b, c = params
        preds = a * t**2 + b * t + c  # 2. predict
        loss = ((preds - speed) ** 2).mean()  # 3. loss (mean squared error)
        history.append({"params": params.tolist(), "loss": loss.item(), "preds": preds.detach()})
        if len(history) > steps:
            break  # 7. stop
        loss.backward()  # 4. gradient
        params.data -= lr * params.grad  # 5. step
        params.grad = None  # 6. repeat, from fresh gradients
    return {"time": t, "speed": speed, "lr": lr, "history": history}


def _quadratic(ctx: Context) -> None:
    fit = quadratic_sgd(ctx.seed)
    losses = [h["loss"] for h in fit["history"]]
    falls = all(b < a for a, b in itertools.pairwise(losses))
    ctx.checks.append(
        Check(
            "SGD on a quadratic",
            f"roller coaster: MSE over {len(losses) - 1} steps at lr 1e-5",
            "falls at every step",
            f"{losses[0]:,.0f} -> {losses[-1]:,.0f}" + ("" if falls else ", rose"),
            falls,
            losses,
        )
    )
    ctx.results["quadratic"] = {
        "lr": fit["lr"],
        "losses": losses,
        "params": [h["params"] for h in fit["history"]],
        "speed": fit["speed"].tolist(),
    }
    shown = [k for k in (0, 1, 2, 4, len(losses) - 1) if k < len(losses)]
    ctx.figure(
        "quadratic_fit",
        "Fitting a*t**2 + b*t + c to the roller coaster's speed: the model after 0, 1, 2, 4 and 10 "
        "SGD steps.",
        plot_fits(fit["time"], fit["speed"], [(f"step {k}", fit["history"][k]["preds"]) for k in shown]),
    )
    ctx.figure(
        "quadratic_loss",
        "Its loss at each step (log scale).",
        plot_curve(losses, "SGD step", "loss (MSE)", "roller coaster: loss by step", log=True),
    )


def chapter_tensors(ds: Dataset, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The chapter's x and y for one split: 3s then 7s, flattened to 784, 3s labelled 1."""
    sp = ds.split(split)
    threes, sevens = (sp.of_class(ds.class_index(c)).floats() for c in ("3", "7"))
    x = torch.cat([threes, sevens]).view(-1, 28 * 28)
    return x, torch.tensor([1] * len(threes) + [0] * len(sevens)).unsqueeze(1)


def train_by_hand(model: nn.Module, ds: Dataset, epochs: int, step: Callable[[], None]) -> dict:
    """The chapter's own loop: batches of 256 from `DataLoader(list(zip(x, y)))`, mnist_loss,
    backward, then `step()` (which updates the parameters and clears their gradients), and the
    validation accuracy after each epoch."""
    train_x, train_y = chapter_tensors(ds, "train")
    valid_x, valid_y = chapter_tensors(ds, "valid")
    dl = DataLoader(list(zip(train_x, train_y, strict=True)), batch_size=256, shuffle=True)
    losses, history = [], []
    for epoch in range(epochs):
        start, first = time.perf_counter(), len(losses)
        for xb, yb in dl:
            loss = mnist_loss(model(xb), yb)
            loss.backward()
            step()
            losses.append(loss.item())
        with torch.no_grad():
            preds = model(valid_x)
        history.append({
            "epoch": epoch,
            "train_loss": sum(losses[first:]) / (len(losses) - first),
            "valid_loss": float(mnist_loss(preds, valid_y)),
            "batch_accuracy": float(batch_accuracy(preds, valid_y)),
            "time": time.perf_counter() - start,
        })  # fmt: skip
    return {"losses": losses, "history": history}


def _record(ctx: Context, name: str, title: str, run: dict, metric: str) -> float:
    """Keep a trained model's curves (results.json and a figure); return its final metric."""
    final = run["history"][-1][metric]
    ctx.results.setdefault("training", {})[name] = {"title": title, "final": final, **run}
    ctx.figure(
        f"curves_{name}",
        f"{title}: loss and accuracy.",
        plot_training(run["losses"], run["history"], metric, title),
    )
    return final


def _linear_by_hand(ctx: Context) -> None:
    ds = ctx.data("mnist_sample")
    set_seed(ctx.seed)
    model = linear1()  # weights (784, 1) and bias, init_params: randn

    def step() -> None:
        for p in model.parameters():
            p.data -= p.grad * 1.0
            p.grad = None

    title = "linear1 from scratch (mnist_loss, batch 256, lr 1.0, 20 epochs)"
    acc = _record(ctx, "linear1", title, train_by_hand(model, ds, 20, step), "batch_accuracy")
    ctx.checks.append(
        at_least("training on mnist_sample", title, "0.9677 to 0.9741", acc, 0.9677 - TOLERANCE)
    )


def _linear_basic_optim(ctx: Context) -> None:
    ds = ctx.data("mnist_sample")
    set_seed(ctx.seed)
    model = nn.Linear(28 * 28, 1)
    opt = BasicOptim(model.parameters(), 1.0)

    def step() -> None:
        opt.step()
        opt.zero_grad()

    title = "nn.Linear + BasicOptim (lr 1.0, 10 epochs)"
    acc = _record(ctx, "linear_basic_optim", title, train_by_hand(model, ds, 10, step), "batch_accuracy")
    ctx.checks.append(at_least("training on mnist_sample", title, "0.9678", acc, 0.9678 - TOLERANCE))


def _learner_run(learn: Learner) -> dict:
    # Ctrl-C stops a Learner's fit at the end of a batch, keeping what it learned; a checked step
    # of a half-trained model would mean nothing, so the chapter stops there (one line, status 130)
    if learn.interrupted:
        raise KeyboardInterrupt
    return {"losses": learn.recorder.losses, "history": learn.recorder.history}


def _simple_net(ctx: Context) -> None:
    ds = ctx.data("mnist_sample")
    set_seed(ctx.seed)
    dls = ds.dataloaders(bs=256)
    learn = Learner(
        dls, simple_net, opt_func=SGD, loss_func=mnist_loss, metrics=batch_accuracy, progress=False
    )
    learn.fit(40, 0.1)
    title = "simple_net, Learner(...).fit(40, 0.1)"
    acc = _record(ctx, "simple_net", title, _learner_run(learn), "batch_accuracy")
    ctx.checks.append(at_least("training on mnist_sample", title, "0.982", acc, 0.982 - TOLERANCE))


def _lr_find(ctx: Context) -> None:
    ds = ctx.data("mnist_sample")
    set_seed(ctx.seed)
    learn = Learner(ds.dataloaders(bs=256), simple_net, opt_func=SGD, loss_func=mnist_loss, progress=False)
    result = learn.lr_find()
    ctx.results["lr_find"] = {"model": "simple_net", "data": "mnist_sample", "suggestion": result.suggestion,
                              "lrs": result.lrs, "losses": result.losses}  # fmt: skip
    ctx.figure(
        "lr_find",
        f"The learning-rate finder on simple_net: the loss falls fastest near lr {result.suggestion:.2g}.",
        result.plot(),
    )


def _interpretation(ctx: Context, learn: Learner, what: str) -> None:
    interp = Interpretation.from_learner(learn)
    ctx.results["interpretation"] = {
        "what": what,
        "accuracy": interp.accuracy,
        "confusion_matrix": interp.confusion_matrix().tolist(),
        "most_confused": [list(t) for t in interp.most_confused()[:10]],
    }
    ctx.figure("confusion_matrix", f"Confusion matrix: {what}.", interp.plot_confusion_matrix())
    ctx.figure("top_losses", f"The images it got most wrong: {what}.", interp.plot_top_losses(10))


def _resnet_sample(ctx: Context) -> None:
    ds = ctx.data("mnist_sample")
    # one epoch of one-cycle from scratch, at fastai's batch size; no augmentation or smoothing
    # (a ResNet of 8, 16 and 32 channels: a quarter of the time of 32, 64, 128, and on 3s and 7s as
    # accurate as the chapter's resnet18 within a few images: 0.9931 to 0.9971 at seeds 42, 1, 2, 3)
    recipe = replace(
        default_recipe("resnet"), epochs=1, bs=64, augment=False, label_smoothing=0.0, channels=(8, 16, 32)
    )
    learn = recipe.learner(ds, ctx.seed, ctx.device, progress=False)
    recipe.fit(learn)
    title = f"ResNet ({n_params(learn.model):,} parameters), fit_one_cycle(1, {recipe.lr:g}), batch 64"
    acc = _record(ctx, "resnet_sample", title, _learner_run(learn), "accuracy")
    ctx.checks.append(
        at_least("training on mnist_sample", title, "0.9941 (resnet18, lr 0.1)", acc, 0.9941 - TOLERANCE)
    )
    if ctx.quick:  # the full run interprets the CNN on all ten digits instead
        _interpretation(ctx, learn, "the ResNet on mnist_sample's valid split")


# ---------------------------------------------------------------- full MNIST: the further research

FULL = "further research: full MNIST"


def _full_baseline(ctx: Context) -> None:
    ds = ctx.data("mnist")
    sizes = f"{len(ds.train):,} / {len(ds.valid):,}"
    ctx.checks.append(exact(FULL, "MNIST train / test images, ten digits", "60,000 / 10,000", sizes))
    model = PixelSimilarity("rmse").fit(ds.train.x, ds.train.y, len(ds.classes))
    acc = model.evaluate(ds.valid, ds.classes).accuracy
    ctx.results["full_mnist"] = {"baseline": acc}
    ctx.checks.append(
        at_least(FULL, "baseline: nearest class mean by RMSE", "none", acc, 0.1, "pass > 0.10 (chance)")
    )
    ctx.figure(
        "means_mnist",
        "The ten mean digits of MNIST's training set.",
        means_figure(model.means, ds.classes),
    )


def means_figure(means: torch.Tensor, classes: list[str]) -> Figure:
    """The ten mean digits in two rows of five, each labelled in large type: the report shows a
    figure at most about 1000 px wide, and ten in a row shrank their labels below reading size."""
    return image_grid(means, classes, ncols=5, size=1.6, fontsize=16)


def _train_full(ctx: Context, name: str, beats: str = "", reach: float = 0.0, **changes: object) -> Learner:
    """Train `name` on full MNIST with its default recipe (with `changes`); it passes when it beats
    the model named `beats`, or, without one, when it reaches the accuracy `reach`."""
    ds, recipe = ctx.data("mnist"), default_recipe(name).updated(**changes)
    learn = recipe.learner(ds, ctx.seed, ctx.device, progress=False)
    recipe.fit(learn)
    title = f"{name} on MNIST ({n_params(learn.model):,} parameters, {recipe.epochs} epochs)"
    acc = _record(ctx, f"{name}_mnist", title, _learner_run(learn), "accuracy")
    results = ctx.results.setdefault("full_mnist", {})
    results[name] = acc
    if beats:
        floor, rule = math.nextafter(results[beats], 1.0), f"pass > {beats} ({results[beats]:.4f})"
    else:
        floor, rule = reach, f"pass >= {reach:.4f}"
    ctx.checks.append(at_least(FULL, f"{name}: test accuracy", "none", acc, floor, rule))
    return learn


def _full_cnn(ctx: Context) -> None:
    learn = _train_full(ctx, "lenet", reach=0.99)
    _interpretation(ctx, learn, "the CNN on MNIST's 10,000 test images")


STEPS = [
    Step("data: mnist_sample and the example 3", _data),
    Step("pixel similarity", _pixel_similarity),
    Step("gradients and activations", _gradients),
    Step("SGD on a quadratic", _quadratic),
    Step("linear1 from scratch", _linear_by_hand),
    Step("nn.Linear and BasicOptim", _linear_basic_optim),
    Step("simple_net with the Learner", _simple_net),
    Step("learning-rate finder", _lr_find),
    Step("ResNet on mnist_sample", _resnet_sample),
    Step("full MNIST: data and baseline", _full_baseline, quick=False, beside=True),
    # 5 of the chapter's 20 epochs: near its best by then (0.917 against 0.924), in a quarter of the time
    Step(
        "full MNIST: linear",
        lambda ctx: _train_full(ctx, "linear", "baseline", epochs=5),
        quick=False,
        beside=True,
    ),
    Step("full MNIST: MLP", lambda ctx: _train_full(ctx, "mlp", "linear"), quick=False, beside=True),
    Step("full MNIST: CNN", _full_cnn, quick=False),
]


@dataclass
class Reproduction:
    """Everything a reproduction found: the checks, the figures, and their numbers."""

    checks: list[Check]
    figures: dict[str, tuple[str, Figure]]
    results: dict[str, dict]
    quick: bool
    seed: int
    seconds: float
    step_seconds: dict[str, float]

    @property
    def passed(self) -> bool:
        return status(self.checks) == 0

    def to_json(self) -> dict:
        """Every figure, machine-readable (tensors as lists)."""
        return jsonable({
            "passed": self.passed,
            "quick": self.quick,
            "seed": self.seed,
            "seconds": self.seconds,
            "step_seconds": self.step_seconds,
            "checks": [asdict(c) for c in self.checks],
            "results": self.results,
        })  # fmt: skip


def reproduce(
    quick: bool = False, seed: int = 42, device: str = "auto", steps: list[Step] | None = None, log=print
) -> Reproduction:
    """Run the chapter's steps (`quick`: mnist_sample only), with a progress display: bars where
    they can redraw, else a line per step through `log`.

    On a CPU, PyTorch's threads (one per core, unless set) are shared: the steps marked `beside`
    run in a second process (`beside.py`) on half of them while the others run here on the rest,
    so on two cores each side has one. The checks, times and figures come out in the steps'
    order. `--quick` runs its steps on as many threads as a whole run gives this side, so they
    print the same numbers in both."""
    ctx = Context(seed=seed, device=device, quick=quick)
    todo = [s for s in (STEPS if steps is None else steps) if s.quick or not quick]
    threads = torch.get_num_threads()
    on_cpu = pick_device(device).type == "cpu"
    split = on_cpu and threads > 1 and beside.available()
    away = [s for s in todo if s.beside and s in STEPS] if split else []
    here = [s for s in todo if s not in away]
    bars = interactive()
    bar = tqdm(total=len(todo), unit="step", leave=False, disable=not bars)
    say = bar.write if bars else log  # a line per step, above the bar when there is one
    start, found = time.perf_counter(), {}

    def done(step: Step, seconds: float, checks: list[Check], figures: list) -> None:
        found[step.title] = (seconds, checks, figures)
        failed = sum(not c.ok for c in checks)
        line = f"[{len(found):>2}/{len(todo)}] {step.title}: {seconds:.1f}s"
        say(line + (f", {failed} FAILED" if failed else ""))
        bar.update(1)

    proc = None
    try:
        if away:
            titles = [s.title for s in away]
            proc = beside.start(f"{__name__}:run_beside", titles, seed, device, threads // 2)
        if on_cpu:
            torch.set_num_threads(threads - threads // 2)
        for step in here:
            bar.set_description(step.title)
            done(step, *beside.run_step(step.run, ctx))
        if proc is not None:
            bar.set_description("full MNIST, beside")
            answer, proc = beside.finish(proc), None
            for step in away:
                got = answer["steps"][step.title]
                done(step, got["seconds"], [Check(**c) for c in got["checks"]], got["figures"])
            for section, values in answer["results"].items():
                ctx.results.setdefault(section, {}).update(values)
    finally:
        torch.set_num_threads(threads)
        if proc is not None:  # stopped early (an error, Ctrl-C): the other process goes too
            beside.stop(proc)
        bar.close()
    ordered = [found[s.title] for s in todo]
    checks = [c for _, step_checks, _ in ordered for c in step_checks]
    figures = {name: (caption, fig) for _, _, step_figures in ordered for name, caption, fig in step_figures}
    times = {s.title: found[s.title][0] for s in todo}
    return Reproduction(checks, figures, ctx.results, quick, seed, time.perf_counter() - start, times)


def run_beside(request: dict) -> None:
    """The second process's work (see `beside`): the steps `request` names, found by title."""
    beside.answer(request, {s.title: s.run for s in STEPS}, Context)
