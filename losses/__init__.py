"""Loss registry. Every module in this package is imported so its ``@register`` runs.

``losses.available_methods()`` lists the ``--kd-method`` names; ``losses.build_method(args, ...)``
builds one (``a+b`` combines methods).
"""
import importlib
import pkgutil

from .base import (ChannelInfo, CombinedMethod, DistillMethod, StepContext, add_flag,  # noqa: F401
                   available_methods, build_method, get_method_class, method_classes, on_off, pick,
                   register, teacher_is_student, teachers_needed)
from .task import SegCrossEntropyLoss, task_loss  # noqa: F401

for _info in pkgutil.iter_modules(__path__):
    if not _info.name.startswith("_"):
        importlib.import_module("%s.%s" % (__name__, _info.name))


def add_method_args(parser) -> None:
    """Let every registered method add its flags (shared ones such as --lambda-kd only once)."""
    from .base import _REGISTRY
    for name in sorted(_REGISTRY):
        _REGISTRY[name].add_args(parser)
