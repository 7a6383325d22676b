"""Datasets and image batches (no downloads: npz arrays, CIFAR-10 batches on disk, image folders, CSV, scikit-learn digits)."""
