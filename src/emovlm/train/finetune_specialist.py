"""`finetune --target specialist`: features once, a head per sampler (natural and chosen), evaluated side by side."""

from __future__ import annotations

import logging
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

from emovlm.backends.expression.heads import load_head
from emovlm.data.base import Dataset
from emovlm.recognizers.specialist import SpecialistRecognizer
from emovlm.train.features import FeatureExtractor
from emovlm.train.runfolder import (
    FinetuneSummary,
    evaluate_variants,
    prepare_run_folder,
    training_split,
    write_training_log,
)
from emovlm.train.settings import FaceSettings, HeadSettings
from emovlm.train.specialist import train_head
from emovlm.train.trainset import check_classes, label_counts

logger = logging.getLogger(__name__)

NATURAL = "instance"
"""The natural sampler every other sampler is compared with."""


def finetune_specialist(
    train_data: Dataset,
    eval_data: Dataset | None,
    run_dir: Path,
    *,
    head: HeadSettings,
    faces: FaceSettings,
    train_limit: int | None = None,
    feature_cache: Path | None = None,
    resume: bool = False,
    progress: bool = True,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> FinetuneSummary:
    """Train a head with the natural sampler and with `head.sampler`, save both, evaluate on `eval_data`.

    Every check on the data (labels, empty classes, matching label sets) runs before features are
    extracted. With `resume`, heads already in the run folder are reused.
    """
    head.check()
    samples, splits = training_split(
        train_data,
        eval_data,
        limit=train_limit,
        seed=seed,
        allow_missing_classes=head.allow_missing_classes,
    )
    space = train_data.label_space
    run_dir = Path(run_dir)
    prepare_run_folder(
        run_dir,
        {
            "target": "specialist",
            **splits,
            "head": asdict(head),
            "faces": asdict(faces),
        },
        resume=resume,
    )
    extractor = FeatureExtractor(space, faces, cache_folder=feature_cache)
    extracted = extractor.extract(samples, progress=progress)
    if extracted.failed:
        first = next(iter(extracted.failed.items()))
        logger.warning(
            "%d of %d training samples have no usable face and are left out (first: %s: %s)",
            len(extracted.failed),
            len(samples),
            *first,
        )
    kept_labels = [s.labels for s in extracted.samples]
    check_classes(
        kept_labels,
        space,
        allow_missing_classes=head.allow_missing_classes,
        where="the training samples with a face",
    )
    summary = FinetuneSummary(run_dir)
    for variant in dict.fromkeys([NATURAL, head.sampler]):
        path = run_dir / "heads" / f"{variant}.pt"
        if resume and path.is_file():
            load_head(path).check_fits(space, faces.model)
        else:
            trained = train_head(
                extracted.features,
                kept_labels,
                space,
                replace(head, sampler=variant),
                feature_settings=extractor.settings(),
                progress=progress,
            )
            trained.head.save(path)
            summary.logs[variant] = trained.log
        summary.outputs[variant] = path
    summary.files["training_log"] = write_training_log(run_dir, summary.logs)
    if eval_data is None:
        return summary
    face_options = {k: v for k, v in asdict(faces).items() if k != "model"}
    recognizers = {
        variant: partial(SpecialistRecognizer, space, head=str(path), **face_options)
        for variant, path in summary.outputs.items()
    }
    return evaluate_variants(
        summary,
        eval_data,
        recognizers,
        train_counts=label_counts(kept_labels, space),
        title=f"{space.name}: per-class recall by training sampler ({head.kind} head)",
        resume=resume,
        progress=progress,
        n_bootstrap=n_bootstrap,
        seed=seed,
    )
