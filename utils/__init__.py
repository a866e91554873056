"""Framework utilities: distributed setup, logging, checkpoints, metrics, inference, pictures.

Nothing here imports ``losses`` or ``datasets``, and ``models`` only inside ``utils/flops.py``'s CLI
``main`` (to build the model it counts); functions take built objects.
"""
