"""Prefect flows: `flows.pipeline.nas_pipeline` (the parent) and its sub-flows."""
