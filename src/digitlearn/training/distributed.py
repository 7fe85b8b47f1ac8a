"""Data-parallel training on torch.distributed: one model, trained by several processes at once.

`torchrun --nproc_per_node N` starts N copies of a script (or of `digitlearn train`); each builds
the same Learner from the same seed, and `with learn.distributed(): learn.fit(...)` makes them one
run. Every process takes its share of each global batch (`DataLoader.shard`); the model is wrapped
in DistributedDataParallel, which averages the gradients in backward, so every process makes the
same step, the one a single process would make on the whole batch. The figures of each epoch are
summed over the processes (`Recorder.reduce`), and stopping (Ctrl-C, a NaN loss) is agreed on at
every training batch through `Learner.any_process`, which any callback that stops training asks,
so that no process goes on alone and waits forever for the others.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from ..errors import DigitlearnError
from .checkpoint import unwrapped
from .events import Callback, Learner
from .progress import ProgressCallback
from .skip_learned import SkipLearned


def launched() -> bool:
    """Whether this process is one of several that torchrun (or another launcher) started."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank() -> int:
    """This process's rank: 0 when not distributed (or before the process group is made)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def local_device(device: torch.device) -> torch.device:
    """The device this process trains on: on GPUs, the one of its local rank (one GPU each)."""
    if device.type != "cuda":
        return device
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


class DistributedTraining(Callback):
    """Makes each fit data-parallel across the processes of the default process group.

    Needs the group made first (`Learner.distributed` does it); every process must run the same
    fits with the same settings. Only rank 0 should write files and show progress.
    """

    order = -20  # the model is wrapped before anything else runs on it

    def __init__(self) -> None:
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.backend = dist.get_backend()

    def _sum(self, t: torch.Tensor) -> torch.Tensor:
        # NCCL reduces only tensors on the GPU; gloo, on the CPU
        where = torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else "cpu"
        t = t.to(where)
        dist.all_reduce(t)
        return t.cpu()

    def _any(self, flag: bool) -> bool:
        return bool(self._sum(torch.tensor([float(flag)])) > 0)

    def before_fit(self, learn: Learner) -> None:
        learn.dls.train.shard(self.rank, self.world, even=True)
        learn.dls.valid.shard(self.rank, self.world)
        device = learn.device
        ids = [device.index] if device.type == "cuda" else None
        learn.model = DistributedDataParallel(learn.model, device_ids=ids)
        learn.recorder.reduce = self._sum
        learn.consensus = self._any  # what `learn.any_process` asks, for any callback that stops training

    def after_fit(self, learn: Learner) -> None:
        learn.model = unwrapped(learn.model)
        learn.dls.train.shard()
        learn.dls.valid.shard()
        learn.recorder.reduce = None
        learn.consensus = None


@contextmanager
def distributed(learn: Learner, backend: str | None = None) -> Iterator[Learner]:
    """Train `learn` data-parallel inside the block, in a process that torchrun started.

    Makes the process group from torchrun's environment if there is none yet (gloo on the CPU,
    NCCL on GPUs, unless `backend` says) and puts the model on this process's GPU. The shuffle
    gets its own generator, seeded alike in every process, so that every process draws the same
    order whatever else draws random numbers (dropout masks differ in size between shares).
    Progress shows in rank 0 only. The group is taken down at the end if it was made here.
    """
    if any(isinstance(c, SkipLearned) for c in learn.cbs):
        # each process would keep its own share's "learned" marks, so the processes' epochs would
        # differ in length and their gradient exchange would wait for ever
        raise DigitlearnError(
            "SkipLearned does not work across processes yet: train without it (--skip-learned 0)"
        )
    device = local_device(learn.device)
    made = not dist.is_initialized()
    if made:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend or ("nccl" if device.type == "cuda" else "gloo"))
    learn.model.to(device)
    learn.dls.to(device)
    train = learn.dls.train
    if train.shuffle and train.generator is None:
        seed = torch.randint(0, 2**62, (1,))
        dist.broadcast(seed.to(device) if dist.get_backend() == "nccl" else seed, src=0)
        train.generator = torch.Generator(device=device).manual_seed(int(seed))
    cb = DistributedTraining()
    hidden = [c for c in learn.cbs if isinstance(c, ProgressCallback)] if cb.rank else []
    learn.remove_cbs(hidden)
    learn.add_cbs([cb])
    try:
        yield learn
    finally:
        learn.remove_cbs([cb])
        learn.add_cbs(hidden)
        if made:
            # every process past its last collective before any takes the group down: one that
            # left early could tear down gloo's threads under another's last exchange (a rare
            # "terminate called without an active exception" on a loaded machine)
            dist.barrier()
            dist.destroy_process_group()
