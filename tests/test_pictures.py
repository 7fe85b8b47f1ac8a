"""Pictures that read: grids that fill their rows, titles that fit, transparent images on white,
one-epoch panels with a sensible axis, the report's table on a phone; and the CLI nits of issue 18."""

import json
import os
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image

from digitlearn.chapter import reproduce as rp
from digitlearn.chapter.report import write_report
from digitlearn.cli import main
from digitlearn.cli.main import build_parser
from digitlearn.inference.interpret import Interpretation
from digitlearn.plots.charts import (
    grid_columns,
    plot_history,
    plot_predicted,
    plot_predictions,
    plot_training,
    show_image,
)
from digitlearn.training.recipes import Recipe

from .conftest import make_folder

DPI = 100  # what save_figure and the report write


def rendered(fig):
    """The figure drawn (so text has its final place), and its renderer."""
    canvas = FigureCanvasAgg(fig)
    fig.set_dpi(DPI)
    canvas.draw()
    return canvas.get_renderer()


def grid_shape(fig) -> tuple[int, int]:
    return fig.axes[0].get_subplotspec().get_gridspec().get_geometry()


def titles_of(fig) -> list:
    return [ax.title for ax in fig.axes if ax.get_title()]


def assert_inside_and_apart(fig, texts) -> None:
    """Every text wholly inside the figure, and no two overlapping."""
    renderer = rendered(fig)
    boxes = [t.get_window_extent(renderer) for t in texts]
    width, height = fig.bbox.width, fig.bbox.height
    for t, b in zip(texts, boxes, strict=True):
        assert b.x0 >= 0 and b.y0 >= 0 and b.x1 <= width and b.y1 <= height, t.get_text()
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b)


# ---------------------------------------------------------------- grids


@pytest.mark.parametrize(("n", "ncols"), [(1, 1), (2, 2), (7, 4), (9, 3), (10, 5), (12, 4), (16, 4), (17, 6)])
def test_grid_columns_fill_the_rows(n, ncols):
    assert grid_columns(n) == ncols


def interpretation(n: int) -> Interpretation:
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(n, 2, generator=g).softmax(1)
    return Interpretation(torch.rand(n, 8, 8, generator=g), probs, torch.arange(n) % 2, ["3", "7"])


@pytest.mark.parametrize(("k", "shape"), [(16, (4, 4)), (9, (3, 3)), (10, (2, 5))])
def test_top_losses_fill_their_rows(k, shape):
    fig = interpretation(40).plot_top_losses(k)
    assert grid_shape(fig) == shape and sum(bool(ax.get_images()) for ax in fig.axes) == k


def prediction(label: str = "7", p: float = 0.98) -> SimpleNamespace:
    return SimpleNamespace(label=label, probability=p, input=torch.rand(28, 28))


def test_seventeen_predictions_make_a_grid_with_readable_titles(tmp_path):
    files = []
    for k in range(17):
        files.append(tmp_path / f"a_very_long_file_name_from_a_phone_camera_{k:03}.png")
        Image.new("L", (40, 60), 255).save(files[-1])
    fig = plot_predicted(files, [prediction() for _ in files])
    assert grid_shape(fig) == (6, 6)  # three rows of six pairs: image above the model's input
    assert fig.bbox.width <= 6 * 2.0 * DPI
    titles = titles_of(fig)
    assert len(titles) == 34 and min(t.get_fontsize() for t in titles) >= 9
    first = titles[0].get_text().splitlines()
    assert first == ["a_very_lon…a_000.png", "7 (0.98)"]  # the name's start and end
    assert_inside_and_apart(fig, titles)


def transparent_ink() -> Image.Image:
    """Black ink on a transparent background, as a drawing app exports it."""
    img = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    img.paste((0, 0, 0, 255), (8, 2, 12, 18))
    return img


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparent_images_are_drawn_on_white(mode):
    img = transparent_ink()
    img = img.convert(mode) if mode != "P" else img.convert("P", palette=Image.Palette.ADAPTIVE)
    if mode == "P":  # a palette image's transparency is a palette index
        img.info["transparency"] = img.getpixel((0, 0))
    fig = plot_predictions([img], [torch.zeros(28, 28)], ["ink.png\n1 (0.90)"])
    drawn = fig.axes[0].get_images()[0].get_array()
    assert tuple(drawn[0, 0]) == (255, 255, 255) and tuple(drawn[10, 10]) == (0, 0, 0)
    rendered(fig)
    pixels = np.asarray(fig.canvas.buffer_rgba())
    box = fig.axes[0].get_window_extent()
    corner = pixels[int(fig.bbox.height - box.y1) + 3, int(box.x0) + 3]  # the image's top left
    assert tuple(corner[:3]) == (255, 255, 255)
    assert tuple(show_image(transparent_ink()).axes[0].get_images()[0].get_array()[0, 0]) == (255, 255, 255)


# ---------------------------------------------------------------- the report's figures


def test_confusion_matrix_title_fits_its_figure():
    big = Interpretation(torch.zeros(10_000, 2, 2), torch.full((10_000, 2), 0.5), torch.zeros(10_000).long(),
                         ["3", "7"])  # fmt: skip
    fig = big.plot_confusion_matrix()
    (title,) = titles_of(fig)
    assert "10,000 images, accuracy 1.0000" in title.get_text()
    assert_inside_and_apart(fig, [title])


ONE_EPOCH = [{"epoch": 0, "train_loss": 0.08, "valid_loss": 0.03, "accuracy": 0.9921}]


def test_one_epoch_metric_panel_has_a_sensible_axis():
    _, metric = plot_training([0.5, 0.2, 0.1], ONE_EPOCH, "accuracy").axes
    low, high = metric.get_ylim()
    assert low <= 0.9 and high == 1.0
    assert [t.get_text() for t in metric.texts] == ["0.9921"]  # the dot, labelled with its value
    assert metric.get_xlim() == (-0.5, 0.5)  # epoch 0, as the printed table counts
    assert [t.get_text() for t in metric.get_xticklabels()] == ["0"]


def test_history_counts_epochs_from_zero_like_the_table():
    history = [{**ONE_EPOCH[0], "epoch": e} for e in range(3)]
    loss, metric = plot_history(history, ["accuracy"]).axes
    for ax in (loss, metric):
        assert list(ax.get_lines()[0].get_xdata()) == [0, 1, 2] and ax.get_xlabel() == "epoch"


def test_ten_means_have_readable_labels():
    fig = rp.means_figure(torch.rand(10, 28, 28), [str(d) for d in range(10)])
    assert grid_shape(fig) == (2, 5) and fig.bbox.width <= 1000  # shown at full size in the report
    titles = titles_of(fig)
    assert len(titles) == 10 and min(t.get_fontsize() for t in titles) >= 14
    assert_inside_and_apart(fig, titles)


# ---------------------------------------------------------------- the report on a phone

# as tests/test_browser.py launches it
CHROMIUM = os.environ.get("DIGITLEARN_CHROMIUM") or shutil.which("chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip


def long_checks(ctx: rp.Context) -> None:
    """Rows as long as the real report's."""
    title = "ResNet (27,170 parameters), fit_one_cycle(1, 0.01), batch 64, on mnist_sample's valid split"
    ctx.checks.append(rp.at_least("training on mnist_sample", title, "0.9941 (resnet18, lr 0.1)", 0.99, 0.98))
    ctx.checks.append(rp.exact("the data", "stacked_threes.shape, stacked_sevens.shape",
                               "torch.Size([6131, 28, 28]), torch.Size([6265, 28, 28])",
                               "torch.Size([6131, 28, 28]), torch.Size([6265, 28, 28])"))  # fmt: skip


def test_report_table_fits_a_phone(tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH")
    rep = rp.reproduce(steps=[rp.Step("long rows", long_checks)], log=lambda line: None)
    html = (write_report(rep, tmp_path / "rep") / "report.html").read_text()
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 390, "height": 800})
        page.set_content(html)
        ok = page.locator("th").last.bounding_box()
        page_width = page.evaluate("document.documentElement.scrollWidth")
        browser.close()
    assert ok["x"] + ok["width"] <= 390 and page_width <= 390  # the "ok" column on screen, no sideways page


# ---------------------------------------------------------------- CLI nits


def test_show_means_without_out_is_shows_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["show", "--means"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("digitlearn show: error: --means needs --out")
    assert "digitlearn show --help" in err


def test_show_count_prints_a_line_per_image_not_the_pixels(tmp_path, capsys):
    root = make_folder(tmp_path / "ds", n=6)
    out = tmp_path / "f.png"
    assert main(["show", "--data", str(root), "--count", "4", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6 and lines[-1] == f"wrote {out}" and out.exists()
    assert lines[1].strip().startswith("3/0.png: class 3, nearest mean (L1) ")


def test_every_split_option_has_help():
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    splits = [(name, a) for name, q in subparsers.choices.items() for a in q._actions if a.dest == "split"]
    assert {name for name, _ in splits} >= {"show", "evaluate", "baseline"}
    assert all(a.help for _, a in splits)


def test_compare_epochs_overrides_each_recipe(tmp_path, capsys, monkeypatch):
    root = make_folder(tmp_path / "ds", n=4)
    trained = []
    fit = Recipe.fit

    def counted_fit(recipe: Recipe, learn):
        trained.append(recipe.epochs)
        return fit(recipe, learn)

    monkeypatch.setattr(Recipe, "fit", counted_fit)
    args = ["compare", "--data", str(root), "--models", "linear,mlp", "--device", "cpu", "--json"]
    assert main([*args, "--epochs", "2"]) == 0
    rows = json.loads(capsys.readouterr().out.split("\n", 3)[-1])["results"]
    assert trained == [2, 2] and all(r["recipe"] == "default recipe, epochs=2" for r in rows)
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--epochs", "0"])
    assert exit_info.value.code == 2 and "'0' is not a whole number from 1" in capsys.readouterr().err
