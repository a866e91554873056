"""The model output container: the official Af-DCD list, plus access by name.

`SegOutputs` is a plain ``list`` (so ``out[0]``, ``out[-1]``, ``len(out)`` and DDP's tensor
discovery behave exactly as with the official models) whose entries are also reachable by
name (``out.logits``, ``out.aux_logits``, ``out.c4``, ``out.head_feat``). Extra tensors that
are not part of the official list (the backbone stages ``c1..c4``) are reachable by name only.
"""
from __future__ import annotations

from typing import Dict, Iterable, Optional

from torch import Tensor


class SegOutputs(list):
    """A list of tensors in the official order, with named access to them and to extras."""

    def __init__(self, values: Iterable[Tensor], names: Iterable[str],
                 extras: Optional[Dict[str, Tensor]] = None) -> None:
        values = list(values)
        names = tuple(names)
        if len(values) != len(names):
            raise ValueError("SegOutputs: %d values but %d names %s" % (len(values), len(names), names))
        super().__init__(values)
        self.__dict__["names"] = names
        self.__dict__["extras"] = dict(extras or {})

    def __getattr__(self, name: str) -> Tensor:
        names = self.__dict__.get("names", ())
        if name in names:
            return self[names.index(name)]
        extras = self.__dict__.get("extras", {})
        if name in extras:
            return extras[name]
        raise AttributeError("model output has no field %r (list fields: %s; by name only: %s)"
                             % (name, list(names), sorted(extras)))

    def has(self, name: str) -> bool:
        return name in self.names or name in self.extras

    def get(self, name: str, default=None):
        return getattr(self, name) if self.has(name) else default

    def as_dict(self) -> Dict[str, Tensor]:
        d = dict(self.extras)
        d.update(zip(self.names, self))
        return d

    def __reduce__(self):
        return (SegOutputs, (list(self), self.names, self.extras))
