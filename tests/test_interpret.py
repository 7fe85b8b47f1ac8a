"""Interpretation: confusion matrix, most confused pairs, per-class scores, top losses."""

import pytest
import torch

from digitlearn.errors import DigitlearnError
from digitlearn.inference.interpret import Interpretation
from digitlearn.training import Learner
from digitlearn.training.metrics import accuracy


def interp() -> Interpretation:
    # 3 classes; true labels and predictions chosen so every count is known
    targets = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    preds = torch.tensor([0, 0, 1, 1, 2, 2, 2, 1, 1])
    probs = torch.full((9, 3), 0.1)
    probs[torch.arange(9), preds] = 0.8
    images = torch.arange(9, dtype=torch.uint8)[:, None, None].expand(9, 4, 4).contiguous()
    return Interpretation(images, probs, targets, ["a", "b", "c"])


def test_confusion_matrix_rows_are_actual_columns_predicted():
    cm = interp().confusion_matrix()
    assert cm.tolist() == [[2, 1, 0], [0, 1, 1], [0, 2, 2]]
    assert interp().accuracy == pytest.approx(5 / 9)


def test_most_confused_pairs_in_order():
    assert interp().most_confused() == [("c", "b", 2), ("a", "b", 1), ("b", "c", 1)]
    assert interp().most_confused(min_val=2) == [("c", "b", 2)]


def test_per_class_precision_recall_f1_support():
    rows = {r["class"]: r for r in interp().per_class()}
    assert rows["b"]["precision"] == pytest.approx(1 / 4) and rows["b"]["recall"] == pytest.approx(1 / 2)
    assert rows["c"]["precision"] == pytest.approx(2 / 3) and rows["c"]["recall"] == pytest.approx(2 / 4)
    assert rows["a"]["f1"] == pytest.approx(2 * 1 * (2 / 3) / (1 + 2 / 3))
    assert [r["support"] for r in rows.values()] == [3, 2, 4]


def test_top_losses_are_the_wrong_confident_ones():
    i = interp()
    losses, idx = i.top_losses(4)
    assert sorted(idx.tolist()) == [2, 4, 7, 8]  # the four mistakes
    assert losses[0] == pytest.approx(-torch.log(torch.tensor(0.1)).item())
    assert bool((losses[:-1] >= losses[1:]).all())


def test_plots_are_figures_with_a_panel_per_image():
    i = interp()
    fig = i.plot_top_losses(4)
    titled = [ax.get_title() for ax in fig.axes if ax.get_title()]
    # prediction/actual / loss / probability of the prediction, for the four mistakes
    assert sorted(titled) == [
        "b/a / 2.30 / 0.80",
        "b/c / 2.30 / 0.80",
        "b/c / 2.30 / 0.80",
        "c/b / 2.30 / 0.80",
    ]
    cm_fig = i.plot_confusion_matrix()
    assert [t.get_text() for t in cm_fig.axes[0].texts][:3] == ["2", "1", "0"]


def test_mismatched_lengths_are_an_error():
    with pytest.raises(DigitlearnError, match="as many"):
        Interpretation(torch.zeros(2, 4, 4), torch.zeros(3, 2), torch.zeros(3, dtype=torch.long), ["a", "b"])


def test_from_learner_recovers_the_images_and_matches_validate():
    from digitlearn import DataLoader, DataLoaders
    from digitlearn.data.dataset import InputFormat

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (40, 4, 4), dtype=torch.uint8, generator=g)
    y = (x.float().mean((1, 2)) > 127).long()
    fmt = InputFormat(4, 4, flat=True, mean=0.5, std=0.25)
    dls = DataLoaders(
        DataLoader(fmt(x), y, bs=8), DataLoader(fmt(x), y, bs=8), ["dark", "light"], fmt.to_dict()
    )
    learn = Learner(
        dls, torch.nn.Linear(16, 2), loss_func=torch.nn.functional.cross_entropy, metrics=accuracy
    )
    i = Interpretation.from_learner(learn)
    torch.testing.assert_close(i.images, x.float() / 255, atol=1e-6, rtol=0)
    assert int(i.confusion_matrix().sum()) == 40
    assert i.accuracy == pytest.approx(learn.validate()["accuracy"])


@pytest.mark.parametrize("loss", ["cross_entropy", "mnist_loss"])
def test_from_run_interprets_a_saved_model_as_the_learner_did(tmp_path, loss):
    from digitlearn import load_dataset
    from digitlearn.models import mlp
    from digitlearn.training import losses

    from .conftest import make_folder

    torch.manual_seed(0)
    ds = load_dataset(make_folder(tmp_path / "ds", n=6))
    # normalised inputs and mnist_loss's one output: what the saved config must get right
    dls = ds.dataloaders(bs=4, normalize=True)
    model = mlp(n_in=64, hidden=(8,), n_out=2 if loss == "cross_entropy" else 1)
    learn = Learner(dls, model, loss_func=getattr(losses, loss), progress=False)
    learn.fit(6, 0.5)
    learned = Interpretation.from_learner(learn)
    assert learned.confusion_matrix().tolist() == [[6, 0], [0, 6]]  # it tells the classes apart

    saved = Interpretation.from_run(learn.save(tmp_path / "run"), ds.valid)
    assert saved.classes == learned.classes == ["3", "7"]
    assert torch.equal(saved.targets, learned.targets)
    torch.testing.assert_close(saved.probs, learned.probs)
    assert torch.equal(saved.confusion_matrix(), learned.confusion_matrix())
    torch.testing.assert_close(saved.images.float() / 255, learned.images, atol=1e-6, rtol=0)


def test_classification_interpretation_is_fastais_name_for_it():
    from digitlearn import ClassificationInterpretation

    assert ClassificationInterpretation is Interpretation
