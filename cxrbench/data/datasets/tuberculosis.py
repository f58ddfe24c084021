"""``shenzhen`` and ``montgomery``: the NLM tuberculosis sets (Jaeger et al., QIMS 2014).

Shenzhen (Guangdong Medical College, 662 PNGs, 336 TB) ships ``ChinaSet_AllFiles/CXR_png/
CHNCXR_0001_0.png``, Montgomery County (USA, 138 PNGs, 58 TB) ``MontgomerySet/CXR_png/
MCUCXR_0001_0.png``: the suffix ``_0`` is normal, ``_1`` tuberculosis. One image per patient. The
optional ``ClinicalReadings/<stem>.txt`` (sex, age, the radiologist's reading) become extras.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from cxrbench.data.datasets.archive import single_label
from cxrbench.data.datasets.common import file_table, is_debris
from cxrbench.data.loading import missing_data_error
from cxrbench.errors import DatasetError
from cxrbench.specs import DatasetSpec, DataRequest, SampleTable

CLASSES = ("normal", "tuberculosis")
ALIASES = {"tb": "tuberculosis", "ptb": "tuberculosis", "negative": "normal", "positive": "tuberculosis"}
SETS = {"shenzhen": ("ChinaSet_AllFiles", "CHNCXR"), "montgomery": ("MontgomerySet", "MCUCXR")}
_AGE = re.compile(r"(\d+)\s*(?:y|yrs|years?)?", re.IGNORECASE)


def _image_folder(root: Path, top: str) -> Path | None:
    """``CXR_png`` under ``root/<top>/``, ``root`` itself, or ``root`` when it is CXR_png."""
    for cand in (root / top / "CXR_png", root / "CXR_png", root):
        if cand.is_dir() and any(p.suffix.lower() == ".png" for p in cand.iterdir()):
            return cand
    return None


def parse_reading(text: str) -> tuple[str, str, str]:
    """(sex, age, reading) of a ClinicalReadings file, in either set's format.

    Shenzhen: ``male 35yrs`` then the reading; Montgomery: ``Patient's Sex: M``, ``Patient's Age:
    035Y`` then the reading. Unknown parts are empty strings.
    """
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    sex = age = ""
    rest = []
    for ln in lines:
        low = ln.lower()
        if low.startswith("patient's sex") or low.startswith("patient sex"):
            sex = ln.split(":", 1)[-1].strip().upper()[:1]
        elif low.startswith("patient's age") or low.startswith("patient age"):
            m = _AGE.search(ln.split(":", 1)[-1])
            age = str(int(m.group(1))) if m else ""
        elif not sex and re.match(r"^(male|female)\b", low):
            sex = "M" if low.startswith("male") else "F"
            m = _AGE.search(low)
            age = str(int(m.group(1))) if m else ""
        else:
            rest.append(ln)
    return sex, age, " ".join(rest)


def make_loader(name: str):  # noqa: ANN201 - returns the load function of one set
    top, prefix = SETS[name]
    pattern = re.compile(rf"^{prefix}_(\d+)_([01])$", re.IGNORECASE)

    def load(request: DataRequest) -> SampleTable:
        root = request.root
        assert root is not None  # default_folder is set
        folder = _image_folder(root, top)
        if folder is None:
            raise missing_data_error(SPEC[name], f"no {top}/CXR_png/ folder with PNG files under {root}", [root],
                                     request.options)
        classes, index = single_label(name, request.classes, CLASSES, ALIASES)
        files, labels, patients, bad = [], [], [], []
        for p in sorted(folder.iterdir()):
            if is_debris(p.name) or p.suffix.lower() != ".png":
                continue
            m = pattern.match(p.stem)
            if m is None:
                bad.append(p.name)
                continue
            files.append(p)
            labels.append(index["tuberculosis" if m.group(2) == "1" else "normal"])
            patients.append(m.group(1))
        if bad:
            raise DatasetError(f"dataset {name!r}: {len(bad)} file(s) in {folder} do not end in _0 (normal) or _1 "
                               f"(tuberculosis) as {prefix}_<number>_<0|1>.png: {bad[:5]}")
        readings = folder.parent / "ClinicalReadings"
        extras: dict[str, list[str]] = {"source": [name] * len(files), "view": ["PA"] * len(files)}
        found = [readings / f"{p.stem}.txt" for p in files] if readings.is_dir() else []
        if found and any(f.is_file() for f in found):
            parsed = [parse_reading(f.read_text(errors="replace")) if f.is_file() else ("", "", "") for f in found]
            extras |= {"sex": [s for s, _, _ in parsed], "age": [a for _, a, _ in parsed],
                       "reading": [r for _, _, r in parsed]}
        table = file_table(name, folder, files, np.asarray(labels, dtype=np.int64), classes, patient_ids=patients,
                           extras=extras, extra_files=[f for f in found if f.is_file()])
        table.notes = [f"one image per patient; view PA as published ({top})"]
        return table

    return load


def _spec(name: str, title: str, count: str, source: str) -> DatasetSpec:
    top, prefix = SETS[name]
    return DatasetSpec(
        name=name,
        load=make_loader(name),
        tasks=("binary",),
        description=(f"{title}: {count} PA chest X-rays (PNG), binary [normal, tuberculosis] from the file-name "
                     "suffix (_0 / _1); one image per patient; ClinicalReadings (sex, age, reading) as extras; "
                     "no official split. No options."),
        source=source,
        layout=(f"<root>/{top}/CXR_png/{prefix}_0001_0.png   (_0 normal, _1 tuberculosis)\n"
                f"<root>/{top}/ClinicalReadings/{prefix}_0001_0.txt   (optional)\n"
                "dataset.root may also be the CXR_png folder itself"),
        default_folder=name,
    )


SPEC = {
    "shenzhen": _spec("shenzhen", "Shenzhen No.3 People's Hospital TB set", "662 (336 TB)",
                      "https://lhncbc.nlm.nih.gov/LHC-downloads/downloads.html#tuberculosis-image-data-sets "
                      "(Jaeger et al., QIMS 2014; public, cite the paper)"),
    "montgomery": _spec("montgomery", "Montgomery County (Maryland) TB set", "138 (58 TB)",
                        "https://lhncbc.nlm.nih.gov/LHC-downloads/downloads.html#tuberculosis-image-data-sets "
                        "(Jaeger et al., QIMS 2014; public, cite the paper)"),
}
