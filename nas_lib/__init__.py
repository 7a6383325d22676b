"""EHNAS core library: spaces, blocks, proxies, search, LLM, pruning. No Prefect, no MLflow."""
