"""Built-in datasets, registered through the same hook a third-party plugin uses."""

from __future__ import annotations

import hashlib
import json

from cxrbench.data.datasets import builtin_specs
from cxrbench.data.synthetic import (BINARY_CLASSES, CHESTXRAY14_LABELS, GENERATOR_VERSION, MULTICLASS_CLASSES,
                                     SyntheticCXR, SyntheticOptions)
from cxrbench.errors import DatasetError
from cxrbench.hookspecs import hookimpl
from cxrbench.specs import DatasetSpec, DataRequest, SampleTable

_SYNTH_CLASSES = {"binary": BINARY_CLASSES, "multiclass": MULTICLASS_CLASSES}


def load_synthetic(request: DataRequest) -> SampleTable:
    """The ``synthetic_cxr`` table for a suite's task, class names and ``dataset.options``.

    Binary and multiclass suites must name 2 and 3 classes (index 0 = normal); multilabel suites
    may name any number of labels (ChestX-ray14 names get their own finding).
    """
    options: SyntheticOptions = request.options  # type: ignore[assignment]
    classes = list(request.classes)
    if request.task in _SYNTH_CLASSES:
        expected = _SYNTH_CLASSES[request.task]
        classes = classes or list(expected)
        if len(classes) != len(expected):
            raise DatasetError(f"synthetic_cxr makes {len(expected)} classes for a {request.task} task "
                               f"({', '.join(expected)}, in that order), but the suite names {len(classes)}: "
                               f"{classes}")
    elif request.task == "multilabel":
        classes = classes or list(CHESTXRAY14_LABELS)
    else:
        raise DatasetError(f"synthetic_cxr: unknown task {request.task!r} (binary, multiclass or multilabel)")
    gen = SyntheticCXR(request.task, options, classes)
    key = {"version": GENERATOR_VERSION, "task": request.task, "classes": classes, "options": options.model_dump()}
    fingerprint = "synthetic_cxr-" + hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return SampleTable(
        ids=gen.ids,
        labels=gen.labels,
        class_names=classes,
        load_image=gen.image,
        patient_ids=gen.patient_ids,
        official_split=list(gen.split) if gen.split is not None else None,
        synthetic=True,
        fingerprint=fingerprint,
        extras={"shortcut_marker": gen.marker.copy()},
        notes=["finding drawn for each class: " + ", ".join(f"{c}: {k or 'none'}" for c, k in zip(classes, gen.kinds))],
    )


@hookimpl
def register_datasets() -> list[DatasetSpec]:
    return [
        DatasetSpec(
            name="synthetic_cxr",
            load=load_synthetic,
            tasks=("binary", "multiclass", "multilabel"),
            synthetic=True,
            description=("Synthetic chest radiographs rendered on the fly (no files): binary normal/pneumonia, "
                         "multiclass normal/lobar/diffuse, or multilabel with one finding per label. Options: "
                         "n_samples, seed, difficulty, prevalence, max_images_per_patient, shortcut, "
                         "shortcut_strength, official_split."),
            source="built in (cxrbench.data.synthetic)",
            layout="none: images are generated from (seed, index)",
            options_schema=SyntheticOptions,
        ),
        *builtin_specs(),
    ]
