"""Worker processes for the server's image work.

Preparing an image is Python around many small NumPy and Pillow steps, and holds the GIL for most
of its time: two threads prepared drawings no faster than one, so in the server's own process they
would take turns with each other and with the HTTP work. Processes prepare in parallel, and an
image's memory (up to a few hundred MB for the largest) is taken and given back in a worker, not
in the server.

Each worker is one process at the end of a pipe, and the event loop waits for its answer on the
pipe itself: no thread in between (concurrent.futures' process pool has two, and handing the GIL
to them and back took a third of the server's time per request). Workers are started from a fork
server, a fresh interpreter that imports `preload` once and forks each worker from itself: a fork
of the server would copy the locks of its threads (the event loop's, OpenMP's) as they happen to
be, and a worker could wait on one for ever.
"""

import asyncio
import collections
import multiprocessing
import signal
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any


class WorkerError(RuntimeError):
    """A call failed in a worker: an exception there (its traceback is the message), or the worker died."""


def _work(conn: Connection) -> None:
    """A worker's life: calls in, results out, until the server closes its end of the pipe."""
    import torch

    torch.set_num_threads(1)  # its pool would only compete with the other workers
    # Ctrl+C reaches the whole process group: the server answers it, and closes the pipes
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            fn, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            answer = (True, fn(*args))
        except Exception:
            answer = (False, traceback.format_exc())
        conn.send(answer)


class _Worker:
    def __init__(self, context: multiprocessing.context.BaseContext) -> None:
        self.conn, theirs = context.Pipe()
        self.process = context.Process(target=_work, args=(theirs,), daemon=True, name="digitlearn-worker")
        self.process.start()
        theirs.close()

    def close(self) -> None:
        self.conn.close()  # the worker's recv ends: it returns
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()


class Workers:
    """`count` processes; `await workers.run(fn, *args)` runs `fn(*args)` in an idle one, waiting
    for one if all are busy (`fn` and its arguments are pickled: a module-level function, plain
    data). A worker that dies (the kernel's OOM killer, say) fails its call with WorkerError and is
    replaced. Used from one event loop at a time (any: each call waits on its own loop)."""

    def __init__(self, count: int, preload: Sequence[str] = ()) -> None:
        self.count, self.preload = count, list(preload)
        self._idle: list[_Worker] = []
        self._started = 0
        self._waiting: collections.deque[asyncio.Future] = collections.deque()  # calls waiting for a worker

    @property
    def running(self) -> int:
        """Worker processes started and not yet closed (or found dead)."""
        return self._started

    def start(self) -> None:
        """Start every worker now (a request would otherwise wait for its worker's start)."""
        while self._started < self.count:
            self._idle.append(self._new())

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        worker = await self._take()
        try:
            ok, answer = await self._call(worker, fn, args)
        except BaseException:  # it died, or this call was cancelled mid-way: its pipe is unusable
            self._started -= 1
            worker.process.kill()
            worker.conn.close()
            raise
        finally:
            self._give_back(worker)
        if not ok:
            raise WorkerError(answer)
        return answer

    def close(self) -> None:
        for worker in self._idle:
            worker.close()
        self._idle, self._started = [], 0

    async def _take(self) -> _Worker:
        while True:
            if self._idle:
                worker = self._idle.pop()
                if not worker.conn.poll():  # an idle worker's pipe is readable only once it has died
                    return worker
                self._started -= 1  # a new one below
                worker.close()
            if self._started < self.count:
                self._started += 1
                return await asyncio.to_thread(self._start_one)
            freed = asyncio.get_running_loop().create_future()
            self._waiting.append(freed)
            try:
                await freed  # the first in line is woken, one per worker given back
            except asyncio.CancelledError:
                if freed.done() and not freed.cancelled():  # woken, but gone: the next in line
                    self._wake_one()
                raise

    def _give_back(self, worker: _Worker) -> None:
        if not worker.conn.closed:
            self._idle.append(worker)
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiting:
            freed = self._waiting.popleft()
            if not freed.done():  # not cancelled
                freed.set_result(None)
                break

    def _start_one(self) -> _Worker:
        try:
            return self._new(counted=True)
        except BaseException:
            self._started -= 1
            raise

    def _new(self, counted: bool = False) -> _Worker:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if "forkserver" in methods:
            context.set_forkserver_preload(self.preload)
        worker = _Worker(context)
        if not counted:
            self._started += 1
        return worker

    @staticmethod
    async def _call(worker: _Worker, fn: Callable[..., Any], args: tuple) -> tuple[bool, Any]:
        loop = asyncio.get_running_loop()
        answered = loop.create_future()
        fd = worker.conn.fileno()

        def readable() -> None:
            loop.remove_reader(fd)
            try:
                answered.set_result(worker.conn.recv())
            except (EOFError, OSError) as e:
                answered.set_exception(WorkerError(f"a worker process died ({type(e).__name__})"))

        worker.conn.send((fn, args))
        loop.add_reader(fd, readable)
        try:
            return await answered
        finally:
            loop.remove_reader(fd)
