"""The ``science.alt.dataset`` lexicons: ATProto record definitions, shipped as package data.

One JSON document per NSID under ``science/alt/dataset/``. They are the single source of truth
for the shape of every record atdata publishes or reads: :mod:`atdata.atmosphere` validates
records against them before sending and after receiving.
"""

__all__: list[str] = []
