"""DICOM radiographs -> the uint8 arrays the other image readers return, plus header-only reads.

Grayscale files follow the DICOM display chain (PS3.4 N.2), with pydicom's own functions:

1. stored values, masked to Bits Stored and sign-extended per Pixel Representation (pydicom);
2. Modality LUT Sequence, else Rescale Slope/Intercept (``apply_modality_lut``);
3. VOI LUT Sequence, else Window Center/Width, the first of several (``apply_voi_lut``, index 0);
4. the range that stage outputs mapped linearly onto 0..255 (:func:`scale_to_uint8`): the VOI
   LUT's output bits with a VOI LUT, else the stored bit range after step 2 (pydicom's windowing
   outputs that same range, and without a window it is the only range the file defines);
5. MONOCHROME1 inverted to MONOCHROME2 (the map of step 4 run from high to low).

Every step is pointwise and stored values have at most 16 bits, so the chain runs once on every
possible stored value (a table of at most 65,536 entries) and the image is one table lookup: the
per-pixel result, at a fraction of the float work on a 3000 x 3000 image.

Workarounds (pydicom 3.0.2): it indexes an 8-bit VOI LUT with uint8 indices, so entries past 255
wrap, and rejects Modality LUTs of 10-15 bits; both are read as 16-bit (same entries). Some
devices (Agfa CR) declare 16 bits per VOI LUT entry but fill 12: the output range is the declared
bits or the bit length of the largest entry reached, whichever is smaller (as Horos and
Cornerstone do). Presentation LUT Shape is not used:
the DX/CR IODs tie INVERSE to MONOCHROME1, which step 5 already handles.

RGB (and YBR, converted to RGB by pydicom) files with 3 samples come back ``(H, W, 3)``; palette
colour and multi-frame files are refused. Compressed transfer syntaxes need pixel-data plugins
(the ``dicom`` extra: pylibjpeg with its libjpeg, openjpeg and rle plugins; or python-gdcm); a missing
one is a :class:`DatasetError` naming the file, its transfer syntax and what to install. pydicom
is imported on first use, so the rest of cxrbench works without it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from cxrbench.data.intensity import bit_range, scale_to_uint8
from cxrbench.errors import DatasetError

DICOM_EXTENSIONS = frozenset({".dcm", ".dicom"})
INSTALL_HINT = ("pip install 'cxrbench[dicom]'  (pydicom, pylibjpeg, pylibjpeg-libjpeg, pylibjpeg-openjpeg, "
                "pylibjpeg-rle)")
_MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
_MAX_TABLE_BITS = 16


def has_dicom_preamble(path: str | os.PathLike) -> bool:
    """True when bytes 128..131 of the file are ``DICM`` (the Part 10 file preamble)."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def is_dicom_path(path: str | os.PathLike) -> bool:
    """A ``.dcm`` / ``.dicom`` file, or a file without extension that starts with the DICOM preamble."""
    ext = os.path.splitext(path)[1].lower()
    return ext in DICOM_EXTENSIONS or (ext == "" and has_dicom_preamble(path))


def _pydicom(path: str | os.PathLike) -> Any:
    try:
        import pydicom
        import pydicom.pixels  # noqa: F401 - pydicom >= 3
    except ImportError:
        raise DatasetError(f"{path}: reading DICOM files needs pydicom >= 3: {INSTALL_HINT}") from None
    return pydicom


def _read(path: str | os.PathLike, header_only: bool) -> Any:
    """The dataset, with a Transfer Syntax UID even when the file has no file meta (older writers)."""
    pydicom = _pydicom(path)
    try:
        # force: a .dcm without the 128-byte preamble and file meta is still read
        ds = pydicom.dcmread(path, stop_before_pixels=header_only, force=True)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types for a damaged file
        raise DatasetError(f"{path}: not a readable DICOM file ({type(exc).__name__}: {exc})") from None
    if "TransferSyntaxUID" not in ds.file_meta:
        from pydicom import uid

        implicit, little = getattr(ds, "original_encoding", (None, None))
        if implicit is None or little is None:
            raise DatasetError(f"{path}: not a DICOM file (no file meta and no recognisable data set)")
        ds.file_meta.TransferSyntaxUID = (uid.ImplicitVRLittleEndian if implicit else
                                          uid.ExplicitVRLittleEndian if little else uid.ExplicitVRBigEndian)
    return ds


def _require_image(path: str | os.PathLike, ds: Any) -> None:
    if "Rows" not in ds or "Columns" not in ds:
        why = "" if has_dicom_preamble(path) else "; it has no DICM preamble either: probably not DICOM at all"
        raise DatasetError(f"{path}: not a DICOM image (no Rows/Columns: truncated, or no image object){why}")


def _transfer_syntax(ds: Any) -> Any:
    return ds.file_meta.TransferSyntaxUID


def _frames(ds: Any) -> int:
    try:
        return int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        return 1


@dataclass(frozen=True)
class DicomHeader:
    """What ``describe`` needs from a DICOM file, read without decoding pixels."""

    path: str
    rows: int
    columns: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    photometric: str
    samples_per_pixel: int
    frames: int
    modality: str | None
    view_position: str | None
    patient_id: str | None
    transfer_syntax: str
    """Transfer syntax name, e.g. ``JPEG 2000 Image Compression (Lossless Only)``."""

    @property
    def mode(self) -> str:
        """Short description for image-mode counts, e.g. ``MONOCHROME1 12-bit``."""
        return f"{self.photometric} {self.bits_stored}-bit" + (" signed" if self.signed else "")


def read_dicom_header(path: str | os.PathLike) -> DicomHeader:
    """Rows, columns, bits, photometric interpretation, modality, view and patient of a DICOM file.

    Stops before the pixel data. Raises :class:`DatasetError` (naming the file) for a file that is
    not DICOM or has no image.
    """
    ds = _read(path, header_only=True)
    _require_image(path, ds)

    def text(keyword: str) -> str | None:
        value = ds.get(keyword)
        return (str(value).strip() or None) if value is not None else None

    allocated = int(ds.get("BitsAllocated", 0) or 0)
    return DicomHeader(
        path=str(path), rows=int(ds.Rows), columns=int(ds.Columns), bits_allocated=allocated,
        bits_stored=int(ds.get("BitsStored", allocated) or allocated),
        signed=int(ds.get("PixelRepresentation", 0) or 0) == 1,
        photometric=str(ds.get("PhotometricInterpretation", "")).strip(),
        samples_per_pixel=int(ds.get("SamplesPerPixel", 1) or 1), frames=_frames(ds),
        modality=text("Modality"), view_position=text("ViewPosition"), patient_id=text("PatientID"),
        transfer_syntax=_transfer_syntax(ds).name,
    )


def _check_decoder(path: str | os.PathLike, ds: Any) -> None:
    """A compressed transfer syntax without an installed pixel-data plugin: say what to install."""
    from pydicom.pixels import get_decoder

    ts = _transfer_syntax(ds)
    if not ts.is_compressed:
        return
    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        raise DatasetError(f"{path}: pixel data in transfer syntax {ts.name} ({ts}), which pydicom cannot "
                           "decode; convert the file (e.g. dcmtk's dcmdjpeg / gdcmconv --raw)") from None
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies) or "no plugin registered"
        raise DatasetError(f"{path}: pixel data compressed as {ts.name} ({ts}) and no installed plugin decodes it "
                           f"(pydicom: {missing}); install one: {INSTALL_HINT}, or pip install python-gdcm")


def _stored_range(ds: Any) -> tuple[int, int]:
    return bit_range(int(ds.BitsStored), int(ds.get("PixelRepresentation", 0) or 0) == 1)


def _modality_range(ds: Any) -> tuple[float, float]:
    """Output range of the modality stage: a Modality LUT's bits, else the stored range rescaled."""
    if ds.get("ModalityLUTSequence"):
        return 0.0, float((1 << int(ds.ModalityLUTSequence[0].LUTDescriptor[2])) - 1)
    lo, hi = _stored_range(ds)
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        return lo * slope + intercept, hi * slope + intercept
    return float(lo), float(hi)


def _voi_lut(ds: Any) -> Any:
    """The first VOI LUT Sequence item pydicom would apply, or None (windowing or nothing)."""
    seq = ds.get("VOILUTSequence")
    if seq and seq[0].get("LUTDescriptor") is not None and seq[0].get("LUTData") is not None:
        return seq[0]
    return None


def _gray_pipeline(values: np.ndarray, ds: Any) -> np.ndarray:
    """Steps 2-5 of the module docstring on an array of stored values."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    lo, hi = _modality_range(ds)
    mod = ds.ModalityLUTSequence[0] if ds.get("ModalityLUTSequence") else None
    declared = list(mod.LUTDescriptor) if mod is not None else None
    if declared is not None and 8 < int(declared[2]) < 16:  # pydicom 3.0 builds a "uint12" dtype and fails
        mod.LUTDescriptor = [*declared[:2], 16]
    out = apply_modality_lut(values, ds)
    if declared is not None:
        mod.LUTDescriptor = declared  # pydicom's windowing takes its output range from these bits
    item = _voi_lut(ds)
    if item is not None:
        entries, first, bits = (int(v) for v in item.LUTDescriptor)
        if bits == 8 and (entries or 1 << 16) > 256:  # pydicom 3.0 would wrap indices past 255
            item.LUTDescriptor = [entries, first, 16]
        if out.dtype.kind == "f" and np.array_equal(out, np.round(out)):
            out = out.astype(np.int64)  # an identity rescale: the VOI LUT wants integer inputs
        out = apply_voi_lut(out, ds, index=0, prefer_lut=True)
        reached = int(np.max(out)) if out.size else 0
        lo, hi = 0.0, float((1 << min(bits, max(reached.bit_length(), 1))) - 1)
    else:
        out = apply_voi_lut(out, ds, index=0, prefer_lut=True)  # windowing into [lo, hi], or nothing
    if str(ds.PhotometricInterpretation).strip() == "MONOCHROME1":
        lo, hi = hi, lo
    return scale_to_uint8(out, lo, hi)


def dicom_to_uint8(ds: Any, pixels: np.ndarray) -> np.ndarray:
    """A decoded single-frame grayscale ``pixels`` array of dataset ``ds`` -> uint8 ``(H, W)``."""
    lo, hi = _stored_range(ds)
    if pixels.dtype.kind in "iu" and int(ds.BitsStored) <= _MAX_TABLE_BITS:
        table = _gray_pipeline(np.arange(lo, hi + 1, dtype=np.int64), ds)
        index = pixels if lo == 0 and pixels.dtype.kind == "u" else pixels.astype(np.int64) - lo
        return np.take(table, index, mode="clip")  # values past Bits Stored (a lax encoder) clip
    return _gray_pipeline(pixels, ds)


def read_dicom(path: str | os.PathLike) -> np.ndarray:
    """Decode a single-frame DICOM radiograph to uint8 ``(H, W)``, or ``(H, W, 3)`` for RGB/YBR files.

    Raises :class:`DatasetError` naming the file for anything it cannot read: not DICOM, damaged or
    truncated, no pixel data, multi-frame, palette colour, or a compressed transfer syntax whose
    plugin is not installed.
    """
    ds = _read(path, header_only=False)
    _require_image(path, ds)
    if "PixelData" not in ds:
        floats = "FloatPixelData" in ds or "DoubleFloatPixelData" in ds
        raise DatasetError(f"{path}: DICOM file without Pixel Data ("
                           + ("it holds float pixel data, not a radiograph)" if floats else "truncated?)"))
    frames = _frames(ds)
    if frames > 1:
        raise DatasetError(f"{path}: multi-frame DICOM ({frames} frames); cxrbench reads single-frame "
                           "radiographs only: split the frames into files first")
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if not ((samples == 1 and photometric in _MONOCHROME) or samples == 3):
        raise DatasetError(f"{path}: photometric interpretation {photometric or 'missing'!r} with {samples} "
                           "sample(s) per pixel is not supported (expected MONOCHROME1, MONOCHROME2 or RGB/YBR)")
    _check_decoder(path, ds)
    try:
        pixels = ds.pixel_array
        if samples == 3:
            if pixels.dtype == np.uint8:
                return np.ascontiguousarray(pixels)
            lo, hi = _stored_range(ds)
            return scale_to_uint8(pixels, lo, hi)
        return dicom_to_uint8(ds, pixels)
    except DatasetError:
        raise
    except Exception as exc:  # noqa: BLE001 - decoder and LUT errors are reported per file
        raise DatasetError(f"{path}: cannot decode DICOM pixel data ({_transfer_syntax(ds).name}): "
                           f"{type(exc).__name__}: {exc}") from None
