"""The `digitlearn` command as a user runs it: figures printed, errors as one line, no traceback."""

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from digitlearn.cli import main

from .conftest import make_folder


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "digitlearn", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_baseline_prints_the_chapter_figures(sample, capsys):
    assert main(["baseline", "--data", "mnist_sample"]) == 0
    out = capsys.readouterr().out
    lines = [line.split() for line in out.splitlines()]
    assert ["3", "1,010", "926", "0.9168"] in lines and ["7", "1,028", "1,013", "0.9854"] in lines
    assert "average of class accuracies: 0.9511" in out
    assert "overall accuracy: 0.9514 (1,939/2,038)" in out


def test_baseline_rmse_and_json(sample, capsys):
    assert main(["baseline", "--data", "mnist_sample", "--distance", "rmse", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["distance"] == "rmse" and [c["class"] for c in result["classes"]] == ["3", "7"]
    assert result["accuracy"] == pytest.approx(1969 / 2038)


def test_baseline_ten_classes_has_a_row_per_digit(mnist, capsys):
    assert main(["baseline", "--data", "mnist"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert [r[0] for r in rows if len(r) == 4 and r[0].isdigit()] == [str(d) for d in range(10)]


def test_show_the_chapter_example(sample, capsys, tmp_path):
    out_png = tmp_path / "three.png"
    assert (
        main(
            [
                "show",
                "--data",
                "mnist_sample",
                "--split",
                "train",
                "--class",
                "3",
                "--index",
                "1",
                "--rows",
                "4:10",
                "--cols",
                "4:10",
                "--out",
                str(out_png),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "train/3/10000.png" in out
    assert "  7    0  93 244 249 253 187" in out
    rows = {r[0]: r[1:] for r in map(str.split, out.splitlines()) if r and r[0] in ("3", "7")}
    assert rows == {"3": ["0.1114", "0.2021"], "7": ["0.1586", "0.3021"]}
    assert Image.open(out_png).format == "PNG"


def test_show_count_past_the_end(tmp_path):
    root = make_folder(tmp_path / "ds")
    result = run(
        "show", "--data", str(root), "--index", "4", "--count", "3", "--out", str(tmp_path / "g.png")
    )
    assert result.returncode == 1 and "--index 4 --count 3 is out of range" in result.stderr
    assert not (tmp_path / "g.png").exists()


def test_show_grid_and_means(sample, tmp_path):
    assert main(["show", "--data", "mnist_sample", "--count", "6", "--out", str(tmp_path / "g.png")]) == 0
    assert main(["show", "--data", "mnist_sample", "--means", "--out", str(tmp_path / "m.png")]) == 0
    assert Image.open(tmp_path / "m.png").width < Image.open(tmp_path / "g.png").width


def test_on_a_folder_of_ones_own(tmp_path, capsys):
    root = make_folder(tmp_path / "ds", classes=("a", "b", "c"))
    assert main(["baseline", "--data", str(root)]) == 0
    assert "overall accuracy: 1.0000 (9/9)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["baseline", "--data", "nope_set"], "'nope_set' is neither a known dataset"),
        (["baseline", "--data", "/no/such/dir"], "no such file or folder: /no/such/dir"),
        (["show", "--data", "{root}", "--index", "99"], "--index 99 is out of range: train has 6"),
        (["show", "--data", "{root}", "--class", "5"], "class '5' is not in"),
        (["show", "--data", "{root}", "--out", "{tmp}/x.bmpx"], "unsupported figure format '.bmpx'"),
        (["baseline", "--data", "{root}", "--split", "dev"], "unknown split 'dev'"),
    ],
)
def test_user_mistakes_are_one_line_without_traceback(tmp_path, args, message):
    root = make_folder(tmp_path / "ds")
    args = [a.format(root=root, tmp=tmp_path) for a in args]
    result = run(*args)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"digitlearn: error: {result.stderr.split(': ', 2)[2].strip()}"
    ]
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.glob("x.*"))


def test_corrupt_png_is_named(tmp_path):
    root = make_folder(tmp_path / "ds")
    (root / "train" / "3" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = run("baseline", "--data", str(root))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"cannot read image {root}/train/3/1.png" in result.stderr


def test_bad_arguments_exit_2():
    assert run("show", "--means").returncode == 2
    assert run("baseline", "--size", "0x3").returncode == 2
    assert run("--version").stdout.startswith("digitlearn ")


def test_datasets_lists_the_registry(capsys, fresh_home):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert str(fresh_home) in out and all(n in out for n in ("mnist_sample", "mnist_png", "mnist "))
