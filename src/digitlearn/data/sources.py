"""Where dataset files come from: a registry of named datasets, a local mirror, or the internet.

`fetch(name)` returns a local folder holding the dataset, ready for `readers`. Files are
verified before use (size and md5 for downloads, the mirror's SHA256SUMS for a mirror),
written under a temporary name and renamed only once verified, and archives are extracted
into a temporary folder that is renamed into place only when every member was safe and the
members, their sizes read from the archive's index before anything is written, fit a budget
(a small archive that inflates to gigabytes is refused, not extracted).
"""

import gzip
import hashlib
import http.client
import os
import shutil
import stat
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm  # not tqdm.auto: without ipywidgets it warns in notebooks, for no gain

from ..errors import DataError, DownloadError
from ..files import atomic_dir, atomic_path, remove_stale, shown

ARCHIVE_SUFFIXES = (".tgz", ".tar.gz", ".tar", ".zip")
READ_SIZE = 1 << 16  # bytes per read of a download or of an archive's member

# What an archive may expand to. The real ones are far inside: mnist_png.tgz holds 70,023
# members, the largest 419 bytes, 19 MB from 16.6 MB (1.2x); mnist_sample.tgz's largest member is
# its 284 KB labels.csv, 4.2 MB from 3.4 MB.
MAX_MEMBER_BYTES = 64 * 2**20  # one file: a digit image is kilobytes, a big labels CSV megabytes
MAX_TOTAL_BYTES = 2 * 2**30  # one archive: a hundred times mnist_png
# Images do not compress further (about 1x), nor do tar headers or CSV text compress past ~20x;
# zeros compress ~1000x. 200x leaves real data a tenfold margin and stops a bomb at a fifth of
# what it claims. Small files may inflate to RATIO_FLOOR whatever their ratio.
MAX_RATIO = 200
RATIO_FLOOR = 64 * 2**20
# each member costs ~500 bytes of index in memory while a tar is read: 125 MB at most
MAX_MEMBERS = 250_000


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: its name (also its path inside a mirror), where to get it, its md5."""

    name: str
    urls: tuple[str, ...]
    md5: str
    size: int | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset: the files that make it. Archives among them are extracted."""

    name: str
    files: tuple[RemoteFile, ...]
    description: str = ""


_IDX_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)


def _idx_file(name: str, md5: str, size: int) -> RemoteFile:
    return RemoteFile(f"mnist/{name}", tuple(base + name for base in _IDX_MIRRORS), md5, size)


REGISTRY: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
    """Add (or replace) a named dataset, so `fetch`, `load_dataset` and `--data` know it."""
    REGISTRY[spec.name] = spec
    return spec


register(
    DatasetSpec(
        "mnist_sample",
        (
            RemoteFile(
                "mnist_sample.tgz",
                ("https://s3.amazonaws.com/fast-ai-sample/mnist_sample.tgz",),
                "2dbc7ec6f9259b583af0072c55816a88",
                3_214_948,
            ),
        ),
        "fastai's MNIST_SAMPLE: 3s and 7s, train/valid folders of PNGs (the chapter's data)",
    )
)
register(
    DatasetSpec(
        "mnist_png",
        (
            RemoteFile(
                "mnist_png.tgz",
                ("https://s3.amazonaws.com/fast-ai-imageclas/mnist_png.tgz",),
                "03639f83c4e3d19e0a3a53a8a997c487",
                15_683_414,
            ),
        ),
        "fastai's MNIST: all ten digits, training/testing folders of PNGs",
    )
)
register(
    DatasetSpec(
        "mnist",
        (
            _idx_file("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", 9_912_422),
            _idx_file("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", 28_881),
            _idx_file("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", 1_648_877),
            _idx_file("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", 4_542),
        ),
        "the original MNIST IDX files: all ten digits, 60,000 train and 10,000 test images",
    )
)


def cache_home() -> Path:
    """The cache folder: `DIGITLEARN_HOME`, else `$XDG_CACHE_HOME/digitlearn` or `~/.cache/digitlearn`."""
    if env := os.environ.get("DIGITLEARN_HOME"):
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "digitlearn"


def mirror() -> Path | None:
    """The local mirror folder named by `DIGITLEARN_MIRROR`, if any."""
    env = os.environ.get("DIGITLEARN_MIRROR")
    return Path(env).expanduser() if env else None


def file_hash(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def fetch(dataset: str | DatasetSpec) -> Path:
    """Return the local folder of a registered dataset, getting and unpacking it on first use."""
    spec = dataset if isinstance(dataset, DatasetSpec) else REGISTRY.get(dataset)
    if spec is None:
        raise DataError(f"unknown dataset {dataset!r} (known: {', '.join(sorted(REGISTRY))})")
    target = cache_home() / "data" / spec.name
    if target.is_dir():  # only ever created by the rename below, so it is complete
        remove_stale(target)  # what a killed run beside it left behind
        return target
    with atomic_dir(target) as staging:
        for remote in spec.files:
            local = _obtain(remote)
            name = PurePosixPath(remote.name).name
            if remote.name.endswith(ARCHIVE_SUFFIXES):
                extract_archive(local, staging)
            elif name.endswith(".gz"):
                # kept inflated: every load then reads the bytes instead of inflating 10 MB again
                # (a quarter of a second for MNIST)
                _inflate(local, staging / name.removesuffix(".gz"))
            else:
                shutil.copyfile(local, staging / name)
    return target


def _inflate(gz: Path, dest: Path) -> None:
    """Write the gzip file `gz` inflated to `dest`, bounded as an archive's member is."""
    limit = expansion_limit(gz.stat().st_size, MAX_TOTAL_BYTES)
    written = 0
    try:
        with gzip.open(gz, "rb") as src, open(dest, "wb") as dst:
            while chunk := src.read(READ_SIZE):
                written += len(chunk)
                if written > limit:
                    raise DataError(f"{shown(gz)}: inflates to more than {limit:,} bytes: not a dataset file")
                dst.write(chunk)
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DataError(f"{shown(gz)}: corrupt or truncated gzip data ({e})") from None


def _obtain(remote: RemoteFile) -> Path:
    """A verified local copy of `remote`: the mirror's file, or a download into the cache."""
    if (root := mirror()) is not None:
        return _from_mirror(root, remote)
    dest = cache_home() / "downloads" / remote.name
    if not dest.is_file():  # a file at dest was verified before it was renamed there
        download(remote, dest)
    return dest


def _from_mirror(root: Path, remote: RemoteFile) -> Path:
    if not root.is_dir():
        raise DownloadError(f"mirror folder {root} (DIGITLEARN_MIRROR) does not exist")
    path = root / remote.name
    if not path.is_file():
        raise DownloadError(f"mirror {root} (DIGITLEARN_MIRROR) has no file {remote.name}")
    sums = _read_sha256sums(root / "SHA256SUMS")
    if remote.name in sums:
        algorithm, expected = "sha256", sums[remote.name]
    else:
        algorithm, expected = "md5", remote.md5
    if (got := file_hash(path, algorithm)) != expected:
        hint = "" if sums else " (a mirror of re-packed files needs a SHA256SUMS file)"
        raise DownloadError(f"{path}: {algorithm} {got} does not match the expected {expected}{hint}")
    return path


def _read_sha256sums(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    sums = {}
    for line in path.read_text().splitlines():
        if parts := line.split(maxsplit=1):
            if len(parts) != 2:
                raise DownloadError(f"{path}: malformed line {line!r}")
            sums[parts[1].lstrip("*").removeprefix("./")] = parts[0].lower()
    return sums


def download(remote: RemoteFile, dest: Path, retries: int = 3, timeout: float = 30.0) -> Path:
    """Download `remote` to `dest`, trying each URL in turn and retrying dropped connections.

    Only a file whose size and md5 match is renamed to `dest`; a bad download is deleted.
    """
    problems = [f"no URL is known for {remote.name}"]
    for url in remote.urls:
        for attempt in range(retries):
            try:
                with atomic_path(dest) as tmp:
                    _stream(url, tmp, remote, timeout)
                    _verify(tmp, remote, url)
                return dest
            except DownloadError as e:  # the server sent the wrong bytes: try the next URL
                problems.append(str(e))
                break
            except urllib.error.HTTPError as e:
                problems.append(f"{url}: HTTP {e.code} {e.reason}")
                if e.code < 500:
                    break
            except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
                reason = getattr(e, "reason", None) or e
                problems.append(f"{url}: {reason}")
            if attempt + 1 < retries:
                time.sleep(0.5 * 2**attempt)
    raise DownloadError(f"could not download {remote.name}: {problems[-1]}")


def _stream(url: str, tmp: Path, remote: RemoteFile, timeout: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "digitlearn"})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(tmp, "wb") as out:
        announced = int(response.headers.get("Content-Length") or 0)
        received = 0
        with tqdm(
            total=announced or remote.size,
            unit="B",
            unit_scale=True,
            desc=remote.name,
            disable=None,
            leave=False,
        ) as bar:
            while chunk := response.read(READ_SIZE):
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if announced and received != announced:  # read() just stops when the peer hangs up early
        raise ConnectionError(f"connection dropped after {received:,} of {announced:,} bytes")


def _verify(path: Path, remote: RemoteFile, url: str) -> None:
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        raise DownloadError(
            f"{remote.name} from {url}: got {size:,} bytes, expected "
            f"{remote.size:,}; the bad download was deleted"
        )
    if (got := file_hash(path, "md5")) != remote.md5:
        raise DownloadError(
            f"{remote.name} from {url}: md5 {got}, expected {remote.md5}; the bad download was deleted"
        )


def expansion_limit(stored: int, cap: int) -> int:
    """The most bytes a compressed file of `stored` bytes may inflate to: MAX_RATIO times its size,
    at least RATIO_FLOOR (a small file of very compressible data is no bomb), at most `cap`."""
    return min(cap, max(MAX_RATIO * stored, RATIO_FLOOR))


class _Budget:
    """Charges an archive's members, read from its index, against the limits above."""

    def __init__(self, archive: Path):
        self.shown = shown(archive)
        self.stored = archive.stat().st_size
        self.limit = expansion_limit(self.stored, MAX_TOTAL_BYTES)
        self.members = self.total = 0

    def charge(self, name: str, size: int) -> None:
        """Count one member of `size` bytes (as its header says) in, refusing it if over budget."""
        self.members += 1
        self.total += size
        archive = self.shown
        if self.members > MAX_MEMBERS:
            raise DataError(
                f"{archive}: more than {MAX_MEMBERS:,} members, the most read from one archive; "
                "extract it yourself and load the folder"
            )
        if size > MAX_MEMBER_BYTES:
            raise DataError(
                f"{archive}: member {name!r} is {size:,} bytes, over the {MAX_MEMBER_BYTES:,} allowed "
                "for one file; nothing was extracted"
            )
        if self.total > MAX_TOTAL_BYTES:
            raise DataError(
                f"{archive}: members add up to over {MAX_TOTAL_BYTES:,} bytes, the most extracted "
                "from one archive; extract it yourself and load the folder"
            )
        if self.total > self.limit:
            raise DataError(
                f"{archive}: members add up to over {self.limit:,} bytes, too much for a "
                f"{self.stored:,}-byte archive (a decompression bomb?); nothing was extracted"
            )


def extract_archive(archive: Path, dest: Path) -> None:
    """Extract a .tgz/.tar.gz/.tar/.zip into `dest`, refusing anything unsafe before writing.

    Unsafe: absolute names, `..` components, links that point outside `dest`, device files,
    encrypted members, and members over the size budget (MAX_MEMBER_BYTES, MAX_TOTAL_BYTES,
    MAX_RATIO, MAX_MEMBERS). On refusal nothing is extracted, or (a zip member holding more than
    its index said) the extraction stops there: callers extract into a folder they then discard.
    """
    try:
        budget = _Budget(archive)
        if archive.name.lower().endswith(".zip"):
            _extract_zip(archive, dest, budget)
        else:
            _extract_tar(archive, dest, budget)
    except (
        tarfile.TarError,
        zipfile.BadZipFile,
        EOFError,
        zlib.error,
        gzip.BadGzipFile,
        NotImplementedError,  # a zip compression method the standard library lacks
    ) as e:
        raise DataError(f"{shown(archive)}: not a readable archive ({e})") from None
    except OSError as e:  # disk full, or a member that clashes with another (a file and a folder)
        raise DataError(f"{shown(archive)}: cannot extract it ({e})") from None


def _extract_tar(archive: Path, dest: Path, budget: _Budget) -> None:
    with tarfile.open(archive) as t:
        # headers one at a time, so a member over budget is refused before its data is inflated
        for member in t:
            _check_tar_member(archive, member)
            budget.charge(member.name, member.size)
        # A tar frames each member's data by the size in its header (a sparse member's too), so
        # what is written is what was charged. The standard library's "data" filter is a second
        # safety net.
        t.extractall(dest, members=_progress(t.getmembers(), archive), filter="data")


def _extract_zip(archive: Path, dest: Path, budget: _Budget) -> None:
    with zipfile.ZipFile(archive) as z:
        planned = []
        for info in z.infolist():  # the central directory: every member's name and size, unread
            planned.append((info, dest / _check_zip_member(archive, info)))
            budget.charge(info.filename, info.file_size)
        for info, path in _progress(planned, archive):
            _write_zip_member(archive, z, info, path)


def _check_zip_member(archive: Path, info: zipfile.ZipInfo) -> PurePosixPath:
    path = _check_member(archive, info.filename)
    if stat.S_ISLNK(info.external_attr >> 16):
        raise DataError(f"{shown(archive)}: member {info.filename!r} is a link; refusing it")
    if info.flag_bits & 0x1:
        raise DataError(f"{shown(archive)}: member {info.filename!r} is encrypted; refusing it")
    return path


def _write_zip_member(archive: Path, z: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> None:
    """Write one member, counting its bytes: a zip's sizes are claims, and its data may hold more."""
    if info.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with z.open(info) as src, open(path, "xb") as out:  # "x": a name twice in one zip is refused
        left = info.file_size
        while chunk := src.read(min(READ_SIZE, left + 1)):
            left -= len(chunk)
            if left < 0:
                raise DataError(
                    f"{shown(archive)}: member {info.filename!r} holds more than the "
                    f"{info.file_size:,} bytes its header says; extraction stopped"
                )
            out.write(chunk)


def _progress(members: list, archive: Path) -> tqdm:
    return tqdm(members, desc=f"extracting {shown(archive.name)}", unit="file", disable=None, leave=False)


def _check_member(archive: Path, name: str) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise DataError(
            f"{shown(archive)}: member {name!r} would be written outside the target folder; "
            "nothing was extracted"
        )
    return path


def _check_tar_member(archive: Path, member: tarfile.TarInfo) -> None:
    path = _check_member(archive, member.name)
    if member.isdev():
        raise DataError(f"{shown(archive)}: member {member.name!r} is a device file; nothing was extracted")
    if member.issym() or member.islnk():
        # symlink targets are relative to the member's folder, hard links to the archive root
        target = PurePosixPath(member.linkname)
        base = path.parent if member.issym() else PurePosixPath()
        depth = 0
        for part in () if target.is_absolute() else (base / target).parts:
            depth += -1 if part == ".." else part != "."
            if depth < 0:
                break
        if target.is_absolute() or depth < 0:
            raise DataError(
                f"{shown(archive)}: link {member.name!r} points outside the target folder; "
                "nothing was extracted"
            )
