"""The systems an evaluation measures: the trained model, or its baselines, as search encoders.

Why encoders: every system is measured through the same search pipeline
(:mod:`vsearch.evaluation.measure`), so the comparison isolates what the model contributes.
The model and the external baselines (``category_only``, ``oracle``) are model folders; the
built-in baselines (:mod:`vsearch.evaluation.baselines`) are made here from a reference model
folder's categories and configuration. The model is evaluated on the nightly path; the
baselines apart (``vsearch evaluate-baselines``, :mod:`vsearch.evaluation.figures`). A
missing or unreadable external baseline is skipped with the reason, never fatal: the figures
say which comparison is missing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from vsearch.errors import BadInput
from vsearch.evaluation.baselines import (
    BUILTIN_SYSTEMS,
    COLOUR_HISTOGRAM,
    EXTERNAL_BASELINES,
    UNTRAINED,
    ColourHistogramEncoder,
    untrained_encoder,
)
from vsearch.evaluation.report import ORACLE
from vsearch.model.export import META_FILE
from vsearch.search.encoder import Encoder, NetEncoder, resolve_device
from vsearch.settings import Settings
from vsearch.trained import MODEL_DIR, read_skipped

#: Baselines that train on ground truth: without truth they are skipped with this note.
NEEDS_TRUTH = (ORACLE,)
NO_TRUTH_NOTE = "skipped: this drop has no ground truth (the oracle trains on true product ids)"

log = logging.getLogger(__name__)


def resolve_model_dir(path: Path) -> Path:
    """A model folder, or a training run folder holding one in ``model/``."""
    for candidate in (path, path / MODEL_DIR):
        if (candidate / META_FILE).is_file():
            return candidate
    raise BadInput(f"{path}: not a model folder (no {META_FILE}, nor {MODEL_DIR}/{META_FILE})")


def load_model_encoder(settings: Settings, model_dir: Path) -> NetEncoder:
    """The model of a model (or training run) folder as the evaluation's encoder."""
    return NetEncoder.load(
        resolve_model_dir(model_dir),
        device=resolve_device(settings.project.device),
        batch_size=settings.evaluation.batch_size,
    )


def build_baseline_systems(
    settings: Settings,
    architecture: Path,
    baselines: Mapping[str, Path],
    has_truth: bool = True,
) -> tuple[dict[str, Encoder], dict[str, str]]:
    """The baselines to measure (``vsearch evaluate-baselines``), and those skipped with why.

    The built-in ones copy ``architecture``, a model folder (the category-only run's: same
    network config, same categories as the click-trained model): the colour histogram takes
    its categories and input size, the untrained net its config with random weights.
    Without truth (``has_truth`` False) the baselines that need it (:data:`NEEDS_TRUTH`) are
    skipped with a note, never a failure; a baseline run folder that records why it was
    skipped (``skipped.json``) is skipped with that reason.

    Raises:
        BadInput: ``architecture`` is not a model folder, or a baseline takes a built-in name.
    """
    device = resolve_device(settings.project.device)
    e = settings.evaluation
    arch_dir = resolve_model_dir(architecture)
    reference = load_model_encoder(settings, arch_dir)
    systems: dict[str, Encoder] = {
        COLOUR_HISTOGRAM: ColourHistogramEncoder(
            reference.categories,
            e.histogram_bins,
            settings.index.bits,
            settings.project.seed,
            input_size=int(reference.input_size),
            batch_size=e.batch_size,
        ),
        UNTRAINED: untrained_encoder(
            arch_dir, settings.project.seed, device=device, batch_size=e.batch_size
        ),
    }
    skipped: dict[str, str] = {}
    for name, folder in baselines.items():
        if name in BUILTIN_SYSTEMS:
            raise BadInput(
                f"--baseline {name}=...: {name!r} is a built-in system; pick another name"
            )
        why = read_skipped(folder) or read_skipped(folder.parent)
        if not has_truth and name in NEEDS_TRUTH:
            skipped[name] = NO_TRUTH_NOTE
        elif why is not None:
            skipped[name] = f"skipped: {why}"
        if name in skipped:
            log.warning("baseline %s %s", name, skipped[name])
            continue
        try:
            systems[name] = NetEncoder.load(
                resolve_model_dir(folder), device=device, batch_size=e.batch_size
            )
        except (BadInput, ValueError) as exc:
            skipped[name] = f"skipped: {exc}"
            log.warning("baseline %s %s", name, skipped[name])
    for name in EXTERNAL_BASELINES:
        if name not in baselines:
            skipped[name] = (
                NO_TRUTH_NOTE
                if not has_truth and name in NEEDS_TRUTH
                else f"skipped: not given (--baseline {name}=DIR)"
            )
            log.warning("baseline %s %s", name, skipped[name])
    return systems, skipped
