"""Training: the Learner's loop, and the callbacks that do everything else, one concern a module.

    events           the events, the Cancel*Exceptions and the Callback base class
    learner          the Learner: fit, fit_one_cycle, validate, get_preds, predict, lr_find, save;
                     load_learner
    history          what fit returns: per-epoch values, Keras-style, shown as a table
    summary          the layers, their output shapes and parameter counts
    recorder         per-batch losses and per-epoch history; CSV and JSON logs
    progress         progress bars and the epoch table
    tracking         keeping the best weights; early stopping
    guards           stopping cleanly on NaN losses and Ctrl-C
    checkpoint       checkpoints after every epoch, and resuming a fit exactly where it stopped
    distributed      data-parallel training across the processes torchrun starts (DDP)
    precision        bf16 mixed precision
    schedules        one-cycle and other parameter schedules
    lr_finder        the learning-rate finder and its suggestion
    skip_learned     later epochs only on the examples not yet mastered
    validate_at_end  one validation, after the last epoch
    augment          random shifts, rotations and zooms of each training batch

Every module but `learner` is independent of the loop: the Learner imports them, never the
reverse.
"""

from .augment import Augment, random_affine
from .checkpoint import Checkpoint, read_checkpoint
from .distributed import DistributedTraining
from .events import (
    EVENTS,
    Callback,
    CancelBatchException,
    CancelEpochException,
    CancelFitException,
    CancelStepException,
    CancelTrainException,
    CancelValidateException,
)
from .guards import StopOnInterrupt, TerminateOnNaN, TrainingDiverged
from .history import History
from .learner import Learner, load_learner
from .lr_finder import LRFinder, LRFindResult, suggest_lr
from .precision import MixedPrecision
from .progress import ProgressCallback, format_row, interactive
from .recorder import CSVLogger, Recorder, metric_name, write_history
from .schedules import ParamScheduler, cosine, joined, one_cycle
from .skip_learned import SkipLearned
from .summary import Summary, summarize
from .tracking import EarlyStopping, SaveBestModel, TrackerCallback
from .validate_at_end import ValidateAtEnd

__all__ = [
    "EVENTS",
    "Augment",
    "CSVLogger",
    "Callback",
    "CancelBatchException",
    "CancelEpochException",
    "CancelFitException",
    "CancelStepException",
    "CancelTrainException",
    "CancelValidateException",
    "Checkpoint",
    "DistributedTraining",
    "EarlyStopping",
    "History",
    "LRFindResult",
    "LRFinder",
    "Learner",
    "MixedPrecision",
    "ParamScheduler",
    "ProgressCallback",
    "Recorder",
    "SaveBestModel",
    "SkipLearned",
    "StopOnInterrupt",
    "Summary",
    "TerminateOnNaN",
    "TrackerCallback",
    "TrainingDiverged",
    "ValidateAtEnd",
    "cosine",
    "format_row",
    "interactive",
    "joined",
    "load_learner",
    "metric_name",
    "one_cycle",
    "random_affine",
    "read_checkpoint",
    "suggest_lr",
    "summarize",
    "write_history",
]
