"""Data: reading a dataset from any source, gmdsl's cache of named datasets, and binding a
dataset's fields to a model's variables.

    dataset.py      Dataset, DataError, and how a missing label is marked
    sources.py      which reader reads a name, file or folder (the registry of sources)
    idx.py npz.py table.py images.py
                    one reader per source
    cache.py        the named datasets: fetched (MNIST, Fashion-MNIST) or generated (faces.py,
                    multi_mnist.py) into $GMDSL_DATA
    labels.py       which examples have labels; class-balanced subsets
    binding.py      fields to variables, model-ready values, the validation and labelled subsets
    fingerprint.py  a dataset's content fingerprint, which runs record
    inspect.py      `gmdsl data inspect`: what a dataset holds and how it binds to a spec
"""

from .dataset import DataError, Dataset
from .sources import open_dataset

__all__ = ["DataError", "Dataset", "open_dataset"]
