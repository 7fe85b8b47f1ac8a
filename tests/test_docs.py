"""Every code block in the README and docs is checked, so the examples cannot rot.

A block's language says how: `python` blocks run (a document's blocks in order, in one working
folder, as a reader would run them) and must print what their `print(...)  # VALUE` comments
say, where VALUE is a literal, not prose; in `sh` blocks each `digitlearn` command must parse with
the real argument parser and each `make` target must exist; `text` blocks are output and
diagrams, not code. A block with no language, or another one, fails.
"""

import ast
import contextlib
import io
import os
import re
import shlex
import tokenize
from pathlib import Path

import pytest

from digitlearn.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\S*)\n(.*?)^```\s*$", re.S | re.M)
OTHER_PROGRAMS = {"export", "curl"}  # shell lines that are not ours to check


def blocks(lang: str) -> list:
    return [
        pytest.param(code, id=f"{doc.name}:{n}")
        for doc in DOCS
        for n, code in enumerate(c for tag, c in FENCE.findall(doc.read_text()) if tag == lang)
    ]


PYTHON, SHELL = blocks("python"), blocks("sh")


def test_every_block_says_what_it_is():
    untagged = [
        f"{doc.name}: ```{tag} {code.splitlines()[0] if code else ''}"
        for doc in DOCS
        for tag, code in FENCE.findall(doc.read_text())
        if tag not in ("python", "sh", "text")
    ]
    assert untagged == []
    assert len(PYTHON) > 20 and len(SHELL) > 5


@pytest.fixture
def isolated(monkeypatch):
    """The registries and environment as they were: docs register examples and point the mirror."""
    from digitlearn.data.sources import REGISTRY
    from digitlearn.models.registry import ARCHS, MODELS

    saved = [(r, dict(r)) for r in (ARCHS, MODELS, REGISTRY)]
    monkeypatch.setattr(os, "environ", dict(os.environ))
    yield
    for registry, contents in saved:
        registry.clear()
        registry.update(contents)


# what each block printed, and the folder it ran in, when test_python_block_runs ran it: the
# tests of one document's figures read them instead of running its blocks (and their training) again
RAN: dict[str, tuple[str, Path]] = {}


@pytest.mark.parametrize("code", PYTHON)
def test_python_block_runs(code, sample, capsys, tmp_path_factory, monkeypatch, request, isolated):
    folder = tmp_path_factory.getbasetemp() / "docs" / request.node.callspec.id.split(":")[0]
    folder.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(folder)
    exec(compile(code, "<doc>", "exec"), {})
    out = capsys.readouterr().out
    RAN[request.node.callspec.id] = (out, folder)
    assert out  # the examples show their results
    assert unprinted(code, out) == []  # and what their comments say they print


def ran(doc: str, tmp_path: Path, monkeypatch) -> tuple[list[str], Path]:
    """What each python block of `doc` printed, and the folder the blocks ran in: as
    test_python_block_runs ran them, or, where it did not in this session (`pytest -k`), by
    running them here in order in `tmp_path`."""
    ids = [p.id for p in PYTHON if p.id.startswith(f"{doc}:")]
    if all(i in RAN for i in ids) and len({RAN[i][1] for i in ids}) == 1:
        return [RAN[i][0] for i in ids], RAN[ids[0]][1]
    monkeypatch.chdir(tmp_path)
    outs = []
    for i in ids:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(block(*i.split(":")), i, "exec"), {})
        outs.append(printed.getvalue())
    return outs, tmp_path


def claims(code: str) -> list[str]:
    """What a block's `print(...)  # VALUES` lines say they print, where VALUES are Python literals
    (numbers, quoted strings, lists, dicts) as `print(a, b)` writes them: prose claims nothing,
    nor do values with parts left out (`...`)."""
    found = []
    for token in tokenize.generate_tokens(io.StringIO(code).readline):
        if token.type == tokenize.COMMENT and token.line.lstrip().startswith("print("):
            text = token.string.lstrip("#").strip()
            if "..." not in text and (shown := printed(text)) is not None:
                found.append(shown)
    return found


def printed(text: str) -> str | None:
    """What print writes for `text`, literals separated by spaces (a str without its quotes, the
    rest as written); None when `text` is not literals, as prose is not."""
    for end in [*(k for k, ch in enumerate(text) if ch == " "), len(text)]:
        try:
            value = ast.literal_eval(text[:end])
        except (ValueError, TypeError, SyntaxError):
            continue
        first = value if isinstance(value, str) else text[:end].strip()
        if end == len(text):
            return first
        if (rest := printed(text[end + 1 :])) is not None:
            return f"{first} {rest}"
    return None


def unprinted(code: str, out: str) -> list[str]:
    """The claims of `code` that `out` does not show whole: 0.9168 is not shown by 0.91683 or 10.9168."""
    return [c for c in claims(code) if not re.search(rf"(?<![\w.-]){re.escape(c)}(?!\w|\.\d)", out)]


def test_a_wrong_figure_in_a_print_comment_is_caught():
    code = """acc = 0.91683
print(f"accuracy: {acc:.4f}")  # 0.9186
print("3")  # '3'
print(acc)  # about 0.9
"""
    assert claims(code) == ["0.9186", "3"]
    assert claims("print(len(x), x)  # 2 ['a', 'b c']\nprint(x)  # ['a', ...]\n") == ["2 ['a', 'b c']"]
    assert unprinted(code, "accuracy: 0.9168\n3\n0.91683\n") == ["0.9186"]
    assert unprinted(code.replace("0.9186", "0.9168"), "accuracy: 0.9168\n3\n0.91683\n") == []
    assert unprinted(code.replace("0.9186", "0.916"), "accuracy: 0.9168\n3\n0.91683\n") == ["0.916"]
    assert unprinted(code, "accuracy: 0.9186\n7\n") == ["3"]


def shell_lines(code: str) -> list[list[str]]:
    argvs = (shlex.split(line, comments=True) for line in code.splitlines())
    return [argv for argv in argvs if argv]


@pytest.mark.parametrize("code", SHELL)
def test_shell_block_commands_exist(code):
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    for argv in shell_lines(code):
        if argv[0] == "digitlearn":
            build_parser().parse_args(argv[1:])  # an unknown command or option exits with status 2
        elif argv[0] == "make" or (argv[0].startswith("DIGITLEARN_") and argv[1:2] == ["make"]):
            assert set(argv[argv.index("make") + 1 :]) <= targets, argv
        else:
            assert argv[0] in OTHER_PROGRAMS, f"unchecked command in a shell block: {argv}"


def test_a_bad_command_in_a_shell_block_is_caught():
    with pytest.raises(SystemExit):
        test_shell_block_commands_exist("digitlearn train --no-such-option\n")
    with pytest.raises(AssertionError):
        test_shell_block_commands_exist("make no-such-target\n")


def block(doc: str, n: int | str) -> str:
    return next(p for p in PYTHON if p.id == f"{doc}:{n}").values[0]


def test_readme_example_prints_the_figures_it_claims(sample, tmp_path, monkeypatch, isolated):
    assert len([line for line in block("README.md", 0).splitlines() if line.strip()]) <= 15
    (out, *_), folder = ran("README.md", tmp_path, monkeypatch)
    assert "3s recognised by pixel similarity: 0.9168" in out and "simple_net: 0.9809" in out
    assert (folder / "runs" / "simple_net" / "weights.safetensors").exists()


def test_tutorial_prints_the_chapters_figures(sample, tmp_path, monkeypatch, isolated):
    out = "".join(ran("tutorial.md", tmp_path, monkeypatch)[0])
    figures = ["3/10000.png", "[0.9168, 0.9854] 0.9511", "0.1586 0.3021", "torch.Size([1010])"]
    figures += ["tensor(6.)", "tensor([ 6.,  8., 20.])", "tensor(12.)", "torch.Size([12396, 784])"]
    for figure in figures:
        assert figure in out
