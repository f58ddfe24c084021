"""The built-in file-based datasets: one module per dataset, registered in ``cxrbench.builtins.datasets``.

Every loader turns a :class:`~cxrbench.specs.DataRequest` (options validated, root resolved by
:mod:`cxrbench.data.loading`) into a :class:`~cxrbench.specs.SampleTable` and raises
:class:`~cxrbench.errors.DatasetError` naming the file, row or folder at fault. Each module's
``SPEC`` declares its options schema, variants and default folder under ``$CXRBENCH_DATA``.
"""

from __future__ import annotations

from cxrbench.specs import DatasetSpec


def builtin_specs() -> list[DatasetSpec]:
    """The DatasetSpecs of every built-in file dataset."""
    from cxrbench.data.datasets import chestxray14, chexpert, csv_table, folder, kermany, lung_xray, medmnist_npz
    from cxrbench.data.datasets import mimic_cxr, padchest, rsna_pneumonia, siim_pneumothorax, tuberculosis, vindr_cxr

    return [kermany.SPEC, lung_xray.SPEC, chestxray14.SPEC, medmnist_npz.SPEC, folder.SPEC, csv_table.SPEC,
            chexpert.SPEC, mimic_cxr.SPEC, padchest.SPEC, rsna_pneumonia.SPEC, vindr_cxr.SPEC,
            siim_pneumothorax.SPEC, tuberculosis.SPEC["shenzhen"], tuberculosis.SPEC["montgomery"]]
