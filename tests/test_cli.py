"""The `digitlearn` command as a user runs it: figures printed, errors as one line, no traceback.

Most tests call `main` in this process, as the installed `digitlearn` script does: an exception
that escaped it would fail the test, so "no traceback" holds there too. A child process (torch
imported afresh, seconds each) is kept where the process is what is tested: `python -m digitlearn`
itself, its exit status and stderr, and Ctrl-C.
"""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from digitlearn import Callback, DigitlearnError, Learner, load_model
from digitlearn.cli import main

from .conftest import make_folder


def run(*args: str) -> subprocess.CompletedProcess:
    """`python -m digitlearn ARGS` in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "digitlearn", *args], capture_output=True, text=True, timeout=300
    )


def fails(args: list[str], capsys) -> str:
    """Run `digitlearn ARGS` here; it must exit with 1 and say why in one line on stderr, which
    is returned (stdout is left for the caller to read)."""
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("digitlearn: error: ") and err.count("\n") == 1 and err.endswith("\n"), err
    return err


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


def test_show_count_past_the_end(tmp_path, capsys):
    root = make_folder(tmp_path / "ds")
    args = ["show", "--data", str(root), "--index", "4", "--count", "3", "--out", str(tmp_path / "g.png")]
    assert "--index 4 --count 3 is out of range" in fails(args, capsys)
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
def test_user_mistakes_are_one_line_without_traceback(tmp_path, args, message, capsys):
    root = make_folder(tmp_path / "ds")
    args = [a.format(root=root, tmp=tmp_path) for a in args]
    assert message in fails(args, capsys)
    assert not list(tmp_path.glob("x.*"))


def test_the_command_runs_as_a_program():
    """`python -m digitlearn` in its own process: the version, and a user's mistake as one line on
    stderr and exit status 1, without a traceback."""
    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("digitlearn ")
    mistake = run("baseline", "--data", "nope_set")
    assert mistake.returncode == 1 and mistake.stdout == ""
    assert mistake.stderr.startswith("digitlearn: error: 'nope_set' is neither a known dataset")
    assert mistake.stderr.count("\n") == 1 and "Traceback" not in mistake.stderr


def test_corrupt_png_is_named(tmp_path, capsys):
    root = make_folder(tmp_path / "ds")
    (root / "train" / "3" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert f"cannot read image {root}/train/3/1.png" in fails(["baseline", "--data", str(root)], capsys)


@pytest.mark.parametrize("args", [["show", "--means"], ["baseline", "--size", "0x3"]])
def test_bad_arguments_exit_2(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2 and "error: " in capsys.readouterr().err


def test_datasets_lists_the_registry(capsys, fresh_home):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert str(fresh_home) in out and all(n in out for n in ("mnist_sample", "mnist_png", "mnist "))


# ---------------------------------------------------------------- train and lr-find


def test_train_writes_a_run_folder(tmp_path, capsys):
    root = make_folder(tmp_path / "ds", n=20)
    out = tmp_path / "run"
    args = ["train", "--data", str(root), "--epochs", "3", "--lr", "0.5", "--plot", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("training simple_net (1,981 parameters) on ")
    table = printed[printed.index(next(line for line in printed if line.lstrip().startswith("epoch"))) :]
    assert [line.split()[0] for line in table[:4]] == ["epoch", "0", "1", "2"]
    assert re.match(r"after 3 epochs \(\d+\.\ds\): train_loss ", table[4]) and ", batch_accuracy " in table[4]
    assert (
        table[5] == f"wrote {out}: config.json, history.csv, history.json, history.png, weights.safetensors"
    )
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == {"arch": "simple_net", "n_in": 64, "n_hidden": 30, "n_out": 1}
    assert config["classes"] == ["3", "7"] and config["loss"] == {"name": "mnist_loss"}
    assert config["train"]["epochs"] == 3 and config["epochs_done"] == 3 and not config["interrupted"]
    history = (out / "history.csv").read_text().splitlines()
    assert history[0] == "epoch,train_loss,valid_loss,batch_accuracy,time" and len(history) == 4
    assert config["results"]["batch_accuracy"] == float(history[-1].split(",")[3])
    assert Image.open(out / "history.png").format == "PNG"
    model, _ = load_model(out)
    assert model(torch.zeros(1, 64)).shape == (1, 1)


def test_valid_split_tunes_on_training_images_and_resume_keeps_it(tmp_path, capsys):
    root = make_folder(tmp_path / "ds", n=20)  # 40 train images: 10 held out at 0.25
    out = tmp_path / "run"
    args = ["train", "--data", str(root), "--epochs", "2", "--valid-split", "0.25", "--quiet"]
    assert main([*args, "--out", str(out)]) == 0
    assert "30 train, 10 valid images (held out of train)" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["valid_split"] == 0.25
    assert not (out / "history.png").exists()  # curves are drawn only with --plot
    assert main(["train", "--resume", str(out), "--valid-split", "0.5"]) == 1
    assert "give no --valid-split" in capsys.readouterr().err


def test_train_ten_classes_mlp_adam_one_cycle(tmp_path, capsys):
    root = make_folder(tmp_path / "ds", classes=("a", "b", "c"), n=10)
    out = tmp_path / "run"
    args = ["train", "--data", str(root), "--model", "mlp", "--hidden", "16,8", "--opt", "adam"]
    assert main([*args, "--one-cycle", "--epochs", "4", "--lr", "0.01", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "epoch  train_loss" not in printed and "4 epochs, one-cycle to lr 0.01, adam" in printed
    assert "after 4 epochs (" in printed and ", accuracy " in printed
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["hidden"] == [16, 8] and config["model"]["n_out"] == 3
    assert config["loss"]["name"] == "cross_entropy" and config["metrics"] == ["accuracy"]


def test_default_run_folders_are_numbered_not_replaced(tmp_path, monkeypatch, capsys):
    root = make_folder(tmp_path / "ds")
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        assert main(["train", "--data", str(root), "--model", "linear", "--epochs", "1", "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["ds-linear", "ds-linear-2"]


def test_existing_out_needs_force(tmp_path, capsys):
    root = make_folder(tmp_path / "ds")
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = ["train", "--data", str(root), "--epochs", "1", "--out", str(out)]
    assert main(args) == 1
    printed, err = capsys.readouterr()
    assert err.startswith("digitlearn: error: ") and err.count("\n") == 1
    assert "already exists: choose another --out, or add --force" in err
    assert printed == "" and [p.name for p in out.iterdir()] == ["keep.txt"]  # no training, nothing lost
    # --force replaces a run, never a folder digitlearn did not write
    assert "is not a digitlearn run (it holds other files)" in fails([*args, "--force"], capsys)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    run = tmp_path / "old-run"
    assert main(["train", "--data", str(root), "--epochs", "1", "--out", str(run), "--quiet"]) == 0
    before = (run / "weights.safetensors").read_bytes()
    assert main([*args[:-1], str(run), "--seed", "7", "--force", "--quiet"]) == 0
    assert (run / "weights.safetensors").read_bytes() != before


def test_force_refuses_what_is_not_a_run(tmp_path, capsys):
    """A folder with a config.json that is not a digitlearn model's, or a run with a file of the
    user's added, or a plain file: --force leaves each as it was."""
    root = make_folder(tmp_path / "ds")
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text('{"name": "my other project"}')
    run = tmp_path / "run"
    assert main(["train", "--data", str(root), "--epochs", "1", "--out", str(run), "--quiet"]) == 0
    (run / "notes.md").write_text("my notes")
    file = tmp_path / "file.txt"
    file.write_text("mine")
    for out in (other, run, file):
        before = sorted(p.name for p in out.iterdir()) if out.is_dir() else out.read_text()
        fails(["train", "--data", str(root), "--epochs", "1", "--out", str(out), "--force"], capsys)
        assert (sorted(p.name for p in out.iterdir()) if out.is_dir() else out.read_text()) == before


def test_divergence_is_one_line_and_writes_nothing(tmp_path, capsys):
    root = make_folder(tmp_path / "ds", n=10)
    err = fails(
        ["train", "--data", str(root), "--loss", "bce", "--lr", "1e30", "--out", str(tmp_path / "run")],
        capsys,
    )
    assert err.startswith("digitlearn: error: the validation loss became nan at epoch 0")
    assert "(learning rate 1e+30): try a smaller learning rate" in err
    assert not (tmp_path / "run").exists()


def test_lr_find_prints_a_suggestion_and_writes_the_plot(tmp_path, capsys):
    root = make_folder(tmp_path / "ds", n=40)
    plot = tmp_path / "lr.png"
    assert main(["lr-find", "--data", str(root), "--bs", "8", "--num-it", "40", "--out", str(plot)]) == 0
    out = capsys.readouterr().out
    suggestion = float(out.split("suggested learning rate: ")[1].split()[0])
    assert 1e-7 < suggestion < 10 and f"wrote {plot}" in out
    assert Image.open(plot).format == "PNG"


@pytest.mark.parametrize(
    "args",
    [
        ["--lr", "0"],
        ["--lr", "nan"],
        ["--epochs", "-1"],
        ["--hidden", "0"],
        ["--bs", "x"],
        ["--model", "cnn9"],
    ],
)
def test_bad_training_arguments_exit_2(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", *args])
    assert exit_info.value.code == 2 and "error: argument" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--label-smoothing", "2"], "'2' is not a number in [0, 1)"),
        (["train", "--label-smoothing", "1"], "'1' is not a number in [0, 1)"),
        (["train", "--mom", "-0.1"], "'-0.1' is not a number in [0, 1)"),
        (["train", "--seed", str(2**64)], f"'{2**64}' is not a whole number from 0 to"),
        (["train", "--seed", "-1"], "'-1' is not a whole number from 0 to"),
        (["train", "--channels", "100000,100000"], "'100000,100000': entry [0] must be a whole"),
        (["train", "--channels", "8.5,16"], "'8.5,16' is not a list of 1 to 16 whole numbers"),
        (["train", "--hidden", ",".join(["8"] * 17)], f"'{','.join(['8'] * 17)}' is not a list"),
        (["train", "--size", "20000"], "'20000' is not a size like 28 or 28x28, up to 1024"),
        (["train", "--epochs", "1e9"], "'1e9' is not a whole number"),
        (["train", "--lr", "inf"], "'inf' is not a number in (0, inf)"),
        (["train", "--wd", "-1"], "'-1' is not a number in [0, 10]"),
        (["train", "--bs", "1000000"], "'1000000' is not a whole number from 1 to 65,536"),
        (["train", "--threads", "0"], "'0' is not a whole number from 1"),
        (["train", "--init-std", "-1"], "'-1' is not a number from 0 to 100"),
        (["serve", "RUN", "--port", "70000"], "'70000' is not a whole number from 0 to 65,535"),
        (["serve", "RUN", "--port", "-1"], "'-1' is not a whole number from 0 to 65,535"),
        (["serve", "RUN", "--max-bytes", "0"], "'0' is not a whole number from 1"),
        (["evaluate", "RUN", "--size", "0x28"], "'0x28' is not a size"),
        (["predict", "RUN", "x.png", "--top", "0"], "'0' is not a whole number from 1"),
        (["lr-find", "--num-it", "-5"], "'-5' is not a whole number from 1"),
    ],
)
def test_numbers_out_of_range_are_refused_before_any_work(args, message, capsys):
    """Each numeric option has a range, checked by the parser: one line naming the option and the
    range, exit status 2, and nothing read, trained or served."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1, err
    assert f"error: argument {next(a for a in args if a.startswith('--'))}: {message}" in err, err


def test_label_smoothing_is_checked_in_python_too():
    from digitlearn.training.recipes import default_recipe

    with pytest.raises(DigitlearnError, match="label smoothing is from 0 to under 1, not 2"):
        default_recipe("mlp").updated(label_smoothing=2).loss_func(10)


def test_binary_loss_on_three_classes_is_refused(tmp_path, capsys):
    root = make_folder(tmp_path / "ds", classes=("a", "b", "c"))
    assert fails(
        ["train", "--data", str(root), "--loss", "mnist", "--out", str(tmp_path / "run")], capsys
    ) == (
        "digitlearn: error: mnist_loss is for two classes, but the data has 3: "
        "use cross_entropy (--loss ce)\n"
    )


def test_same_seed_same_history_and_weights(tmp_path, capsys):
    """Same seed, same data, same command: bit-identical history (apart from time) and weights.

    Shuffled batches of 8 from a small synthetic dataset: the seed has the shuffling, the initial
    weights and every batch's order to fix, as on MNIST."""
    root = make_folder(tmp_path / "ds", n=20)

    def train(name: str, seed: int) -> Path:
        out = tmp_path / name
        args = ["--epochs", "2", "--bs", "8", "--seed", str(seed), "--out", str(out), "--quiet"]
        assert main(["train", "--data", str(root), *args]) == 0
        return out

    outs = [train("a", 3), train("b", 3)]
    a, b = ([line.rsplit(",", 1)[0] for line in (o / "history.csv").read_text().splitlines()] for o in outs)
    assert a == b and len(a) == 3
    ja, jb = (json.loads((o / "history.json").read_text()) for o in outs)
    assert ja["batch_losses"] == jb["batch_losses"] and len(ja["batch_losses"]) == 2 * 5  # 40 images, bs 8
    assert (outs[0] / "weights.safetensors").read_bytes() == (outs[1] / "weights.safetensors").read_bytes()
    other = train("c", 4)  # the seed is what makes them equal: another one gives other weights
    assert (other / "weights.safetensors").read_bytes() != (outs[0] / "weights.safetensors").read_bytes()


def test_ctrl_c_saves_the_run_so_far(sample, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "digitlearn",
            "train",
            "--data",
            "mnist_sample",
            "--epochs",
            "500",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in proc.stdout:
        if line.split()[:1] == ["1"]:  # the second epoch's row: training is under way
            break
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted at epoch" in stderr
    config = json.loads((out / "config.json").read_text())
    assert config["interrupted"] and 2 <= config["epochs_done"] < 500
    assert len((out / "history.csv").read_text().splitlines()) == config["epochs_done"] + 1
    assert f"wrote {out}" in stdout


def test_recipes_lists_named_and_default_recipes(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("named recipes (digitlearn train --recipe NAME):\n  fast ")
    assert "\n  best " in out and "\n  simple_net  the chapter's simple_net" in out
    assert "model=lenet epochs=2 lr=0.015 opt=adam bs=256 one_cycle=True mom=0.7 sqr_mom=0.9" in out
    linear = out.split("\n  linear")[1].split("\n  simple_net")[0]
    assert "init_std=0.01" in linear  # settings a model does not use are not listed:
    assert "hidden=" not in linear and "channels=" not in linear and "sqr_mom" not in linear


def test_train_a_cnn_on_five_classes(tmp_path, capsys):
    root = make_folder(tmp_path / "ds", classes=tuple("01234"), n=4, size=16)
    out = tmp_path / "run"
    args = ["train", "--data", str(root), "--recipe", "fast", "--channels", "4,8", "--epochs", "2"]
    assert main([*args, "--bs", "8", "--augment", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("training lenet (recipe fast) (")
    assert (
        "2 epochs, one-cycle to lr 0.015, adam, batch size 8, loss cross_entropy (label smoothing 0.1), "
        "augmented, from 0.2 of the first epoch only on examples at p < 0.85, 128 at a time, validated after "
        "the last epoch, cpu fp32" in printed
    )
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == {
        "arch": "lenet", "n_out": 5, "channels": [4, 8], "hidden": [128], "in_size": [16, 16], "batch_norm": 0
    }  # fmt: skip
    assert config["train"]["recipe"] == "fast" and config["train"]["augment"] is True
    assert config["train"]["skip_learned"] == 0.85 and config["train"]["validate"] == "last"
    assert config["train"]["device"] == "cpu" and config["train"]["mixed_precision"] is False
    assert config["input"]["flat"] is False and config["input"]["std"] > 0
    model, _ = load_model(out)
    assert model(torch.zeros(1, 1, 16, 16)).shape == (1, 5)


def test_recipe_flags_reach_the_recipe(tmp_path):
    root = make_folder(tmp_path / "ds", classes=("a", "b"), n=4, size=16)
    out = tmp_path / "run"
    args = ["--sqr-mom", "0.95", "--skip-learned", "0", "--skip-bs", "64", "--validate", "each"]
    args += ["--epochs", "1", "--quiet"]
    assert main(["train", "--data", str(root), "--recipe", "fast", *args, "--out", str(out)]) == 0
    train = json.loads((out / "config.json").read_text())["train"]
    settings = (train["sqr_mom"], train["skip_learned"], train["skip_bs"], train["validate"])
    assert settings == (0.95, 0.0, 64, "each")
    for bad in (["--skip-learned", "1.5"], ["--skip-bs", "-1"], ["--validate", "never"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["train", "--data", str(root), *bad])
        assert exit_info.value.code == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--model", "mlp", "--augment"],
            "augmentation works on images: use it with lenet, cnn, resnet, not mlp",
        ),
        (
            ["--label-smoothing", "0.1"],
            "label smoothing goes with cross_entropy (--loss ce), not mnist_loss; "
            "turn it off with --label-smoothing 0",
        ),
        (["--device", "tpu9"], "unknown device 'tpu9' (use auto, cpu or cuda)"),
    ],
)
def test_bad_recipe_settings_are_one_line(tmp_path, args, message, capsys):
    root = make_folder(tmp_path / "ds")
    err = fails(["train", "--data", str(root), *args, "--out", str(tmp_path / "run")], capsys)
    assert err == f"digitlearn: error: {message}\n"
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu_is_a_clear_error(tmp_path, capsys):
    err = fails(["train", "--data", str(make_folder(tmp_path / "ds")), "--device", "cuda"], capsys)
    assert "device 'cuda' asked for, but PyTorch" in err and "sees no CUDA GPU here" in err


def test_compare_prints_one_table(tmp_path, capsys):
    root = make_folder(tmp_path / "ds", classes=("a", "b", "c"), n=6)
    assert main(["compare", "--data", str(root), "--models", "baseline,linear,cnn"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert (
        lines[0] == f"comparing baseline, linear, cnn on {root}: 18 train images, accuracy on 18 valid images"
    )
    table = lines[lines.index("") + 1 :]
    assert table[0].split() == ["model", "recipe", "accuracy", "train", "s", "parameters"]
    assert [row.split()[0] for row in table[1:]] == ["baseline", "linear", "cnn"]
    assert table[1].split()[-1] == "192" and table[2].split()[-1] == "195"  # 3 means of 8x8; 64*3+3
    assert main(["compare", "--data", str(root), "--models", "baseline", "--json"]) == 0
    data = json.loads(capsys.readouterr().out.split("\n", 2)[2])
    assert data["results"][0]["model"] == "baseline" and 0 <= data["results"][0]["accuracy"] <= 1


def test_ctrl_c_in_the_first_epoch_of_compare_is_one_line(tmp_path, monkeypatch, capsys):
    """Ctrl-C before any epoch has ended leaves no history row: compare says so, it does not crash."""
    root = make_folder(tmp_path / "ds", classes=("a", "b", "c"), n=6)
    fit = Learner.fit

    class CtrlC(Callback):  # the user presses Ctrl-C during the first batch
        def after_pred(self, learn):
            if learn.training and learn.iter == 0:
                os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(Learner, "fit", lambda self, n, lr=None, cbs=(): fit(self, n, lr, [*cbs, CtrlC()]))
    assert main(["compare", "--data", str(root), "--models", "baseline,linear"]) == 130
    out, err = capsys.readouterr()
    assert "interrupted at epoch 0, batch 0" in err and err.endswith("digitlearn: interrupted\n")
    assert "  baseline   accuracy" in out and "linear" not in out.split("\n", 1)[1]


def test_compare_rejects_unknown_models(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--models", "linear,svm"])
    assert (
        exit_info.value.code == 2 and "'linear,svm': choose from baseline, linear" in capsys.readouterr().err
    )


def test_compare_on_mnist(mnist, capsys):
    """The accuracy table's targets: baseline about 0.82, linear >= 0.92 (the MLP's >= 0.98 is
    checked on the full `reproduce` run, which trains it the same way: tests/test_reproduce.py)."""
    assert main(["compare", "--data", "mnist", "--models", "baseline,linear", "--json"]) == 0
    out = capsys.readouterr().out
    rows = {r["model"]: r for r in json.loads(out[out.index("\n{") :])["results"]}
    assert rows["baseline"]["accuracy"] == 0.8203  # nearest mean by RMSE: 8,203 of 10,000
    assert rows["linear"]["accuracy"] >= 0.92 and rows["linear"]["parameters"] == 7850


def test_fast_recipe_reaches_99_percent_on_mnist(fast_run):
    out = fast_run  # `digitlearn train --data mnist --recipe fast --out ...`
    config = json.loads((out / "config.json").read_text())
    assert config["results"]["accuracy"] >= 0.990 and config["epochs_done"] == 2
    assert config["model"]["arch"] == "lenet" and config["input"]["mean"] == 0.1307


def test_evaluate_prints_accuracy_per_class_and_confusion_matrix(fast_run, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", str(fast_run), "--out", str(out)]) == 0  # data: the run's own, mnist
    printed = capsys.readouterr().out
    acc = float(re.search(r"^accuracy (\S+) \(([\d,]+)/10,000\)$", printed, re.M).group(1))
    assert acc >= 0.990
    rows = {
        line.split()[0]: line.split()
        for line in printed.splitlines()
        if re.match(r"\s+\d\s+0\.\d{4}\s", line)
    }
    assert sorted(rows) == list("0123456789") and rows["1"][-1] == "1,135"
    assert "confusion matrix (rows: actual, columns: predicted)" in printed and "most confused" in printed
    assert {p.name for p in out.iterdir()} == {"confusion_matrix.png", "top_losses.png", "evaluation.json"}
    report = json.loads((out / "evaluation.json").read_text())
    cm = torch.tensor(report["confusion_matrix"])
    assert int(cm.sum()) == 10_000 and report["accuracy"] == pytest.approx(float(cm.diag().sum()) / 10_000)
    assert report["accuracy"] == pytest.approx(acc, abs=5e-5)
    assert [r["support"] for r in report["per_class"]] == cm.sum(1).tolist()
    assert Image.open(out / "top_losses.png").size[0] > 500


def test_evaluate_on_data_with_other_classes_is_one_line(fast_run, sample, capsys):
    classes = ", ".join("0123456789")
    assert fails(["evaluate", str(fast_run), "--data", "mnist_sample"], capsys) == (
        f"digitlearn: error: {fast_run} was trained on classes {classes}, but mnist_sample has 3, 7\n"
    )


def test_predict_files_of_every_kind_and_keep_going(fast_run, tmp_path, capsys):
    from .conftest import draw_digit

    files = {
        "seven.jpg": draw_digit("7", mode="RGB", ink=(20, 30, 120), paper=(250, 245, 220)),
        "two.webp": draw_digit("2", mode="RGB", ink=(240, 240, 240), paper=(10, 40, 10)),
        "three.gif": draw_digit("3").convert("P"),
        "blank.png": Image.new("L", (80, 80), 255),
    }
    for name, img in files.items():
        img.save(tmp_path / name)
    (tmp_path / "notes.png").write_text("not an image")
    paths = [str(tmp_path / n) for n in ("seven.jpg", "notes.png", "two.webp", "blank.png", "three.gif")]
    assert main(["predict", str(fast_run), *paths, "--show", str(tmp_path / "show.png")]) == 1  # 2 failed
    out, err = capsys.readouterr()
    labels = {line.split(":")[0]: line.split(": ")[1].split()[0] for line in out.splitlines() if ": " in line}
    assert labels == {paths[0]: "7", paths[2]: "2", paths[4]: "3"}
    errors = err.strip().splitlines()
    assert (
        errors[0]
        == f"digitlearn: error: {paths[1]}: not an image in a known format (PNG, JPEG, BMP, GIF, WEBP, TIFF)"
    )
    assert errors[1].startswith(f"digitlearn: error: no digit found in {paths[3]}")
    assert len(errors) == 2 and Image.open(tmp_path / "show.png").size[0] > 800

    main(["predict", str(fast_run), paths[0], paths[3], "--json", "--top", "2"])
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["file"] == paths[0] and rows[0]["label"] == "7" and len(rows[0]["top"]) == 2
    assert sum(rows[0]["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert rows[1]["file"] == paths[3] and "no digit found" in rows[1]["error"]


def test_predict_with_a_missing_run_is_one_line(tmp_path, capsys):
    assert fails(["predict", str(tmp_path / "nope"), "x.png"], capsys) == (
        f"digitlearn: error: {tmp_path / 'nope'} is not a saved model: no such folder\n"
    )
