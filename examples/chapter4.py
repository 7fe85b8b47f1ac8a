"""fastbook's chapter 4 on one screen: pixel similarity, then a linear model and a neural net
trained by the Learner, on the 3s and 7s of MNIST.

    python examples/chapter4.py        # about 10 seconds on two cores
"""

from digitlearn import (
    SGD,
    Learner,
    PixelSimilarity,
    batch_accuracy,
    linear1,
    load_dataset,
    mnist_loss,
    set_seed,
    simple_net,
)  # fmt: skip

ds = load_dataset("mnist_sample")  # 12,396 train and 2,038 valid images of 3s and 7s, as uint8
baseline = PixelSimilarity("l1").fit(ds.train.x, ds.train.y)  # the ideal 3 and the ideal 7
pixel = (baseline.predict(ds.valid.x) == ds.valid.y).float().mean()
print(f"pixel similarity: {pixel:.4f}")

for name, model, epochs, lr in (("linear1", linear1, 20, 1.0), ("simple_net", simple_net, 40, 0.1)):
    set_seed(42)
    dls = ds.dataloaders(bs=256)  # flat rows of 784 floats in [0, 1]
    learn = Learner(dls, model, opt_func=SGD, loss_func=mnist_loss, metrics=batch_accuracy, progress=False)
    history = learn.fit(epochs, lr)
    print(f"{name}: {history.history['batch_accuracy'][-1]:.4f}")
