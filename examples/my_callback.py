"""A callback of your own, with state that shapes training: it survives a checkpoint, so a run
stopped and resumed ends exactly as one that never stopped.

    python examples/my_callback.py
"""

import tempfile
from pathlib import Path

import torch

from digitlearn import SGD, Callback, Learner, batch_accuracy, load_dataset, mnist_loss, set_seed, simple_net


class DecayGradients(Callback):
    """Scales every gradient by 0.999 ** (steps taken so far): a counter it keeps, and saves."""

    def __init__(self) -> None:
        self.steps = 0

    def after_backward(self, learn: Learner) -> None:
        for p in learn.model.parameters():
            p.grad *= 0.999**self.steps
        self.steps += 1

    def state_dict(self) -> dict:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.steps = state["steps"]


def learner() -> Learner:
    set_seed(0)
    dls = load_dataset("mnist_sample").dataloaders(bs=256)
    learn = Learner(
        dls, simple_net, opt_func=SGD, loss_func=mnist_loss, metrics=batch_accuracy, progress=False
    )
    learn.add_cbs([DecayGradients()])
    return learn


straight = learner()
straight.fit(4, 0.1)

checkpoint = Path(tempfile.mkdtemp()) / "checkpoint.safetensors"
first = learner()
first.fit(2, 0.1)
first.save_checkpoint(checkpoint)  # the model, optimizer, random generators and callbacks' states

resumed = learner()  # a new process would start here
resumed.load_checkpoint(checkpoint)
resumed.fit(4, 0.1)  # goes on at epoch 2
counter = next(cb for cb in resumed.cbs if isinstance(cb, DecayGradients)).steps
weights = zip(straight.model.state_dict().values(), resumed.model.state_dict().values(), strict=True)
same = all(torch.equal(a, b) for a, b in weights)
print(f"resumed with the counter at {counter}: the same weights as without stopping: {same}")
