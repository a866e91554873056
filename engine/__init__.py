"""The machinery behind the two entry points: building models/data/methods and the training loop.

``train_kd.py`` and ``eval.py`` parse flags and call into here; ``engine`` may import
``models``, ``losses``, ``datasets`` and ``utils`` (which never import ``engine``).
"""
