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
    tensorboard      logging losses, metrics, learning rates and times to TensorBoard

Every module but `learner` is independent of the loop: the Learner imports them, never the
reverse.
"""

from .. import lazy_exports

# imported on first use: the command line reads the recipes without loading torch
__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "augment": ("Augment", "random_affine"),
        "checkpoint": ("read_checkpoint",),
        "distributed": ("DistributedTraining",),
        "events": (
            "EVENTS", "Callback", "CancelBatchException", "CancelEpochException", "CancelFitException",
            "CancelStepException", "CancelTrainException", "CancelValidateException",
        ),
        "guards": ("StopOnInterrupt", "TerminateOnNaN", "TrainingDiverged"),
        "history": ("History",),
        "learner": ("Learner",),
        "lr_finder": ("LRFinder", "LRFindResult", "suggest_lr"),
        "precision": ("MixedPrecision",),
        "progress": ("ProgressCallback", "format_row", "interactive"),
        "recorder": ("CSVLogger", "Recorder", "metric_name", "write_history"),
        "schedules": ("ParamScheduler", "cosine", "joined", "one_cycle"),
        "skip_learned": ("SkipLearned",),
        "summary": ("Summary", "summarize"),
        "tensorboard": ("TensorBoard",),
        "tracking": ("EarlyStopping", "SaveBestModel", "TrackerCallback"),
        "validate_at_end": ("ValidateAtEnd",),
        "whiten": ("whiten_first_conv",),
    },
)  # fmt: skip
