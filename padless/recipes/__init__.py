"""Ready-made models: classifier recipes by name, a model for every task, and choosing a recipe on
validation data.

Owns: the re-exports below (:mod:`~padless.recipes.classify`, :mod:`~padless.recipes.tasks`,
:mod:`~padless.recipes.selection`). Does not own: layers, models, training.

Example:
    >>> from padless.recipes import RECIPES
    >>> sorted(RECIPES)
    ['bigru', 'fcn', 'fcn-z', 'fcn-zd', 'fcn-zl', 'fcn-zl-dil', 'gru', 'lstm', 'lstm-fcn', 'lstm-fcn-z', 'lstm-fcn-zd',
     'lstm-fcn-zl', 'resnet', 'resnet-z']
"""

from padless.recipes.classify import RECIPES, Recipe, recipe
from padless.recipes.selection import (
                                       AUTO_CANDIDATES,
                                       DEFAULT_BUDGET_S,
                                       Selection,
                                       Trained,
                                       select_recipe,
                                       stratified_split,
                                       train_recipe,
)
from padless.recipes.tasks import CLASSIFIER_FIT, TASKS, StepDecay, parse_layers, sequence_classifier, task_model

__all__ = ["RECIPES", "Recipe", "recipe", "AUTO_CANDIDATES", "DEFAULT_BUDGET_S", "Selection", "select_recipe",
           "stratified_split", "train_recipe", "Trained", "CLASSIFIER_FIT", "TASKS", "StepDecay", "parse_layers",
           "sequence_classifier", "task_model"]
