"""Preprocessing backends: rgb frames → the conditioning inputs vid2vid trains on (pure compute, no Prefect).

One small interface per stage (``base.py``); backends are picked by name through ``registry.py``.
"""
