"""The pyfunc model EHNAS registers: raw uint8 images in, class ids, names and probabilities out.

Images are N x H x W x C; a single-channel model also takes N x H x W (what IDX files and most
grayscale loaders give). The model checks the shape itself, with a short error that names the
shapes it takes: MLflow's schema enforcement allows one rank only, and its error prints the
whole input array, so the signature declares the outputs only and the MLmodel ``metadata``
(``input``) describes the input.

MLflow copies this file into the registered model ("models from code") and runs it when the
model is loaded, so it imports only torch, numpy, pandas and mlflow: a process without EHNAS
can load and use the model. The network is a TorchScript file with the training normalisation
inside (`nas_lib.export.RawImageModel`); the class names come from ``labels.json``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModel


def as_images(data, image_shape):  # noqa: ANN001,ANN201
    """``data`` as a contiguous uint8 N x H x W x C array for ``image_shape`` (H, W, C); with C = 1,
    N x H x W is taken too. Integer arrays within 0-255 are converted.

    Raises:
        MlflowException (invalid parameter value): another shape or dtype; the message names
            the shapes and dtype, never the values.
    """
    array = np.asarray(data)
    h, w, c = image_shape
    if c == 1 and array.ndim == 3 and array.shape[1:] == (h, w):
        array = array[..., None]
    if array.ndim != 4 or array.shape[1:] != (h, w, c):
        accepted = f"(N, {h}, {w}, {c})" + (f" or (N, {h}, {w})" if c == 1 else "")
        raise MlflowException.invalid_parameter_value(f"images must be uint8 arrays of shape {accepted}; got shape {array.shape}")
    if array.dtype != np.uint8:
        if array.dtype.kind not in "iu" or (array.size and (array.min() < 0 or array.max() > 255)):
            raise MlflowException.invalid_parameter_value(f"images must be uint8 (0-255); got dtype {array.dtype}")
        array = array.astype(np.uint8)
    return np.ascontiguousarray(array)


class RawImageClassifier(PythonModel):
    """Classifies uint8 N x H x W x C images (N x H x W for one channel) with the TorchScript
    network in its artifacts."""

    def load_context(self, context):  # noqa: ANN001  (MLflow reads annotations as a schema)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch >= 2.10 flags torch.jit as legacy
            self.network = torch.jit.load(context.artifacts["torchscript"], map_location="cpu").eval()
        labels = json.loads(Path(context.artifacts["labels"]).read_text(encoding="utf-8"))
        self.class_names = list(labels["class_names"])
        c, h, w = labels["input_shape"]
        self.image_shape = (h, w, c)

    # np.ndarray is a hint MLflow infers no schema from and validates nothing against; without any hint
    # it warns in colour at every load that hints would enable validation
    def predict(self, context, model_input: np.ndarray, params=None):  # noqa: ANN001,ANN201
        if isinstance(model_input, dict):  # a named tensor input arrives as {name: array}
            (model_input,) = model_input.values()
        images = as_images(model_input, self.image_shape)
        with torch.no_grad():
            probs = torch.softmax(self.network(torch.from_numpy(images)).float(), dim=1).numpy()
        best = probs.argmax(axis=1)
        return pd.DataFrame(
            {
                "class_id": best.astype(np.int64),
                "class_name": [self.class_names[i] for i in best],
                "probability": probs[np.arange(len(best)), best].astype(np.float64),
            }
        )


mlflow.models.set_model(RawImageClassifier())
