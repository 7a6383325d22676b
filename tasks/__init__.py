"""Prefect tasks: thin wrappers over `nas_lib` that add retries, logging and UI artifacts.

A task is a function of small values (a frozen config section, architecture strings, a space
as its JSON dict, a `tasks.data_ref.DataRef`) and returns rows; it never reads a run folder or
the evaluation store, so any task runner can ship it to a worker. The flow owns the run folder
(`tasks.run_folder.RunFolder`) and writes every file of a run.
"""
