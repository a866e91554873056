"""The mmseg 0.26 model family (BPKD's zoo), hand-written with mmseg's module names: importing
this package registers its models (``pspnet``; see ``segmentor.py``)."""
from . import segmentor  # noqa: F401
