"""Loss registry. Every module in this package is imported so its ``@register`` runs.

``losses.available_methods()`` lists the ``--kd-method`` names; ``losses.parse_spec(text)`` parses
a ``--kd-method`` value once (``a+b`` combines methods) and builds the method. The contract a
method follows is ``losses/base.py``; the registry and the parsing are ``losses/registry.py``.
"""
import importlib
import pkgutil

from .base import (ChannelInfo, DistillMethod, MissingKeys, StepContext, StreamBatch,  # noqa: F401
                   add_flag, on_off, pick)
from .registry import (CombinedMethod, MethodSpec, TermConflict, available_methods, build_method,  # noqa: F401
                       get_method_class, parse_spec, register, teachers_needed)
from .task import SegCrossEntropyLoss, TaskLoss, task_loss  # noqa: F401

for _info in pkgutil.iter_modules(__path__):
    if not _info.name.startswith("_"):
        importlib.import_module("%s.%s" % (__name__, _info.name))


def add_method_args(parser) -> None:
    """Let every registered method add its flags (shared ones such as --lambda-kd only once)."""
    from .registry import _REGISTRY
    for name in sorted(_REGISTRY):
        _REGISTRY[name].add_args(parser)
