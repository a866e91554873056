"""Framework utilities: distributed setup, logging, checkpoints, metrics, inference, pictures.

Nothing here imports ``models``, ``losses`` or ``datasets``; functions take built objects.
"""
