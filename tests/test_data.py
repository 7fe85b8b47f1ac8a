"""Dataset and Split on synthetic data, and the real MNIST files through the mirror."""

import pytest
import torch

from digitlearn import InputFormat, load_dataset
from digitlearn.data.dataset import Dataset, Split
from digitlearn.errors import DataError

from .conftest import make_folder


def test_split_indexing_keeps_images_labels_and_names_together():
    s = Split(
        torch.arange(12, dtype=torch.uint8).reshape(6, 1, 2), torch.tensor([0, 1, 0, 1, 1, 0]), list("abcdef")
    )
    assert len(s) == 6
    assert s.of_class(1).names == ["b", "d", "e"] and s.of_class(1).x[:, 0, 0].tolist() == [2, 6, 8]
    assert s[1:3].names == ["b", "c"] and s[4].names == ["e"] and s[-1].y.tolist() == [0]
    assert s.floats().dtype == torch.float32 and float(s.floats().max()) == pytest.approx(11 / 255)


def test_dataset_splits_and_classes(tmp_path):
    ds = load_dataset(make_folder(tmp_path / "ds"))
    assert ds.split("training") is ds.train and ds.split("test") is ds.valid
    assert ds.class_index("7") == 1
    with pytest.raises(DataError, match="unknown split 'tst'"):
        ds.split("tst")
    with pytest.raises(DataError, match=r"class '5' is not in .* \(classes: 3, 7\)"):
        ds.class_index("5")
    with pytest.raises(DataError, match="size must be"):
        load_dataset(tmp_path / "ds", size=(0, 3))
    assert "6 train, 6 valid, 8x8 images" in repr(ds)


def test_mnist_sample_sizes(sample):
    assert sample.classes == ["3", "7"]
    counts = [int((s.y == c).sum()) for s in (sample.train, sample.valid) for c in (0, 1)]
    assert counts == [6131, 6265, 1010, 1028]
    assert sample.train.x.shape == (12396, 28, 28) and sample.train.x.dtype == torch.uint8


def test_mnist_sample_is_fetched_extracted_and_cached(sample, monkeypatch):
    """The path a registered archive takes (the sample fixture loaded it): from the mirror,
    extracted into the cache home and decoded once; later loads read the decode cache."""
    from digitlearn.data.sources import cache_home

    folder = cache_home() / "data" / "mnist_sample"
    assert len(list(folder.rglob("*.png"))) == 12396 + 2038
    assert len(list(folder.rglob(".digitlearn-cache-native.safetensors"))) == 1
    monkeypatch.setattr("digitlearn.data.folders.decode_images", lambda *a, **k: pytest.fail("decoded again"))
    again = load_dataset("mnist_sample")
    assert torch.equal(again.train.x, sample.train.x) and torch.equal(again.valid.y, sample.valid.y)
    assert again.valid.names == sample.valid.names and again.classes == sample.classes


def test_mnist_png_holds_the_idx_images_and_labels(mnist, mirror, tmp_path):
    """mnist_png.tgz and the IDX files are the same 70,000 images: N.png in a class folder is
    image N of the IDX split, with that label.

    Names and labels are checked for every file of the archive. Pixels are checked on every 20th
    file (3,500, every class of both splits): extracting all 70,000 small files takes most of a
    minute, and the code that fetches, verifies, extracts and caches a registered archive is the
    one mnist_sample goes through (test_mnist_sample_is_fetched_extracted_and_cached)."""
    import tarfile

    assert (len(mnist.train), len(mnist.valid)) == (60_000, 10_000)
    splits = {"training": mnist.train, "testing": mnist.valid}
    with tarfile.open(mirror / "mnist_png.tgz") as tar:
        files = [m for m in tar.getmembers() if m.isfile()]
        # every image once, each in the folder of its IDX label: mnist_png/<split>/<label>/<N>.png
        for folder, split in splits.items():
            named = [m.name.split("/")[2:] for m in files if m.name.split("/")[1] == folder]
            index = torch.tensor([int(n.removesuffix(".png")) for _, n in named])
            assert torch.equal(index.sort().values, torch.arange(len(split)))
            assert torch.equal(torch.tensor([int(label) for label, _ in named]), split.y[index])
        tar.extractall(tmp_path, members=files[::20], filter="data")
    png = load_dataset(tmp_path)
    assert png.classes == mnist.classes == [str(i) for i in range(10)]
    for folder, part in (("training", png.train), ("testing", png.valid)):
        assert set(part.y.tolist()) == set(range(10))
        index = torch.tensor([int(n.split("/")[1].removesuffix(".png")) for n in part.names])
        assert torch.equal(part.x, splits[folder].x[index]) and torch.equal(part.y, splits[folder].y[index])
    assert (len(png.train), len(png.valid)) == (3000, 500)


def test_official_label_files(mnist, mirror):
    """The label bytes are the official ones; the mirror's SHA256SUMS vouch for the rest."""
    import gzip
    import hashlib

    raw = gzip.decompress((mirror / "mnist" / "train-labels-idx1-ubyte.gz").read_bytes())
    assert (
        hashlib.md5((mirror / "mnist" / "train-labels-idx1-ubyte.gz").read_bytes()).hexdigest()
        == "d53e105ee54ea40749a09fcbcd1e9432"
    )
    assert torch.equal(torch.tensor(list(raw[8:])), mnist.train.y)


def test_dataloaders_prepare_the_chapters_inputs(tmp_path):
    ds = load_dataset(make_folder(tmp_path / "ds", n=5))  # 10 train, 10 valid 8x8 images
    dls = ds.dataloaders(bs=4, shuffle=False)
    xb, yb = dls.train.one_batch()
    assert xb.shape == (4, 64) and xb.dtype == torch.float32 and yb.dtype == torch.int64
    assert torch.equal(xb, ds.train.x[:4].reshape(4, 64).float() / 255)  # the chapter's .float()/255
    assert len(dls.train) == 3 and dls.valid.bs == 8 and dls.classes == ["3", "7"]
    assert dls.input_format.to_dict() == {"height": 8, "width": 8, "flat": True, "mean": 0.0, "std": 1.0}
    images = ds.dataloaders(bs=4, flat=False, valid_bs=3)
    assert images.train.one_batch()[0].shape == (4, 1, 8, 8) and len(images.valid) == 4
    shuffled = ds.dataloaders(bs=10, generator=torch.Generator().manual_seed(0))
    assert sorted(shuffled.train.one_batch()[1].tolist()) == sorted(ds.train.y.tolist())


def test_input_format():
    fmt = InputFormat(2, 3)
    x = torch.tensor([[[0, 255, 51], [0, 0, 0]]], dtype=torch.uint8)
    assert torch.allclose(fmt(x), torch.tensor([[0.0, 1.0, 0.2, 0.0, 0.0, 0.0]]))
    assert InputFormat(2, 3, flat=False)(x.float() / 255).shape == (1, 1, 2, 3)
    with pytest.raises(DataError, match="images are 3x2, but the model takes 2x3"):
        fmt(torch.zeros(1, 3, 2, dtype=torch.uint8))
    normed = InputFormat(2, 3, mean=0.2, std=0.5)(x)
    torch.testing.assert_close(normed, torch.tensor([[-0.4, 1.6, 0.0, -0.4, -0.4, -0.4]]))


def test_normalized_dataloaders_use_the_training_statistics(tmp_path):
    ds = load_dataset(make_folder(tmp_path / "ds", n=5))
    dls = ds.dataloaders(bs=4, flat=False, normalize=True, shuffle=False)
    pixels = ds.train.floats()
    fmt = dls.input_format
    assert fmt["mean"] == round(float(pixels.mean()), 4) and fmt["std"] == round(float(pixels.std()), 4)
    x = dls.train.fields[0]
    assert x.shape == (10, 1, 8, 8) and abs(float(x.mean())) < 1e-3 and abs(float(x.std()) - 1) < 1e-3
    torch.testing.assert_close(dls.valid.fields[0], fmt(ds.valid.x))
    torch.testing.assert_close(fmt.inverse(dls.valid.fields[0]), ds.valid.floats(), atol=1e-6, rtol=0)


def test_mnist_statistics(mnist):
    fmt = mnist.dataloaders(normalize=True).input_format
    assert (fmt["mean"], fmt["std"]) == (0.1307, 0.3081)  # the figures every MNIST example uses


def test_reprs_are_a_line_however_large_the_split(tmp_path):
    ds = load_dataset(make_folder(tmp_path / "ds", n=3))
    assert repr(ds.train) == "Split(6 images of 8x8 uint8)"
    big = Split(
        torch.zeros(70_000, 28, 28, dtype=torch.uint8),
        torch.zeros(70_000),
        [f"{i}.png" for i in range(70_000)],
    )
    assert repr(big) == "Split(70000 images of 28x28 uint8)"
    assert repr(ds).count("\n") == 0 and len(repr(ds)) < 200


def test_hold_out_validates_on_training_images_and_never_the_valid_split():
    def split(first: int, n: int) -> Split:  # image k is filled with the value first + k
        x = torch.arange(first, first + n, dtype=torch.uint8).view(n, 1, 1).expand(n, 4, 4).clone()
        return Split(x, torch.arange(n) % 2, [f"{first + k}.png" for k in range(n)])

    ds = Dataset(split(0, 40), split(100, 40), ["even", "odd"], "toy")
    held = ds.hold_out(0.25)
    assert (len(held.train), len(held.valid)) == (30, 10)
    assert sorted(held.train.names + held.valid.names) == sorted(ds.train.names)
    for part in (held.train, held.valid):  # images, labels and names still travel together
        k = part.x[:, 0, 0].long()
        assert k.max() < 40 and torch.equal(part.y, k % 2) and part.names == [f"{i}.png" for i in k.tolist()]
    assert held.valid.names == ds.hold_out(0.25).valid.names  # the same images each time...
    assert held.valid.names != ds.hold_out(0.25, seed=1).valid.names  # ...for one seed
    assert held.classes == ds.classes


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, 0.001])
def test_hold_out_refuses_fractions_that_leave_a_split_empty(tmp_path, fraction):
    ds = load_dataset(make_folder(tmp_path / "ds", n=20))
    with pytest.raises(DataError, match=r"held-out fraction|leaves a split empty"):
        ds.hold_out(fraction)
