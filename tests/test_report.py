"""The report: one self-contained HTML page, a Markdown twin, results.json, and the folder rules."""

import json
import re

import torch
from matplotlib.figure import Figure

from digitlearn.chapter import reproduce as rp
from digitlearn.chapter.report import write_report
from digitlearn.cli import main


def fake_step(ok: bool, text: str = "a step") -> list[rp.Step]:
    def run(ctx: rp.Context) -> None:
        ctx.checks.append(rp.Check("fake", text, "1", "1" if ok else "0", ok, 1))
        fig = Figure()
        fig.subplots().plot([0, 1], [1, 0])
        ctx.figure("curves_fake", "a falling line", fig)

    return [rp.Step("fake step", run)]


def external_references(html: str) -> list[str]:
    refs = re.findall(r"""(?:src|href|action|poster)\s*=\s*["']?([^"'\s>]+)""", html, re.I)
    refs += re.findall(r"url\(\s*['\"]?([^'\")]+)", html) + re.findall(r"@import\s+['\"]?([^'\";]+)", html)
    return [r for r in refs if not r.startswith(("data:", "#"))]


def test_report_is_self_contained_and_escapes_what_it_shows(tmp_path):
    rep = rp.reproduce(steps=fake_step(True, "<script>alert(1)</script> | pipe"), log=lambda line: None)
    out = write_report(rep, tmp_path / "rep")
    html = (out / "report.html").read_text()
    assert external_references(html) == []
    assert external_references('<img src="https://x/y.png">') == ["https://x/y.png"]  # the check can fail
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert html.count('src="data:image/png;base64,') == 1
    md = (out / "report.md").read_text()
    assert "\\| pipe" in md and "![a falling line](figures/curves_fake.png)" in md
    assert (out / "figures" / "curves_fake.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "results.json").read_text())["figures"] == ["curves_fake"]


def test_report_folder_rules(tmp_path, capsys):
    rep = rp.reproduce(steps=fake_step(True), log=lambda line: None)
    out = write_report(rep, tmp_path / "rep")
    write_report(rep, out)  # an earlier report is replaced
    assert sorted(p.name for p in out.iterdir()) == ["figures", "report.html", "report.md", "results.json"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert main(["reproduce", "--out", str(mine)]) == 1  # refused before any work
    err = capsys.readouterr().err
    assert err.startswith(f"digitlearn: error: {mine} holds other files (notes.txt)") and err.count("\n") == 1
    assert (mine / "notes.txt").read_text() == "keep me" and len(list(mine.iterdir())) == 1
    (tmp_path / "file").write_text("x")
    assert main(["reproduce", "--out", str(tmp_path / "file")]) == 1
    assert "is a file: --out names a folder" in capsys.readouterr().err


def test_figures_drawn_side_by_side_are_the_ones_drawn_in_turn(tmp_path):
    def three(ctx: rp.Context) -> None:  # in the order given, each its own picture
        for k in range(3):
            fig = Figure()
            fig.subplots().plot([0, 1], [k, 1 - k])
            ctx.figure(f"curves_{k}", f"line {k}", fig)

    rep = rp.reproduce(steps=[rp.Step("three figures", three)], log=lambda line: None)
    pngs = {}
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):  # PyTorch's threads: one draws in turn, two in forked processes
            torch.set_num_threads(n)
            folder = write_report(rep, tmp_path / f"rep{n}") / "figures"
            pngs[n] = [(folder / f"curves_{k}.png").read_bytes() for k in range(3)]
    finally:
        torch.set_num_threads(threads)
    assert pngs[1] == pngs[2] and len(set(pngs[1])) == 3
