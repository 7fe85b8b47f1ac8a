"""Runs: everything about a run folder.

model     a saved model folder read back (config.json checked, then the weights), `load_learner`
schema    what config.json may hold, checked before anything is built
folder    a training run's whole folder, written atomically
"""
