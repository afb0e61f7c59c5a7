"""Wire formats of the gateway as pydantic v2 models.

This package imports nothing from ``gateway``: it is what other systems rely on.
Every field carries its sensitivity class in the JSON Schema keyword
``x-sensitivity`` (S0 technical, S1 operational, S2 reporter/officer data and exact
location, S3 identity of victim, child or perpetrator and the narrative).
"""
