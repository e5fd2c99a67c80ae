"""Shared file formats between stages: feature files (`features`) and prediction sources (`predictions`).

Kept outside the stages that write them so that readers (heads, ensemble, notebooks) need not import
the writers' dependencies. Nothing runs on import.
"""
