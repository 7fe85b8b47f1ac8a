"""Every Python block in the README and docs runs, so the examples cannot rot."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCKS = [
    pytest.param(code, id=f"{doc.name}:{n}")
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for n, code in enumerate(re.findall(r"```python\n(.*?)```", doc.read_text(), re.S))
]


@pytest.mark.parametrize("code", BLOCKS)
def test_python_block_runs(code, sample, capsys, tmp_path_factory, monkeypatch, request):
    # examples write files here, not into the repo; a document's blocks share one folder, in
    # order, as a reader running them one after another would
    folder = tmp_path_factory.getbasetemp() / "docs" / request.node.callspec.id.split(":")[0]
    folder.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(folder)
    exec(compile(code, "<doc>", "exec"), {})
    assert capsys.readouterr().out  # the examples show their results


def test_readme_example_prints_the_chapter_figures(sample, capsys):
    readme = next(p for p in BLOCKS if p.id == "README.md:0").values[0]
    exec(compile(readme, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "3/10000.png" in out and "tensor(0.1114) tensor(0.1586)" in out and "0.9511" in out


def test_readme_training_example_prints_the_figures_it_claims(sample, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    readme = next(p for p in BLOCKS if p.id == "README.md:1").values[0]
    exec(compile(readme, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "'batch_accuracy': 0.9808" in out and "('3', 0, tensor([9.9997e-01, 3.0408e-05]))" in out
    assert (tmp_path / "runs" / "simple_net" / "weights.safetensors").exists()
