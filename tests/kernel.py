"""A real Jupyter kernel for tests: code runs as in a notebook cell, and the test reads what the
notebook would receive (streams, displays and their updates, the cell's value).

One kernel serves the whole test session (it takes a second or two to start, and importing torch
in it as long again), so tests share its state: one that changes it (imports pyplot, say) must
leave it usable by the others. Use the `kernel` fixture:

    def test_something(kernel):
        outputs = kernel.run("1 + 1")
        assert outputs[-1].data["text/plain"] == "2"
"""

import atexit
import functools
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty

import pytest
from jupyter_client.manager import KernelManager

ROOT = Path(__file__).parent.parent  # the kernel's working folder: `from tests.conftest import ...` works
OUTPUT_TYPES = ("stream", "display_data", "update_display_data", "execute_result")


class KernelError(AssertionError):
    """Code sent to the kernel raised: the message is the kernel's traceback."""


@dataclass
class Output:
    """One message a notebook would turn into (or apply to) a cell output."""

    type: str  # stream, display_data, update_display_data or execute_result
    name: str = ""  # stdout or stderr, for a stream
    text: str = ""  # a stream's text
    data: dict = field(default_factory=dict)  # mime type -> content, for the others
    display_id: str | None = None  # set for displays that can be updated in place


class Kernel:
    """An IPython kernel as Jupyter runs it (its inline matplotlib backend, no widgets)."""

    def __init__(self) -> None:
        env = dict(os.environ)
        # a kernel as a notebook gets it: matplotlib's backend and the progress display undecided
        for name in ("MPLBACKEND", "DIGITLEARN_PROGRESS"):
            env.pop(name, None)
        # Local sockets in a folder of our own: over TCP the kernel warns (on stderr) that
        # anyone on the machine could connect to it.
        self.sockets = tempfile.mkdtemp(prefix="digitlearn-kernel-")
        self.manager = KernelManager(kernel_name="python3", transport="ipc", ip=f"{self.sockets}/socket")
        self.manager.start_kernel(cwd=str(ROOT), env=env)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def run(self, code: str, timeout: float = 60) -> list[Output]:
        """Run `code` as one cell; its outputs in the order they came. Raises KernelError if it fails."""
        msg_id = self.client.execute(code)
        outputs = []
        while True:
            try:
                msg = self.client.get_iopub_msg(timeout=timeout)
            except Empty:
                raise TimeoutError(f"no answer from the kernel in {timeout}s to:\n{code}") from None
            if msg["parent_header"].get("msg_id") != msg_id:
                continue  # what an earlier cell's threads still print
            kind, content = msg["msg_type"], msg["content"]
            if kind == "error":
                raise KernelError(re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(content["traceback"])))
            if kind == "status" and content["execution_state"] == "idle":
                return outputs
            if kind in OUTPUT_TYPES:
                outputs.append(_output(kind, content))

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)
        shutil.rmtree(self.sockets, ignore_errors=True)


def _output(kind: str, content: dict) -> Output:
    display_id = content.get("transient", {}).get("display_id")
    if kind == "stream":
        return Output(kind, name=content["name"], text=content["text"])
    return Output(kind, data=content["data"], display_id=display_id)


def streamed(outputs: list[Output], name: str) -> str:
    """Everything the cell wrote to `name` (stdout or stderr)."""
    return "".join(o.text for o in outputs if o.type == "stream" and o.name == name)


def all_text(outputs: list[Output]) -> str:
    """Every piece of text the cell sent: streams and each display's text/plain and text/html."""
    parts = [o.text for o in outputs]
    parts += [o.data.get(kind, "") for o in outputs for kind in ("text/plain", "text/html")]
    return "\n".join(parts)


@functools.cache
def shared_kernel() -> Kernel:
    """The session's kernel, started on first use and shut down when the tests end."""
    kernel = Kernel()
    atexit.register(kernel.close)
    return kernel


@pytest.fixture(scope="session")
def kernel() -> Kernel:
    """A running Jupyter kernel, shared by every test that asks (see the module docstring)."""
    return shared_kernel()
