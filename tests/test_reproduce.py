"""`digitlearn reproduce`: the table's rules, the exit status, the report files, and the real runs."""

import itertools
import json
import math
import re

import pytest

from digitlearn import reproduce as rp
from digitlearn.cli import main
from digitlearn.device import set_seed
from digitlearn.models import linear1

from .test_report import external_references, fake_step


def test_exact_passes_only_on_the_same_printed_digits():
    assert rp.exact("s", "distance", "0.1114", f"{0.11138:.4f}").ok
    assert not rp.exact("s", "distance", "0.1114", f"{0.11134:.4f}").ok
    assert not rp.exact("s", "grad", "tensor(6.)", "tensor(6.0001)").ok


def test_at_least_states_its_rule_and_passes_from_the_floor_up():
    c = rp.at_least("s", "simple_net", "0.982", 0.977, 0.982 - rp.TOLERANCE)
    assert c.ok and c.chapter == "0.982; >= 0.9770 passes" and c.ours == "0.9770" and c.value == 0.977
    assert not rp.at_least("s", "simple_net", "0.982", 0.9769, 0.977).ok
    c = rp.at_least("s", "mlp", "none", 0.98, 0.99, "pass > linear (0.9900)")
    assert not c.ok and c.chapter == "none; pass > linear (0.9900)"


def checks(*oks: bool) -> list[rp.Check]:
    return [
        rp.Check("sec A" if k < 2 else "sec B", f"step {k}", "1", "1" if ok else "2", ok)
        for k, ok in enumerate(oks)
    ]


def test_table_has_the_four_columns_sections_and_a_verdict():
    table = rp.format_table(checks(True, True, True))
    lines = table.splitlines()
    assert re.fullmatch(r"step\s+chapter's figure\s+ours\s+ok", lines[0])
    assert lines[2] == "[sec A]" and "[sec B]" in lines
    assert lines[-1] == "3 of 3 checks passed"
    assert rp.status(checks(True, True, True)) == 0


def test_one_failed_check_fails_the_table_and_the_exit_status():
    table = rp.format_table(checks(True, False, True))
    assert re.search(r"step 1\s+1\s+2\s+FAIL$", table, re.M)
    assert table.splitlines()[-1] == "2 of 3 checks passed: FAILED"
    assert rp.status(checks(True, False, True)) == 1


def test_the_roller_coaster_loss_falls_at_every_step_and_rises_when_lr_is_too_big():
    fit = rp.quadratic_sgd(seed=42)
    losses = [h["loss"] for h in fit["history"]]
    assert len(losses) == 11 and all(b < a for a, b in itertools.pairwise(losses))
    assert fit["time"].tolist() == list(range(20)) and fit["speed"].shape == (20,)
    too_big = [h["loss"] for h in rp.quadratic_sgd(seed=42, lr=1e-3)["history"]]
    assert too_big[-1] > too_big[0]  # the step overshoots: the chapter's warning about large rates


def test_a_failed_step_exits_1_and_still_writes_the_report(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(rp, "STEPS", fake_step(False))
    assert main(["reproduce", "--quick", "--out", str(tmp_path / "rep")]) == 1
    out = capsys.readouterr().out
    assert "[ 1/1] fake step" in out and "1 FAILED" in out and "0 of 1 checks passed: FAILED" in out
    results = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert results["passed"] is False and results["checks"][0]["ok"] is False
    assert "FAIL" in (tmp_path / "rep" / "report.html").read_text()
    assert "**FAIL**" in (tmp_path / "rep" / "report.md").read_text()


def test_passing_steps_exit_0(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(rp, "STEPS", fake_step(True))
    assert main(["reproduce", "--quick", "--out", str(tmp_path / "rep")]) == 0
    assert "1 of 1 checks passed" in capsys.readouterr().out


def test_a_terminal_gets_a_bar_and_the_same_step_lines(monkeypatch, capsys):
    monkeypatch.setattr(rp, "interactive", lambda: True)
    rp.reproduce(steps=fake_step(False), log=lambda line: pytest.fail("log is for pipes"))
    out, err = capsys.readouterr()
    assert out.startswith("[ 1/1] fake step: ") and out.endswith(", 1 FAILED\n")
    assert "fake step:   0%" in err  # the bar, on stderr, titled by the step it is running


def test_quick_skips_the_full_mnist_steps(monkeypatch):
    ran = []
    steps = [
        rp.Step("a", lambda ctx: ran.append("a")),
        rp.Step("b", lambda ctx: ran.append("b"), quick=False),
    ]
    rep = rp.reproduce(quick=True, steps=steps, log=lambda line: None)
    assert ran == ["a"] and list(rep.step_seconds) == ["a"] and rep.quick
    rp.reproduce(quick=False, steps=steps, log=lambda line: None)
    assert ran == ["a", "a", "b"]


# ---------------------------------------------------------------- the real runs, on the mirror's data


def test_the_chapters_linear_model_by_hand(sample):
    """linear1, mnist_loss, batch size 256, lr 1.0, 20 epochs: >= 0.97 (the chapter: 0.9677-0.9741)."""
    set_seed(1)
    model = linear1()

    def step() -> None:
        for p in model.parameters():
            p.data -= p.grad * 1.0
            p.grad.zero_()

    run = rp.train_by_hand(model, sample, 20, step)
    accs = [row["batch_accuracy"] for row in run["history"]]
    assert accs[-1] >= 0.97
    assert accs[0] < accs[-1]
    assert len(run["losses"]) == 20 * math.ceil(12396 / 256)


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().out


@pytest.fixture(scope="module")
def quick_report(sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("quick") / "report"
    return main(["reproduce", "--quick", "--out", str(out)]), out


def test_reproduce_quick_passes_every_check_of_the_chapter(quick_report):
    code, out = quick_report
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["passed"] and results["quick"] and len(results["checks"]) == 16
    by_step = {c["step"]: c for c in results["checks"]}
    assert by_step["accuracy on valid 3s / 7s / average"]["ours"] == "0.9168 / 0.9854 / 0.9511"
    assert by_step["gradient of sum(x**2) at [3., 4., 10.]"]["ours"] == "tensor([ 6.,  8., 20.])"
    assert by_step["example 3: pixels [4:10, 4:10]"]["value"] == rp.EXAMPLE_PIXELS
    assert not any(c["section"].startswith("further research") for c in results["checks"])


def test_quick_report_is_labelled_and_has_the_chapters_pictures(quick_report):
    _, out = quick_report
    html = (out / "report.html").read_text()
    assert "Quick run (<code>--quick</code>)" in html and external_references(html) == []
    figures = json.loads((out / "results.json").read_text())["figures"]
    for name in ("means", "activations", "quadratic_fit", "quadratic_loss", "lr_find", "confusion_matrix",
                 "top_losses", "curves_simple_net", "curves_linear1", "curves_resnet_sample"):  # fmt: skip
        assert name in figures
        assert f"figures/{name}.png" in (out / "report.md").read_text()
    assert html.count('src="data:image/png;base64,') == len(figures)


def test_full_reproduce_passes_on_all_ten_digits(mnist, tmp_path, capsys):
    code, out = run_cli(["reproduce", "--out", str(tmp_path / "report")], capsys)
    assert code == 0, out
    assert "21 of 21 checks passed" in out and "[further research: full MNIST]" in out
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    full = results["results"]["full_mnist"]
    assert full["baseline"] < full["linear"] < full["mlp"] < full["lenet"] and full["lenet"] >= 0.99
    assert results["results"]["interpretation"]["what"].startswith("the CNN on MNIST")
    assert sum(map(sum, results["results"]["interpretation"]["confusion_matrix"])) == 10_000
    assert "Quick run" not in (tmp_path / "report" / "report.html").read_text()
