"""Wire and canonical types, errors, configuration, ids and the clock.

This package imports nothing else of gatehouse.
"""
