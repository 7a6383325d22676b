"""The pyfunc model EHNAS registers: raw uint8 images in, class ids, names and probabilities out.

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
from mlflow.pyfunc import PythonModel


class RawImageClassifier(PythonModel):
    """Classifies uint8 N x H x W x C images with the TorchScript network in its artifacts."""

    def load_context(self, context):  # noqa: ANN001  (MLflow reads annotations as a schema)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch >= 2.10 flags torch.jit as legacy
            self.network = torch.jit.load(context.artifacts["torchscript"], map_location="cpu").eval()
        labels = json.loads(Path(context.artifacts["labels"]).read_text(encoding="utf-8"))
        self.class_names = list(labels["class_names"])

    def predict(self, context, model_input, params=None):  # noqa: ANN001,ANN201  (no hints: MLflow would infer a schema from them)
        if isinstance(model_input, dict):  # a named tensor input arrives as {name: array}
            (model_input,) = model_input.values()
        images = np.ascontiguousarray(np.asarray(model_input), dtype=np.uint8)
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
