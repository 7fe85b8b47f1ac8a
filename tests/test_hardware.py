"""What the machine runs on: thread counts, the instruction set, bf16 units, and --threads."""

import os
import subprocess
import sys

import pytest
import torch

from digitlearn.cli import main
from digitlearn.errors import DigitlearnError
from digitlearn.hardware import cpu_name, default_threads, fast_bf16, isa, machine_info, set_threads

from .conftest import make_folder


@pytest.fixture(autouse=True)
def threads_restored(monkeypatch):
    """Each test starts without DIGITLEARN_THREADS and leaves torch's thread count as it found it."""
    monkeypatch.delenv("DIGITLEARN_THREADS", raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def amx_hardware(monkeypatch):
    """A CPU with AMX tiles, whatever this one has; oneDNN not capped."""
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)


def test_set_threads_takes_a_count():
    assert set_threads(1) == 1
    assert torch.get_num_threads() == 1


def test_set_threads_reads_the_environment(monkeypatch):
    monkeypatch.setenv("DIGITLEARN_THREADS", "1")
    assert set_threads() == 1
    assert torch.get_num_threads() == 1


def test_the_default_is_torchs_within_the_cpus_allowed():
    assert set_threads() == default_threads() >= 1
    if hasattr(os, "sched_getaffinity"):
        assert default_threads() <= len(os.sched_getaffinity(0))


@pytest.mark.parametrize("value", ["0", "x", "-1", "1.5"])
def test_a_bad_thread_count_in_the_environment_is_named(monkeypatch, value):
    monkeypatch.setenv("DIGITLEARN_THREADS", value)
    with pytest.raises(DigitlearnError, match=f"DIGITLEARN_THREADS='{value}'"):
        set_threads()


@pytest.mark.parametrize("value", [0, -1])
def test_a_bad_thread_count_argument_is_named(value):
    with pytest.raises(DigitlearnError, match=f"threads={value}"):
        set_threads(value)


def test_bf16_is_fast_only_where_amx_may_be_used(amx_hardware, monkeypatch):
    cpu = torch.device("cpu")
    assert fast_bf16(cpu) is True
    for allowed in ("AVX512_CORE_AMX", "avx10_1_512_amx_fp16", "ALL", "DEFAULT"):
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", allowed)
        assert fast_bf16(cpu) is True, allowed
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # oneDNN capped below AMX: bf16 is emulated
    assert fast_bf16(cpu) is False
    assert isa() != "AMX"
    assert fast_bf16(torch.device("meta")) is False


def test_isa_is_amx_where_onednn_may_use_it(amx_hardware):
    assert isa() == "AMX"


def test_isa_follows_the_caps_on_this_cpu():
    assert isa() in ("AMX", "AVX-512", "AVX2", torch.backends.cpu.get_cpu_capability())
    capped = subprocess.run(
        [sys.executable, "-c", "from digitlearn.hardware import isa; print(isa())"],
        env={**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert capped.returncode == 0, capped.stderr
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):  # an x86 CPU with AVX2 at least
        assert capped.stdout.strip() == "AVX2"


def test_machine_info():
    info = machine_info()
    assert set(info) == {"cpu", "isa", "threads", "torch", "device"}
    assert info["cpu"] == cpu_name() != ""
    assert info["threads"] == torch.get_num_threads()
    assert info["device"] == "cpu"


def test_the_threads_option_reaches_torch(tmp_path):
    data = make_folder(tmp_path / "ds")
    assert main(["baseline", "--data", str(data), "--threads", "1"]) == 0
    assert torch.get_num_threads() == 1


def test_a_bad_threads_option_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["baseline", "--threads", "0"])
    assert e.value.code == 2
    assert "--threads" in capsys.readouterr().err


def test_a_bad_environment_variable_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DIGITLEARN_THREADS", "many")
    assert main(["baseline", "--data", str(make_folder(tmp_path / "ds"))]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("digitlearn: error: DIGITLEARN_THREADS='many': ")
