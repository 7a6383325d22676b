"""Prefect tasks: thin wrappers over `nas_lib` that add retries, logging and UI artifacts.

Tasks receive a run folder and small ids (architecture strings, layer names), never DataFrames
or modules, and they return paths or small rows. `tasks.context` holds the Prefect-free helpers
they share (config, ledger, data, space, devices).
"""
