"""`digitlearn show`: an image's pixels and its distance to each class mean; figures of images."""

import argparse
from typing import TYPE_CHECKING

from ..errors import DigitlearnError
from ..tables import table
from .shared import add_data, count, index_range, load_data, number

if TYPE_CHECKING:
    from ..chapter.baseline import PixelSimilarity
    from ..data.dataset import Split

NAME, HELP, TORCH = "show", "print an image's pixels and distances; draw images or class means", True


def add_arguments(q: argparse.ArgumentParser) -> None:
    add_data(q)
    q.add_argument("--split", default="train", help="split to show: train or valid (default %(default)s)")
    q.add_argument("--class", dest="cls", metavar="CLASS", help="count --index within this class")
    q.add_argument(
        "--index", type=number(int, 0, 2**31 - 1), default=0, help="which image (default %(default)s)"
    )
    q.add_argument(
        "--count",
        type=count,
        default=1,
        help="images from --index (default 1): more than one prints a line each, not their pixels, "
        "and draws them all in --out",
    )
    q.add_argument("--rows", type=index_range, default=slice(None), help="print only these rows, e.g. 4:10")
    q.add_argument("--cols", type=index_range, default=slice(None), help="print only these columns")
    q.add_argument("--means", action="store_true", help="draw the class means (needs --out)")
    q.add_argument("--out", metavar="FILE.png", help="write the image(s) as a figure")


def run(args: argparse.Namespace) -> int:
    from ..chapter.baseline import PixelSimilarity, mnist_distance, rmse_distance
    from ..plots.charts import format_pixels, image_grid, save_figure

    if args.means and not args.out:
        args.parser.error("--means needs --out FILE.png")
    ds = load_data(args)
    model = PixelSimilarity().fit(ds.train.x, ds.train.y, len(ds.classes))
    if args.means:
        fig = image_grid(model.means, [f"mean {c}" for c in ds.classes])
        print(f"wrote {save_figure(fig, args.out)}")
        return 0
    split = ds.split(args.split)
    where = f"{args.split}"
    if args.cls is not None:
        split = split.of_class(ds.class_index(args.cls))
        where += f" class {args.cls}"
    if not 0 <= args.index < len(split) or args.count < 1 or args.index + args.count > len(split):
        asked = f"--index {args.index}" + (f" --count {args.count}" if args.count != 1 else "")
        raise DigitlearnError(
            f"{asked} is out of range: {where} has {len(split):,} images (index 0 to {len(split) - 1:,})"
        )
    if args.count > 1:
        return show_many(args, split[args.index : args.index + args.count], ds.classes, model)
    item = split[args.index]
    image, label = item.x[0], ds.classes[int(item.y)]
    print(f"{args.data} {args.split}/{item.names[0]}: class {label}, image {args.index} of {where}")
    print(format_pixels(image, args.rows, args.cols))
    x = image.float() / 255
    rows = [
        [c, f"{mnist_distance(x, m):.4f}", f"{rmse_distance(x, m):.4f}"]
        for c, m in zip(ds.classes, model.means, strict=True)
    ]
    print("\n" + table(["distance to mean of", "L1", "RMSE"], rows))
    print(f"nearest mean (L1): {ds.classes[int(model.predict(image[None]))]}")
    if args.out:
        print(f"wrote {save_figure(image_grid(item.x, item.names), args.out)}")
    return 0


def show_many(args: argparse.Namespace, shown: "Split", classes: list[str], model: "PixelSimilarity") -> int:
    """A line per image (name, class, nearest mean) and the figure: a dozen pixel tables would
    bury what was asked for."""
    from ..plots.charts import image_grid, save_figure

    nearest = model.predict(shown.x).tolist()
    last = args.index + len(shown) - 1
    print(f"{args.data} {args.split}: images {args.index} to {last}")
    for name, y, p in zip(shown.names, shown.y.tolist(), nearest, strict=True):
        print(f"  {name}: class {classes[y]}, nearest mean (L1) {classes[p]}")
    if args.out:
        print(f"wrote {save_figure(image_grid(shown.x, shown.names), args.out)}")
    return 0
