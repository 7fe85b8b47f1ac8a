"""Hostile datasets: bombs (IDX .gz, .tgz and .zip that inflate to gigabytes), IDX headers that
lie, names that are not UTF-8, an EPS file dressed as a PNG, and a killed run's leftovers.

Every bomb is about 1 MB on disk and built in milliseconds (`deflated`); the readers must refuse it
from its header, before inflating it, so each test takes well under a second and memory stays small.
"""

import io
import json
import os
import struct
import tarfile
import time
import tracemalloc
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image

from digitlearn import DatasetSpec, fetch, load_dataset
from digitlearn.data.idx import read_idx
from digitlearn.data.sources import extract_archive
from digitlearn.errors import DataError

from .conftest import make_folder
from .test_files import dead_pid, leftover

MiB, GiB = 2**20, 2**30
# deflate forgets everything at a full flush, so 1 MiB of zeros compresses, after one, to this same
# byte-aligned block every time: repeated, it makes a gigabyte of zeros from a megabyte
_zeros = zlib.compressobj(9, zlib.DEFLATED, -15)
ZEROS_BLOCK = _zeros.compress(bytes(MiB)) + _zeros.flush(zlib.Z_FULL_FLUSH)


def deflated(*parts: bytes | int) -> bytes:
    """Raw deflate of `parts` in order: bytes as given, an int as that many zeros (whole MiB)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = []
    for part in parts:
        if isinstance(part, int):
            assert part % MiB == 0
            out.append(ZEROS_BLOCK * (part // MiB))
        else:
            out.append(c.compress(part) + c.flush(zlib.Z_FULL_FLUSH))
    return b"".join(out) + c.flush()


def gzipped(*parts: bytes | int) -> bytes:
    """A .gz of `parts`. Its CRC is left 0: a reader that inflated it all would fail on the CRC,
    so a refusal with our message proves the reader stopped early."""
    size = sum(p if isinstance(p, int) else len(p) for p in parts)
    return b"\x1f\x8b\x08\0\0\0\0\0\0\xff" + deflated(*parts) + struct.pack("<II", 0, size % 2**32)


def tar_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf()


def zip_of(name: str, data: bytes, file_size: int) -> bytes:
    """A one-member zip of deflated `data` whose headers say the member holds `file_size` bytes."""
    fname = name.encode()
    sizes = (0, len(data), file_size)  # CRC 0, as in `gzipped`
    local = struct.pack("<4s5H3L2H", b"PK\3\4", 20, 0, 8, 0, 0, *sizes, len(fname), 0) + fname
    central = struct.pack("<4s6H3L5H2L", b"PK\1\2", 20, 20, 0, 8, 0, 0, *sizes, len(fname), 0, 0, 0, 0, 0, 0)
    central += fname
    end = struct.pack("<4s4H2LH", b"PK\5\6", 0, 0, 1, 1, len(central), len(local) + len(data), 0)
    return local + data + central + end


@contextmanager
def bounded(seconds: float = 1.0, mib: int = 32) -> Iterator[None]:
    """The block must finish in `seconds` and allocate at most `mib` MiB at its peak (Python's and
    NumPy's allocations, which tracemalloc sees: a bomb inflated or allocated would show)."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        yield
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.perf_counter() - start < seconds
    assert peak < mib * MiB, f"peak {peak / MiB:.0f} MiB"


def one_line(e: pytest.ExceptionInfo) -> str:
    text = str(e.value)
    assert "\n" not in text
    text.encode("utf-8")  # printable anywhere: no lone surrogates
    return text


def test_the_bomb_builders_make_what_they_say():
    data = gzipped(b"head", 2 * MiB, b"tail")
    assert len(data) < 4096
    body = zlib.decompressobj(-15).decompress(data[10:-8])
    assert body == b"head" + bytes(2 * MiB) + b"tail"


# ---------------------------------------------------------------- IDX


def idx_header(*dims: int, magic: int | None = None) -> bytes:
    return struct.pack(f">I{len(dims)}I", magic or 0x800 + len(dims), *dims)


def test_idx_gz_that_inflates_past_its_header_stops_there(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzipped(idx_header(30, 28, 28), GiB))  # 30 images, then a gigabyte more
    assert path.stat().st_size < 1.1 * MiB
    with bounded(), pytest.raises(DataError) as e:
        read_idx(path, "images")
    assert one_line(e).endswith("header says 30x28x28 = 23,520 bytes of data, but the file holds more")


@pytest.mark.parametrize(
    "dims, message",
    [
        ((1_300_000, 28, 28), r"= 1,019,200,000 bytes of data, too much for [\d,]+ bytes of gzip"),
        ((2_000_000, 28, 28), r"= 1,568,000,000 bytes of data, over the 1,073,741,824 read from one IDX"),
        ((1, 10_000, 10_000), r"images of 10000x10000 are too large for digits"),
        ((0, 28, 28), r"header says 0x28x28 = 0 bytes of data: no data"),
        ((5, 0, 0), r"header says 5x0x0 = 0 bytes of data: no data"),
    ],
)
@pytest.mark.parametrize("gz", [True, False])
def test_idx_header_is_checked_before_anything_is_allocated(tmp_path, dims, message, gz):
    path = tmp_path / "x-idx3-ubyte"
    head = idx_header(*dims)
    path.write_bytes(gzipped(head, MiB) if gz else head + bytes(100))
    if not gz and "gzip" in message:  # uncompressed, the same header meets the file's length first
        message = r"1,019,200,000 bytes of data, but the file holds 100"
    with bounded(), pytest.raises(DataError, match=message) as e:
        read_idx(path, "images")
    assert one_line(e).startswith(str(path))


@pytest.mark.parametrize(
    "data, message",
    [
        (idx_header(3, 4, 4, magic=0x0D03) + bytes(192), "magic number 3331, expected 2051 for IDX images"),
        (idx_header(48, 4) + bytes(192), r"magic number 2050, expected 2051 .*unsigned bytes in 3 dim"),
        (b"\0\0\x08\x03\0\0", "6 bytes, too short for an IDX images header"),
        (b"\0\0", "2 bytes, too short"),
    ],
)
def test_idx_type_dimensions_and_short_headers(tmp_path, data, message):
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(data)
    with pytest.raises(DataError, match=message) as e:
        read_idx(path, "images")
    one_line(e)


def write_idx(root: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{prefix}-images-idx3-ubyte").write_bytes(idx_header(*images.shape) + images.tobytes())
    (root / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_header(*labels.shape) + labels.tobytes())


def test_idx_train_and_test_of_different_sizes(tmp_path):
    write_idx(tmp_path, "train", np.zeros((4, 28, 28), np.uint8), np.arange(4, dtype=np.uint8))
    write_idx(tmp_path, "t10k", np.zeros((2, 20, 20), np.uint8), np.arange(2, dtype=np.uint8))
    with pytest.raises(
        DataError, match=r"train-images-idx3-ubyte holds 28x28, .*t10k-images-idx3-ubyte holds 20x20.*--size"
    ) as e:
        load_dataset(tmp_path)
    one_line(e)
    assert load_dataset(tmp_path, size=28).valid.x.shape == (2, 28, 28)  # resized to one size: fine


def test_idx_empty_split(tmp_path):
    write_idx(tmp_path, "train", np.zeros((4, 8, 8), np.uint8), np.arange(4, dtype=np.uint8))
    write_idx(tmp_path, "t10k", np.zeros((0, 8, 8), np.uint8), np.zeros(0, np.uint8))
    with pytest.raises(
        DataError, match=r"t10k-images-idx3-ubyte: header says 0x8x8 = 0 bytes of data: no data"
    ):
        load_dataset(tmp_path)


# ---------------------------------------------------------------- archives


def test_tgz_with_a_gigabyte_member_is_refused_from_its_header(tmp_path):
    path = tmp_path / "bomb.tgz"
    path.write_bytes(gzipped(tar_header("big.png", GiB), GiB, bytes(1024)))
    assert path.stat().st_size < 1.1 * MiB
    with bounded(), pytest.raises(DataError) as e:
        extract_archive(path, tmp_path / "out")
    assert one_line(e) == (
        f"{path}: member 'big.png' is 1,073,741,824 bytes, over the 67,108,864 allowed for one file; "
        "nothing was extracted"
    )
    assert not (tmp_path / "out").exists()


def test_tgz_of_many_members_that_add_up_to_a_bomb(tmp_path):
    member = 60 * MiB  # each under the limit for one file
    parts = [p for i in range(17) for p in (tar_header(f"{i}.png", member), member)]
    path = tmp_path / "bomb.tgz"
    path.write_bytes(gzipped(*parts, bytes(1024)))
    too_much = (
        r"members add up to over [\d,]+ bytes, too much for a [\d,]+-byte archive \(a decompression bomb"
    )
    with bounded(seconds=3), pytest.raises(DataError, match=too_much) as e:  # inflates 180 MiB to skip it
        extract_archive(path, tmp_path / "out")
    one_line(e)
    assert not (tmp_path / "out").exists()


def test_zip_with_a_gigabyte_member_is_refused_from_its_header(tmp_path):
    path = tmp_path / "bomb.zip"
    path.write_bytes(zip_of("big.png", deflated(GiB), GiB))
    with bounded(), pytest.raises(DataError, match=r"member 'big.png' is 1,073,741,824 bytes, over the") as e:
        extract_archive(path, tmp_path / "out")
    one_line(e)
    assert not (tmp_path / "out").exists()


def test_zip_whose_header_lies_writes_no_more_than_it_says(tmp_path):
    path = tmp_path / "liar.zip"
    path.write_bytes(zip_of("small.png", deflated(GiB), 10))  # "10 bytes", and a gigabyte inside
    with bounded(), pytest.raises(DataError, match=r"liar\.zip: not a readable archive \(Bad CRC-32") as e:
        extract_archive(path, tmp_path / "out")
    one_line(e)
    assert (tmp_path / "out" / "small.png").stat().st_size <= 10  # callers then discard the folder


def test_zip_member_holding_more_than_its_header_says_is_stopped(tmp_path, monkeypatch):
    # zipfile itself stops at the size the index gives; our count is the bound if it ever did not
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a.png", b"x" * 10)
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, info: io.BytesIO(b"x" * 100))
    with pytest.raises(DataError, match=r"member 'a.png' holds more than the 10 bytes its header says"):
        extract_archive(path, tmp_path / "out")


def test_archive_over_the_total_or_member_count(tmp_path, monkeypatch):
    path = tmp_path / "a.tgz"
    with tarfile.open(path, "w:gz") as t:
        for i in range(3):
            data = np.random.default_rng(i).bytes(MiB)  # incompressible: no bomb
            info = tarfile.TarInfo(f"{i}.png")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    monkeypatch.setattr("digitlearn.data.sources.MAX_TOTAL_BYTES", 2 * MiB)
    with pytest.raises(
        DataError, match=r"members add up to over 2,097,152 bytes, the most extracted from one"
    ):
        extract_archive(path, tmp_path / "out")
    monkeypatch.setattr("digitlearn.data.sources.MAX_MEMBERS", 2)
    with pytest.raises(DataError, match=r"a\.tgz: more than 2 members, the most read from one archive"):
        extract_archive(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_encrypted_zip_member_is_refused(tmp_path):
    path = tmp_path / "locked.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a.png", b"x")
    data = bytearray(path.read_bytes())
    for sig, flags_at in ((b"PK\3\4", 6), (b"PK\1\2", 8)):  # set the "encrypted" bit in both headers
        data[data.index(sig) + flags_at] |= 1
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"member 'a.png' is encrypted; refusing it"):
        extract_archive(path, tmp_path / "out")


# ---------------------------------------------------------------- names and formats


def test_names_that_are_not_utf8_are_read_and_shown_escaped(tmp_path, fresh_home):
    root = make_folder(tmp_path / "ds", n=2)
    raw_root = os.fsencode(root)
    os.rename(raw_root + b"/train/3", raw_root + b"/train/\xff3")
    os.rename(raw_root + b"/train/\xff3/0.png", raw_root + b"/train/\xff3/\xfe\n.png")
    ds = load_dataset(root)
    assert ds.classes == ["3", "7", "\\xff3"]  # the byte 0xff, shown escaped
    assert ds.train.names[-2:] == ["\\xff3/1.png", "\\xff3/\\xfe\\n.png"]
    json.dumps(ds.train.names, ensure_ascii=False).encode("utf-8")  # valid UTF-8 everywhere
    assert load_dataset(root).train.names == ds.train.names  # the decode cache holds them too

    archive = Path(os.fsdecode(os.fsencode(tmp_path) + b"/\xfd.tgz"))
    with tarfile.open(archive, "w:gz") as t:
        t.add(root, arcname="ds")
    assert load_dataset(archive).classes == ds.classes

    bad = raw_root + b"/valid/7/\xfe.png"
    Path(os.fsdecode(bad)).write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"cannot read image .*valid/7/\\xfe\.png: not an image") as e:
        load_dataset(root)
    one_line(e)


def test_empty_class_folder_with_a_name_that_is_not_utf8(tmp_path):
    root = make_folder(tmp_path / "ds", n=1)
    os.mkdir(os.fsencode(root) + b"/valid/\x80")
    with pytest.raises(DataError, match=r"class folder .*valid/\\x80 holds no images") as e:
        load_dataset(root)
    one_line(e)


def test_class_folders_that_would_show_alike(tmp_path):
    root = make_folder(tmp_path / "ds", classes=("\\xff",), n=1)  # named with 4 characters
    os.rename(os.fsencode(root / "train" / "\\xff"), os.fsencode(root) + b"/train/\xff")
    make_folder(root, classes=("\\xff",), n=1)
    with pytest.raises(DataError, match=r"ds/train: two class folders are both shown as '\\\\xff'"):
        load_dataset(root)


def test_eps_named_png_or_tif_never_reaches_ghostscript(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "ds", n=1)
    eps = io.BytesIO()
    Image.new("L", (8, 8)).save(eps, "EPS")
    for name in ("x.png", "y.tif"):
        (root / "train" / "3" / name).write_bytes(eps.getvalue())
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", lambda self: pytest.fail("EPS plugin reached"))
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *a, **k: pytest.fail("Ghostscript run"))
    monkeypatch.setattr("subprocess.Popen", lambda *a, **k: pytest.fail("a process was spawned"))
    with pytest.raises(
        DataError, match=r"cannot read image .*train/3/x\.png: not an image in a known format"
    ) as e:
        load_dataset(root)
    one_line(e)


# ---------------------------------------------------------------- a killed run's leftovers


def test_decode_cache_leftover_of_a_killed_run_is_removed(tmp_path):
    root = make_folder(tmp_path / "ds")
    load_dataset(root)
    part = leftover(root / ".digitlearn-cache-native.safetensors", dead_pid())
    load_dataset(root)  # from the cache, and the leftover beside it goes
    assert not part.exists()


def test_extraction_leftover_of_an_older_archive_is_removed(tmp_path, fresh_home):
    path = tmp_path / "a.tgz"
    with tarfile.open(path, "w:gz") as t:
        t.add(make_folder(tmp_path / "src"), arcname="ds")
    load_dataset(path)
    part = leftover(fresh_home / "extracted" / "a-0123456789ab", dead_pid(), folder=True)
    load_dataset(path)  # extracted already: only the sweep runs
    assert not part.exists()
    assert len(list((fresh_home / "extracted").iterdir())) == 1


def test_fetch_leftover_of_a_killed_run_is_removed(fresh_home):
    (fresh_home / "data" / "tiny").mkdir(parents=True)
    part = leftover(fresh_home / "data" / "tiny", dead_pid(), folder=True)
    assert fetch(DatasetSpec("tiny", ())) == fresh_home / "data" / "tiny"  # there already
    assert not part.exists()
