"""Writing small, valid DICOM radiographs (pydicom) for tests, benchmarks and miniature datasets.

:func:`write_dicom` writes a Part 10 file (preamble, file meta, Explicit VR Little Endian or a
compressed transfer syntax) of the Digital X-Ray (or CR) storage class, with whichever of the
display attributes the reader must honour are asked for: Bits Stored, Pixel Representation,
MONOCHROME1, Rescale Slope/Intercept, Window Center/Width, a VOI LUT Sequence, several frames.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

DX_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"
"""Digital X-Ray Image Storage - For Presentation."""
CR = "1.2.840.10008.5.1.4.1.1.1"
"""Computed Radiography Image Storage."""


def write_dicom(path: str | os.PathLike, pixels: np.ndarray, *, photometric: str = "MONOCHROME2",
                bits_stored: int | None = None, rescale: tuple[float, float] | None = None,
                window: tuple[float | Sequence[float], float | Sequence[float]] | None = None,
                voi_lut: tuple[Sequence[int], Sequence[int]] | None = None,
                modality_lut: tuple[Sequence[int], Sequence[int]] | None = None, transfer_syntax: str | None = None,
                sop_class: str = DX_FOR_PRESENTATION, patient_id: str | None = "P0001",
                view_position: str | None = "PA", modality: str | None = None, preamble: bool = True) -> Path:
    """Write ``pixels`` (stored values) as a DICOM file and return its path.

    ``pixels``: ``(H, W)`` grayscale, ``(frames, H, W)`` multi-frame, or ``(H, W, 3)`` uint8 RGB;
    uint8/int8 are stored in 8 bits, (u)int16 in 16 (signed dtypes set Pixel Representation 1).
    ``bits_stored`` defaults to the storage size (High Bit = Bits Stored - 1); values are written
    as given, so bits above ``bits_stored`` can be set on purpose. ``rescale`` is (slope,
    intercept); ``window`` (center, width), each one value or several; ``voi_lut`` (LUT
    Descriptor, LUT Data), the data written as OW 16-bit words; ``modality_lut`` likewise. OpenJPEG refuses images under
    32 x 32 px. ``transfer_syntax`` (a UID, e.g. ``pydicom.uid.RLELossless``) compresses
    the pixel data with pydicom's encoders. ``preamble`` False writes no preamble and no file meta
    (as some old writers did); the default Explicit VR Little Endian is then implied.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    arr = np.ascontiguousarray(pixels)
    rgb = arr.ndim == 3 and arr.shape[-1] == 3 and photometric == "RGB"
    frames = arr.shape[0] if arr.ndim == 3 and not rgb else 1
    allocated = arr.dtype.itemsize * 8
    if arr.dtype.kind not in "iu" or allocated not in (8, 16):
        raise TypeError(f"write_dicom stores 8- or 16-bit integers, got {arr.dtype}")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = modality or ("CR" if sop_class == CR else "DX")
    if patient_id is not None:
        ds.PatientID = patient_id
    if view_position is not None:
        ds.ViewPosition = view_position
    ds.Rows, ds.Columns = arr.shape[1:3] if frames > 1 else arr.shape[:2]
    ds.SamplesPerPixel = 3 if rgb else 1
    if rgb:
        ds.PlanarConfiguration = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = allocated
    ds.BitsStored = bits_stored or allocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if arr.dtype.kind == "i" else 0
    if photometric in ("MONOCHROME1", "MONOCHROME2") and sop_class == DX_FOR_PRESENTATION:
        ds.PresentationLUTShape = "INVERSE" if photometric == "MONOCHROME1" else "IDENTITY"
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    for keyword, lut in (("VOILUTSequence", voi_lut), ("ModalityLUTSequence", modality_lut)):
        if lut is not None:
            item = Dataset()
            item.add_new("LUTDescriptor", "US", [int(v) for v in lut[0]])
            item.add_new("LUTData", "OW", np.asarray(lut[1], dtype="<u2").tobytes())  # 16-bit words
            if keyword == "ModalityLUTSequence":
                item.ModalityLUTType = "US"  # unspecified
            setattr(ds, keyword, [item])
    ds.PixelData = arr.tobytes()
    if transfer_syntax is not None and transfer_syntax != ExplicitVRLittleEndian:
        ds.compress(transfer_syntax, generate_instance_uid=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if preamble:
        ds.save_as(path, enforce_file_format=True)
    else:
        del ds.file_meta
        ds.save_as(path, implicit_vr=False, little_endian=True)
    return path
