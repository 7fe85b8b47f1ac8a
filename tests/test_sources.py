"""Download, mirror and extraction, end to end against a real HTTP server on 127.0.0.1."""

import hashlib
import http.server
import io
import os
import stat
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from digitlearn import DatasetSpec, RemoteFile, fetch, load_dataset
from digitlearn.data.sources import REGISTRY, download, extract_archive, register
from digitlearn.errors import DataError, DownloadError

from .conftest import make_folder


def tgz_of(folder: Path, arcname: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        t.add(folder, arcname=arcname)
    return buf.getvalue()


class Server:
    """Serves `files` (path -> bytes); `drops[path]` counts requests to cut off halfway."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.drops: dict[str, int] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.drops.get(self.path, 0) > 0:
                    server.drops[self.path] -= 1
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(2)  # the connection drops mid-transfer
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # polled often, so that closing it (each test's teardown) waits milliseconds, not half a second
        threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def archive(tmp_path) -> bytes:
    return tgz_of(make_folder(tmp_path / "src", n=2), "tiny")


@pytest.fixture
def offline(monkeypatch, fresh_home):
    monkeypatch.delenv("DIGITLEARN_MIRROR", raising=False)
    return fresh_home


@pytest.fixture
def pauses(monkeypatch) -> list[float]:
    """The pauses between download attempts, taken from the clock: recorded, not slept."""
    slept = []
    monkeypatch.setattr("digitlearn.data.sources.time.sleep", slept.append)
    return slept


def spec_for(server, data: bytes, name="tiny", md5=None, size=True) -> DatasetSpec:
    server.files["/tiny.tgz"] = data
    remote = RemoteFile(
        "tiny.tgz",
        (server.url + "/tiny.tgz",),
        md5 or hashlib.md5(data).hexdigest(),
        len(data) if size else None,
    )
    return DatasetSpec(name, (remote,))


def files_in(home: Path) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*") if not p.is_dir())


def test_download_good_checksum_extracts_and_loads(server, archive, offline):
    spec = register(spec_for(server, archive, name="tiny_good"))
    try:
        ds = load_dataset("tiny_good")
    finally:
        del REGISTRY["tiny_good"]
    assert (len(ds.train), len(ds.valid), ds.classes) == (4, 4, ["3", "7"])
    assert (offline / "downloads" / "tiny.tgz").read_bytes() == archive
    assert fetch(spec) == offline / "data" / "tiny_good"
    assert server.requests == ["/tiny.tgz"]  # the second fetch used the cache
    assert not [p for p in files_in(offline) if ".part" in p]


def test_bad_checksum_is_deleted_and_reported(server, archive, offline):
    spec = spec_for(server, archive, md5="0" * 32)
    with pytest.raises(DownloadError, match=r"tiny.tgz.*md5 .* expected 0{32}; the bad download was deleted"):
        fetch(spec)
    assert files_in(offline) == []


def test_wrong_size_is_reported(server, archive, offline):
    spec = spec_for(server, archive)
    spec = DatasetSpec("tiny", (RemoteFile("tiny.tgz", spec.files[0].urls, spec.files[0].md5, 12),))
    with pytest.raises(DownloadError, match=f"got {len(archive):,} bytes, expected 12"):
        fetch(spec)


def test_dropped_connection_is_retried(server, archive, offline, pauses):
    spec = spec_for(server, archive)
    server.drops["/tiny.tgz"] = 2
    ds = load_dataset(fetch(spec))
    assert len(ds.train) == 4
    assert server.requests == ["/tiny.tgz"] * 3
    assert pauses == [0.5, 1.0]  # backing off before each retry


def test_connection_that_keeps_dropping_fails_cleanly(server, archive, offline, pauses):
    spec = spec_for(server, archive)
    server.drops["/tiny.tgz"] = 10
    with pytest.raises(DownloadError, match=r"could not download tiny\.tgz"):
        download(spec.files[0], offline / "downloads" / "tiny.tgz", retries=2)
    assert len(server.requests) == 2 and pauses == [0.5]  # no pause after the last attempt
    assert files_in(offline) == []


def test_next_mirror_is_tried_after_a_404(server, archive, offline):
    server.files["/b/tiny.tgz"] = archive
    remote = RemoteFile(
        "tiny.tgz", (server.url + "/a/tiny.tgz", server.url + "/b/tiny.tgz"), hashlib.md5(archive).hexdigest()
    )
    assert download(remote, offline / "t.tgz").read_bytes() == archive
    assert server.requests == ["/a/tiny.tgz", "/b/tiny.tgz"]


def evil_tar(member: tarfile.TarInfo, data: bytes = b"x") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        member.size = len(data) if member.isfile() else 0
        t.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return buf.getvalue()


def test_archive_escaping_its_folder_is_refused(server, offline, tmp_path):
    data = evil_tar(tarfile.TarInfo("../escaped.txt"))
    with pytest.raises(DataError, match=r"'\.\./escaped\.txt' would be written outside"):
        fetch(spec_for(server, data))
    assert files_in(offline) == ["downloads/tiny.tgz"]  # the verified download stays; no extraction


@pytest.mark.parametrize(
    "member, message",
    [
        (tarfile.TarInfo("/etc/passwd"), "would be written outside"),
        (dict(name="a/link", type=tarfile.SYMTYPE, linkname="../../outside"), "points outside"),
        (dict(name="link", type=tarfile.SYMTYPE, linkname="/etc/passwd"), "points outside"),
        (dict(name="hard", type=tarfile.LNKTYPE, linkname="../x"), "outside"),
        (dict(name="dev", type=tarfile.CHRTYPE), "device file"),
    ],
)
def test_unsafe_tar_members_are_refused(tmp_path, member, message):
    if isinstance(member, dict):
        info = tarfile.TarInfo(member["name"])
        info.type, info.linkname = member["type"], member.get("linkname", "")
        member = info
    path = tmp_path / "evil.tgz"
    path.write_bytes(evil_tar(member))
    with pytest.raises(DataError, match=message):
        extract_archive(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_links_inside_the_archive_are_fine(tmp_path):
    info = tarfile.TarInfo("a/link")
    info.type, info.linkname = tarfile.SYMTYPE, "../b.txt"
    path = tmp_path / "ok.tgz"
    path.write_bytes(evil_tar(info))
    extract_archive(path, tmp_path / "out")
    assert (tmp_path / "out" / "a" / "link").is_symlink()


def test_zip_escaping_its_folder_is_refused(tmp_path):
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("ok.txt", "fine")
        z.writestr("../../evil.txt", "bad")
    with pytest.raises(DataError, match="would be written outside"):
        extract_archive(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_zip_symlink_is_refused(tmp_path):
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as z:
        info = zipfile.ZipInfo("link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(info, "/etc/passwd")
    with pytest.raises(DataError, match="is a link"):
        extract_archive(path, tmp_path / "out")


def test_truncated_archive_names_the_file(tmp_path, archive):
    path = tmp_path / "cut.tgz"
    path.write_bytes(archive[: len(archive) // 2])
    with pytest.raises(DataError, match=r"cut\.tgz: not a readable archive"):
        extract_archive(path, tmp_path / "out")


def test_mirror_is_used_and_verified_with_sha256sums(tmp_path, archive, monkeypatch, fresh_home):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "tiny.tgz").write_bytes(archive)
    sha = hashlib.sha256(archive).hexdigest()
    (mirror / "SHA256SUMS").write_text(f"{sha}  tiny.tgz\n")
    monkeypatch.setenv("DIGITLEARN_MIRROR", str(mirror))
    # the URL is unreachable and the md5 is not the official one: the mirror must be enough
    spec = DatasetSpec("tiny", (RemoteFile("tiny.tgz", ("http://127.0.0.1:9/x",), "0" * 32),))
    assert len(load_dataset(fetch(spec)).train) == 4

    (mirror / "SHA256SUMS").write_text(f"{'1' * 64}  tiny.tgz\n")
    monkeypatch.setenv("DIGITLEARN_HOME", str(tmp_path / "home2"))
    with pytest.raises(DownloadError, match=r"tiny\.tgz: sha256 [0-9a-f]{64} does not match"):
        fetch(spec)
    assert not (tmp_path / "home2" / "data" / "tiny").exists()


def test_mirror_without_sha256sums_checks_the_official_md5(tmp_path, archive, monkeypatch, fresh_home):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "tiny.tgz").write_bytes(archive)
    monkeypatch.setenv("DIGITLEARN_MIRROR", str(mirror))
    good = DatasetSpec("tiny", (RemoteFile("tiny.tgz", (), hashlib.md5(archive).hexdigest()),))
    assert fetch(good).is_dir()
    bad = DatasetSpec("tiny2", (RemoteFile("tiny.tgz", (), "0" * 32),))
    with pytest.raises(DownloadError, match="needs a SHA256SUMS file"):
        fetch(bad)


def test_mirror_missing_a_file(tmp_path, monkeypatch, fresh_home):
    monkeypatch.setenv("DIGITLEARN_MIRROR", str(tmp_path))
    with pytest.raises(DownloadError, match=r"has no file mnist/train-images-idx3-ubyte\.gz"):
        fetch("mnist")


def test_mirror_that_does_not_exist(tmp_path, monkeypatch, fresh_home):
    monkeypatch.setenv("DIGITLEARN_MIRROR", str(tmp_path / "nowhere"))
    with pytest.raises(DownloadError, match=r"mirror folder .*nowhere \(DIGITLEARN_MIRROR\) does not exist"):
        fetch("mnist_sample")


def test_unknown_dataset_name():
    with pytest.raises(DataError, match="unknown dataset 'mnistt'"):
        fetch("mnistt")


def test_registry_lists_official_sources():
    # the checksums are tested by what they do: test_bad_checksum_is_deleted_and_reported and
    # test_download_good_checksum_extracts_and_loads
    assert {"mnist_sample", "mnist_png", "mnist"} <= set(REGISTRY)
    idx = REGISTRY["mnist"].files
    assert len(idx) == 4 and all(len(f.urls) >= 2 for f in idx)


def test_cache_home_defaults_to_user_cache(monkeypatch, tmp_path):
    from digitlearn.data.sources import cache_home

    monkeypatch.delenv("DIGITLEARN_HOME")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_home() == tmp_path / ".cache" / "digitlearn"
    os.environ["DIGITLEARN_HOME"] = "~/x"
    assert cache_home() == tmp_path / "x"


def test_download_without_urls(offline):
    with pytest.raises(DownloadError, match=r"no URL is known for x\.tgz"):
        download(RemoteFile("x.tgz", (), "0" * 32), offline / "x.tgz")


def idx_bytes(dims: tuple[int, ...], data: bytes) -> bytes:
    header = (0x800 + len(dims)).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
    return header + data


def gz_mirror(tmp_path: Path, monkeypatch, files: dict[str, bytes]) -> DatasetSpec:
    """A mirror holding `files` gzipped, with their SHA256SUMS, and a dataset made of them."""
    import gzip

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    sums = []
    for name, data in files.items():
        packed = gzip.compress(data)
        (mirror / f"{name}.gz").write_bytes(packed)
        sums.append(f"{hashlib.sha256(packed).hexdigest()}  {name}.gz")
    (mirror / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    monkeypatch.setenv("DIGITLEARN_MIRROR", str(mirror))
    return DatasetSpec("gzidx", tuple(RemoteFile(f"{n}.gz", (), "0" * 32) for n in files))


def test_gzipped_files_are_cached_inflated_and_read_the_same(tmp_path, monkeypatch, fresh_home):
    images = bytes(range(2 * 3 * 4)) * 2  # 4 images of 3x4
    files = {
        "train-images-idx3-ubyte": idx_bytes((2, 3, 4), images[:24]),
        "train-labels-idx1-ubyte": idx_bytes((2,), bytes([0, 1])),
        "t10k-images-idx3-ubyte": idx_bytes((2, 3, 4), images[24:]),
        "t10k-labels-idx1-ubyte": idx_bytes((2,), bytes([1, 0])),
    }
    folder = fetch(gz_mirror(tmp_path, monkeypatch, files))
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == files  # inflated once, here
    ds = load_dataset(folder)
    assert ds.train.x.flatten().tolist() == list(images[:24]) and ds.valid.y.tolist() == [1, 0]


def test_a_gzip_bomb_in_a_mirror_is_refused_and_nothing_is_cached(tmp_path, monkeypatch, fresh_home):
    spec = gz_mirror(tmp_path, monkeypatch, {"train-images-idx3-ubyte": bytes(80 * 2**20)})  # 80 KB packed
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: inflates to more than"):
        fetch(spec)
    assert not (fresh_home / "data" / "gzidx").exists()
