"""`digitlearn lr-find`: train briefly with a growing learning rate, plot the loss, suggest a rate."""

import argparse

from .shared import Interrupted, add_recipe, learning_rate, load_data, number, recipe_from

NAME, HELP, TORCH = "lr-find", "suggest a learning rate and plot loss against learning rate", True


def add_arguments(q: argparse.ArgumentParser) -> None:
    add_recipe(q)
    q.add_argument("--start-lr", type=learning_rate, default=1e-7)
    q.add_argument("--end-lr", type=learning_rate, default=10.0)
    q.add_argument(
        "--num-it", type=number(int, 1, 100_000), default=100, help="batches to try (default %(default)s)"
    )
    q.add_argument("--out", metavar="FILE.png", default="lr_find.png", help="the plot (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    from ..plots.charts import save_figure

    recipe = recipe_from(args)
    learn = recipe.learner(load_data(args), args.seed, args.device, progress=not args.quiet)
    result = learn.lr_find(args.start_lr, args.end_lr, args.num_it)
    if learn.interrupted:
        raise Interrupted()
    print(
        f"suggested learning rate: {result.suggestion:.3g} "
        f"(where the loss falls fastest, over {len(result.lrs)} batches)"
    )
    print(f"wrote {save_figure(result.plot(), args.out)}")
    return 0
