"""What a training run writes: the layout of its output folder, shared by every reader.

Why a module of its own: evaluation, experiment tracking, the registry and the promotion read
a training run's folder; the names live here once, so none of them imports the training code.
"""

from __future__ import annotations

CHECKPOINT_FILE = "checkpoint.pt"  # resumable state (weights, optimiser, epoch)
MODEL_DIR = "model"  # the exported model (weights + model.json), what load_model reads
EMBEDDINGS_DIR = "embeddings"  # the catalog's embeddings and codes from the final weights
HISTORY_FILE = "history.json"  # per-epoch losses and checks
RUN_INFO_FILE = "mlflow_run.json"  # the MLflow run (and registered version) of this run
