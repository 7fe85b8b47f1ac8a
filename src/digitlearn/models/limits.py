"""The bounds on a model's shape, shared by the command line (what it lets you train) and the run
loader (what it lets a config.json build), so every run the one trains, the other loads."""

MAX_SIZE = 1024  # image side: MNIST is 28; beyond this, one image is megabytes of floats
MAX_WIDTH = 4096  # channels or units of one layer
MAX_LAYERS = 16
MAX_CLASSES = MAX_WIDTH  # one output per class: the output layer is a layer
