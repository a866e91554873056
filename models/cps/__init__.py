"""The CPS / MGD DeepLabV3+ family (``deeplabv3plus_cps``)."""
from . import deeplabv3plus  # noqa: F401  (registers deeplabv3plus_cps)
