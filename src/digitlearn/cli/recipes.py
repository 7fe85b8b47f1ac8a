"""`digitlearn recipes`: the named recipes, and each model's default one."""

import argparse

from ..models import MODELS
from ..training.recipes import RECIPES, Recipe, default_recipe

NAME, HELP, TORCH = "recipes", "list the named recipes and each model's default settings", False


def add_arguments(q: argparse.ArgumentParser) -> None:
    pass


def settings(recipe: Recipe) -> str:
    """A recipe's settings as `name=value` (`to_dict` has left out those its model does not use),
    leaving out unset ones, and sqr_mom unless the optimizer is adam."""
    return " ".join(
        f"{k}={v}"
        for k, v in recipe.to_dict().items()
        if v is not None and (k != "sqr_mom" or recipe.opt == "adam")
    )


def run(args: argparse.Namespace) -> int:
    for title, recipes in (
        ("named recipes (digitlearn train --recipe NAME):", RECIPES),
        (
            "each model's default recipe (digitlearn train --model NAME):",
            {m: default_recipe(m) for m in MODELS},
        ),
    ):
        print(title)
        for name, recipe in recipes.items():
            print(f"  {name:<11} {recipe.about}\n  {'':<11} {settings(recipe)}")
    print("any flag of `digitlearn train` replaces the setting of the same name")
    return 0
