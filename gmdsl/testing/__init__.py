"""Property testing of gmdsl models: the hypothesis strategies users import
(`from gmdsl.testing import batches, models`), and the properties `gmdsl test` checks
(`gmdsl.testing.properties`).

- `models()` draws random valid specs as text; `spec_trees()` draws the `ast.Spec` itself.
  Every drawn spec checks clean (no errors, no warnings), and covers variables of every role
  and type, random p and q DAGs, `let` nodes, networks of every builder that fits, estimators
  and objectives.
- `batches(model)` draws valid batches for a compiled model, with random label masks.
- `random_batch(model, rows, seed)` is one such batch, without hypothesis.

A user's own test file:

    import gmdsl, torch
    from hypothesis import given, settings
    from gmdsl.testing import batches, models

    MODEL = gmdsl.compile("my_model.gm")

    @given(batches(MODEL))
    def test_objective_is_finite(batch):
        assert torch.isfinite(MODEL.objective(batch).elbo).all()

    @settings(max_examples=20, deadline=None)
    @given(models())
    def test_every_structure_compiles(spec):
        gmdsl.compile(spec)
"""

from .strategies import BatchRecipe, batch_recipes, batches, models, random_batch, random_value, spec_trees

__all__ = ["BatchRecipe", "batch_recipes", "batches", "models", "random_batch", "random_value", "spec_trees"]
