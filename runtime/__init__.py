"""What compiled gmdsl models import at run time, installed as `gmdsl.runtime`.

It must never import networkx or Lark: a compiled model needs only torch.
"""
