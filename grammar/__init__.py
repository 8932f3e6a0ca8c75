"""The .gm grammar (gm.lark), installed as the package data of `gmdsl.grammar`."""
