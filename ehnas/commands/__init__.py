"""Command modules of the `ehnas` CLI (one per group)."""
