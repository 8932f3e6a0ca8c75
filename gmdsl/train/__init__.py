"""Fitting a compiled model to data: settings (one pydantic model), datasets, binding data to
variables, run directories, the loop, checkpoints, metrics, evaluation and figures. `command`
is what `gmdsl train`, `gmdsl eval` and `gmdsl show` run."""
