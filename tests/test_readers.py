"""Readers on synthetic datasets: layouts, image modes, sizes, IDX files, errors and the cache."""

import gzip
import os
import shutil
import stat
import struct
import tarfile
import zipfile
from concurrent.futures import ThreadPoolExecutor, TimeoutError
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from digitlearn import load_dataset
from digitlearn.data.folders import decode_images, read_image
from digitlearn.data.formats import Reader, natural_key, readers, register_reader, unregister_reader
from digitlearn.data.idx import read_idx
from digitlearn.errors import DataError
from digitlearn.vision.images import to_gray

from .conftest import digit_image, make_folder


@pytest.mark.parametrize("layout", [("train", "valid"), ("training", "testing"), ("train", "test")])
def test_fastai_layouts(tmp_path, layout):
    root = make_folder(tmp_path / "ds", layout=layout, classes=("a", "b"), n=2)
    ds = load_dataset(root)
    assert ds.classes == ["a", "b"]
    assert ds.train.x.shape == (4, 8, 8) and ds.train.x.dtype == torch.uint8
    assert ds.train.y.tolist() == [0, 0, 1, 1]
    assert ds.train.names == ["a/0.png", "a/1.png", "b/0.png", "b/1.png"]
    assert torch.equal(ds.train.x[2], torch.from_numpy(digit_image(80, seed=0)))


def test_classes_sort_as_digits_sort_and_files_as_names_sort(tmp_path):
    root = make_folder(tmp_path / "ds", classes=("10", "2", "1"), n=1)
    for name in ("10000.png", "10.png", "7.png"):
        shutil.copy(root / "train" / "2" / "0.png", root / "train" / "2" / name)
    ds = load_dataset(root)
    assert ds.classes == ["1", "2", "10"]
    assert sorted(["b10", "b2", "a"], key=natural_key) == ["a", "b2", "b10"]
    # within a class, files keep fastai's `ls().sorted()` order: the chapter's threes[1]
    assert [n for n in ds.train.names if n.startswith("2/")] == [
        "2/0.png",
        "2/10.png",
        "2/10000.png",
        "2/7.png",
    ]


def test_dataset_inside_a_single_top_folder(tmp_path):
    make_folder(tmp_path / "outer" / "mnist_sample")
    (tmp_path / "outer" / "labels.csv").write_text("name,label\n")
    assert len(load_dataset(tmp_path / "outer").train) == 6


def test_stray_files_are_skipped(tmp_path):
    root = make_folder(tmp_path / "ds")
    for junk in (
        "train/3/.DS_Store",
        "train/3/Thumbs.db",
        "train/3/notes.txt",
        "labels.csv",
        "train/readme.md",
        "train/3/._0.png",
    ):
        (root / junk).write_bytes(b"junk")
    (root / "train" / ".ipynb_checkpoints").mkdir()
    (root / "train" / "3" / "drafts.png").mkdir()  # a folder named like an image holds none
    (root / "train" / "3" / "gone.png").symlink_to(root / "nowhere.png")  # a broken link
    assert len(load_dataset(root).train) == 6


def test_image_modes_become_8bit_gray(tmp_path):
    gray = np.array([[0, 64], [128, 255]], dtype=np.uint8)
    rgb = Image.fromarray(np.stack([gray] * 3, -1))

    def as_bytes(img):  # what a dataset holds: transparent pixels read as black background
        return np.round(to_gray(img, background=0.0) * 255).astype(np.uint8)

    assert np.array_equal(as_bytes(rgb), gray)
    palette = Image.fromarray(np.array([[0, 1], [2, 3]], np.uint8), "P")
    palette.putpalette([v for g in gray.flatten().tolist() for v in (g, g, g)])
    assert np.array_equal(as_bytes(palette), gray)
    sixteen = Image.fromarray(gray.astype(np.uint16) * 257)  # full 16-bit range, not clipped
    sixteen.save(tmp_path / "16.png")
    assert Image.open(tmp_path / "16.png").mode.startswith("I")
    assert np.array_equal(read_image(tmp_path / "16.png"), gray)
    # white ink on a transparent canvas: transparent pixels are background, whatever their colour
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., :3] = 255
    rgba[..., 3] = [[0, 255], [0, 128]]
    assert as_bytes(Image.fromarray(rgba)).tolist() == [[0, 255], [0, 128]]


def test_mixed_modes_in_one_dataset(tmp_path):
    root = make_folder(tmp_path / "ds", n=1)
    img = digit_image(40)
    Image.fromarray(np.stack([img] * 3, -1)).save(root / "train" / "3" / "rgb.png")
    Image.fromarray(img).convert("P").save(root / "train" / "3" / "pal.gif")
    Image.fromarray(img).save(root / "train" / "3" / "j.bmp")
    ds = load_dataset(root)
    assert len(ds.train) == 5
    assert all(torch.equal(ds.train.x[i], torch.from_numpy(img)) for i in range(4))


def test_sizes_that_differ_are_an_error_naming_two_files(tmp_path):
    root = make_folder(tmp_path / "ds", n=2)
    Image.fromarray(np.zeros((12, 10), np.uint8)).save(root / "valid" / "7" / "big.png")
    with pytest.raises(DataError, match=r"train/3/0\.png is 8x8, .*valid/7/big\.png is 12x10.*--size"):
        load_dataset(root)
    ds = load_dataset(root, size=6)
    assert ds.train.x.shape[1:] == (6, 6) and len(ds.valid) == 5
    assert load_dataset(root, size=(5, 7)).valid.x.shape == (5, 5, 7)


def test_parallel_decoding_matches_serial(tmp_path):
    root = make_folder(tmp_path / "ds", classes=tuple("0123"), n=5)
    paths = sorted(str(p) for p in root.rglob("*.png"))
    serial = decode_images(paths, workers=1)
    parallel = decode_images(paths, workers=2, per_task=3)  # many chunks: the process pool runs
    assert torch.equal(serial, parallel) and len(serial) == len(paths)


def test_corrupt_image_is_named_in_parallel_too(tmp_path):
    root = make_folder(tmp_path / "ds", n=4)
    bad = root / "valid" / "7" / "2.png"
    bad.write_bytes(bad.read_bytes()[:40])  # truncated
    paths = sorted(str(p) for p in root.rglob("*.png"))
    with pytest.raises(DataError, match=r"cannot read image .*valid/7/2\.png"):
        decode_images(paths, workers=2, per_task=3)
    with pytest.raises(DataError, match=r"cannot read image .*valid/7/2\.png"):
        load_dataset(root)
    assert not list(root.glob(".digitlearn-cache-*"))


@pytest.mark.parametrize("damage", [b"not a png at all", b"\x89PNG\r\n\x1a\n" + b"\0" * 20])
def test_garbage_image_is_named(tmp_path, damage):
    root = make_folder(tmp_path / "ds", n=1)
    (root / "train" / "7" / "x.png").write_bytes(damage)
    with pytest.raises(DataError, match=r"cannot read image .*train/7/x\.png"):
        load_dataset(root)


def test_empty_class_folder(tmp_path):
    root = make_folder(tmp_path / "ds")
    (root / "valid" / "9").mkdir()
    (root / "valid" / "9" / ".DS_Store").write_bytes(b"")
    with pytest.raises(DataError, match=r"class folder .*valid/9 holds no images"):
        load_dataset(root)


def test_folder_without_a_dataset(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(DataError, match="no dataset found"):
        load_dataset(tmp_path)


def test_missing_path_and_unknown_name(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        load_dataset(tmp_path / "nope")
    with pytest.raises(DataError, match=r"'mnist_smaple' is neither a known dataset \(mnist, "):
        load_dataset("mnist_smaple")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DataError, match="not a folder or an archive"):
        load_dataset(tmp_path / "file.txt")


def test_cache_is_written_used_and_invalidated(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "ds")
    first = load_dataset(root)
    assert [p.name for p in root.glob(".digitlearn-cache-*")] == [".digitlearn-cache-native.safetensors"]
    calls = []
    monkeypatch.setattr("digitlearn.data.folders.decode_images", lambda *a, **k: calls.append(a))
    again = load_dataset(root)  # from the cache: no decoding at all
    assert calls == [] and torch.equal(first.train.x, again.train.x) and again.classes == first.classes
    monkeypatch.undo()
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(root / "train" / "3" / "0.png")
    changed = load_dataset(root)
    assert int(changed.train.x[0].min()) == 200


def test_damaged_cache_is_rebuilt(tmp_path):
    root = make_folder(tmp_path / "ds")
    first = load_dataset(root)
    cache = next(root.glob(".digitlearn-cache-*"))
    cache.write_bytes(cache.read_bytes()[:100])
    assert torch.equal(load_dataset(root).valid.x, first.valid.x)


def test_a_folder_that_takes_no_cache_caches_under_home(tmp_path, fresh_home):
    root = make_folder(tmp_path / "ds")
    (
        root / ".digitlearn-cache-native.safetensors"
    ).mkdir()  # where the cache would go: not writable as a file
    first = load_dataset(root)
    assert len(list((fresh_home / "cache").glob("*-native.safetensors"))) == 1
    assert torch.equal(load_dataset(root).train.x, first.train.x)


@pytest.mark.parametrize("kind", ["tgz", "zip"])
def test_archives_of_a_dataset(tmp_path, fresh_home, kind):
    src = make_folder(tmp_path / "src" / "digits")
    path = tmp_path / f"digits.{kind.upper() if kind == 'zip' else kind}"  # suffixes in any case
    if kind == "tgz":
        with tarfile.open(path, "w:gz") as t:
            t.add(src, arcname="digits")
    else:
        with zipfile.ZipFile(path, "w") as z:
            for f in src.rglob("*.png"):
                z.write(f, f.relative_to(src.parent))
    ds = load_dataset(path)
    assert (len(ds.train), ds.classes) == (6, ["3", "7"])
    assert len(list((fresh_home / "extracted").iterdir())) == 1
    load_dataset(path)
    assert len(list((fresh_home / "extracted").iterdir())) == 1  # extracted once


def test_a_zip_made_on_macos(tmp_path, fresh_home):
    # macOS adds a __MACOSX folder beside the zip's one top folder: still one top folder
    src = make_folder(tmp_path / "src" / "digits")
    path = tmp_path / "digits.zip"
    with zipfile.ZipFile(path, "w") as z:
        for f in src.rglob("*.png"):
            z.write(f, f.relative_to(src.parent))
            z.writestr(f"__MACOSX/{f.relative_to(src.parent).parent}/._{f.name}", b"resource fork")
    assert len(load_dataset(path).train) == 6


# ---------------------------------------------------------------- IDX


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    magic = magic if magic is not None else 0x800 + array.ndim
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def make_idx(root: Path, n_train=5, n_test=3, gz=True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        for kind, arr in (
            ("images", rng.integers(0, 256, (n, 4, 4), dtype=np.uint8)),
            ("labels", (np.arange(n) % 3).astype(np.uint8)),
        ):
            name = f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
            data = idx_bytes(arr)
            if gz:
                (root / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (root / name).write_bytes(data)
    return root


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder(tmp_path, gz):
    ds = load_dataset(make_idx(tmp_path / "idx", gz=gz))
    assert ds.train.x.shape == (5, 4, 4) and ds.valid.y.tolist() == [0, 1, 2]
    assert ds.classes == ["0", "1", "2"] and ds.train.names[:2] == ["0/0", "1/1"]
    small = load_dataset(tmp_path / "idx", size=(2, 3))
    assert small.train.x.shape == (5, 2, 3) and torch.equal(small.valid.y, ds.valid.y)


def test_idx_wrong_magic(tmp_path):
    root = make_idx(tmp_path / "idx", gz=False)
    f = root / "train-labels-idx1-ubyte"
    f.write_bytes(idx_bytes(np.zeros(5, np.uint8), magic=2051))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: magic number 2051, expected 2049"):
        load_dataset(root)


def test_idx_sizes_that_do_not_match_its_length(tmp_path):
    root = make_idx(tmp_path / "idx", gz=False)
    f = root / "t10k-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-7])
    with pytest.raises(
        DataError,
        match=r"t10k-images-idx3-ubyte: header says 3x4x4 = 48 bytes of data, "
        r"but the file holds 41",
    ):
        load_dataset(root)


def test_idx_truncated_gzip(tmp_path):
    root = make_idx(tmp_path / "idx")
    f = root / "train-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:30])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: corrupt or truncated gzip"):
        read_idx(f, "images")


def test_idx_labels_and_images_disagree(tmp_path):
    root = make_idx(tmp_path / "idx", gz=False)
    (root / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(DataError, match=r"holds \(5, 4, 4\) images but .* holds \(4,\) labels"):
        load_dataset(root)


def test_idx_missing_file(tmp_path):
    root = make_idx(tmp_path / "idx")
    (root / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"idx: no t10k-labels IDX file"):
        load_dataset(root)


def test_idx_files_beside_class_folders_are_read_as_idx(tmp_path):
    root = make_folder(make_idx(tmp_path / "both"), n=1)
    assert [r.name for r in readers() if not r.files][:2] == ["idx", "folders"]
    assert load_dataset(root).train.x.shape == (5, 4, 4)


# ---------------------------------------------------------------- formats


def read_npz(folder, found, size):
    """A format of the test's own: x_train, y_train, x_test, y_test arrays in one .npz file."""
    with np.load(found, allow_pickle=False) as f:  # arrays only: nothing in the file is unpickled
        splits = {
            name: (torch.from_numpy(f[f"x_{part}"]), torch.from_numpy(f[f"y_{part}"]).long(), [])
            for name, part in (("train", "train"), ("valid", "test"))
        }
    for name, (x, y, _) in splits.items():
        splits[name] = (x, y, [f"{int(c)}/{i}" for i, c in enumerate(y)])
    return splits, ["0", "1"]


def test_a_new_format_is_one_registered_reader(tmp_path):
    folder = tmp_path / "npz"
    folder.mkdir()
    rng = np.random.default_rng(0)
    np.savez(folder / "digits.npz", x_train=rng.integers(0, 255, (6, 8, 8), dtype=np.uint8),
             y_train=np.array([0, 1] * 3), x_test=rng.integers(0, 255, (4, 8, 8), dtype=np.uint8),
             y_test=np.array([1, 0] * 2))  # fmt: skip
    with pytest.raises(DataError, match="no dataset found"):
        load_dataset(folder)
    register_reader(Reader("npz", lambda f: next(f.glob("*.npz"), None), read_npz))
    try:
        ds = load_dataset(folder)
    finally:
        unregister_reader("npz")
    assert (len(ds.train), len(ds.valid), ds.classes) == (6, 4, ["0", "1"])
    assert ds.train.x.dtype == torch.uint8 and ds.valid.y.tolist() == [1, 0, 1, 0]


def loaded_within(seconds: float, source) -> BaseException | None:
    """What `load_dataset(source)` raised, failing the test if it is still reading after `seconds`
    (a reader blocked on a FIFO would otherwise hang the suite)."""
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(load_dataset, source)
        try:
            future.result(timeout=seconds)
        except TimeoutError:
            # unblock the reader, so the thread can end: open the FIFO's other side and close it
            for fifo in Path(source).rglob("*"):
                if stat.S_ISFIFO(os.lstat(fifo).st_mode):
                    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            pytest.fail(f"load_dataset({source}) was still reading after {seconds} s")
        except DataError as e:
            return e
    return None


def test_fifos_named_like_data_are_refused_unopened(tmp_path):
    idx = tmp_path / "idx"
    idx.mkdir()
    for name in ("train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (idx / name).write_bytes(b"")
    os.mkfifo(idx / "train-images-idx3-ubyte")
    error = loaded_within(10, idx)
    assert error is not None and "train-images-idx3-ubyte is a FIFO, not a file" in str(error)

    folder = make_folder(tmp_path / "ds", n=2)
    os.mkfifo(folder / "train" / "3" / "x.png")
    error = loaded_within(10, folder)
    assert error is not None and "x.png is a FIFO, not a file: only files are read as data" in str(error)

    os.mkfifo(tmp_path / "data.tgz")
    error = loaded_within(10, tmp_path / "data.tgz")
    assert error is not None and "data.tgz is a FIFO" in str(error)


def test_devices_and_broken_links_named_like_data_are_refused(tmp_path):
    folder = make_folder(tmp_path / "ds", n=1)
    (folder / "valid" / "7" / "z.png").symlink_to(os.devnull)
    with pytest.raises(DataError, match=r"valid/7/z\.png is a device, not a file"):
        load_dataset(folder)
    idx = make_idx(tmp_path / "idx", gz=False)
    (idx / "t10k-labels-idx1-ubyte").unlink()
    (idx / "t10k-labels-idx1-ubyte").symlink_to(tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: cannot read it \(No such file"):
        load_dataset(idx)
