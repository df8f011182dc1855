"""Data: layout, split rules, cached datasets, the phantom generator and the data module.

The names below load on first use, so that a command that only reads images (predict, evaluate, export)
does not import Lightning through the data module.
"""

import importlib

_WHERE = {"SegDataModule": "datamodule", "Sample": "layout", "find_pairs": "layout",
          "generate_phantom": "phantom", "split_indices": "splits"}

__all__ = list(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
