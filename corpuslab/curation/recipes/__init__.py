"""Curation recipes: registered plug-ins that decide, per item, kept, dropped or repeated.

Built-in: `none`, `exact`, `near` (dedup.py), `minipile`, `semdedup` (distill.py), `category_subset` (categories.py).
Register your own with `@recipes.register` in a module named under `plugins:` in the config (see `base.py`).
"""

from corpuslab.curation.recipes import categories, dedup, distill  # noqa: F401  (registers the built-in recipes)
from corpuslab.curation.recipes.base import CurationContext, Recipe, recipes

__all__ = ["CurationContext", "Recipe", "recipes"]
