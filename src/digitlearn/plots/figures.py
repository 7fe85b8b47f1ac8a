"""fastai's `show_image` and `show_images`, importable from `digitlearn` at no cost: matplotlib,
which takes about a second to import, loads with the first picture (see `plots` for the drawing)."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def show_image(img: Any, title: str | None = None) -> "Figure":
    """One image (a tensor, an array or a Pillow image), gray, as a matplotlib Figure."""
    from .charts import show_image as draw

    return draw(img, title)


def show_images(imgs: Any, titles: list[str] | None = None, nrows: int | None = None) -> "Figure":
    """Several images in a grid (`nrows` rows, or as square as they fit), as a matplotlib Figure."""
    from .charts import show_images as draw

    return draw(imgs, titles, nrows)
