"""DICOM and 16-bit PNG decoding: real files written with pydicom / PIL, pixels checked against hand computations.

The references below are exact rational arithmetic (integers or ``Fraction``) on the DICOM
standard's formulas (PS3.3 C.11.2.1.2.1 for windows), not calls into pydicom or cxrbench.
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pydicom = pytest.importorskip("pydicom", minversion="3")
from pydicom import uid  # noqa: E402
from pydicom.pixels import get_decoder, get_encoder  # noqa: E402

from cxrbench.data import dicom, images  # noqa: E402
from cxrbench.data.cache import load_images  # noqa: E402
from cxrbench.data.datasets import csv_table, folder  # noqa: E402
from cxrbench.data.datasets.common import file_table, list_images  # noqa: E402
from cxrbench.data.describe import describe_table  # noqa: E402
from cxrbench.data.dicom_writer import CR, write_dicom  # noqa: E402
from cxrbench.errors import DatasetError  # noqa: E402
from cxrbench.data.loading import load_dataset  # noqa: E402

S = 64  # >= 32 px: OpenJPEG refuses smaller images with its default resolution levels


def stored12(seed: int = 0, shape: tuple[int, int] = (S, S)) -> np.ndarray:
    """12-bit stored values covering the range, both extremes included."""
    v = np.random.default_rng(seed).integers(0, 4096, shape).astype(np.uint16)
    v[0, 0], v[0, 1] = 0, 4095
    return v


def linear_ref(v: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """round_half_up((v - lo) * 255 / (hi - lo)) in integers (``lo > hi`` inverts)."""
    num = (v.astype(np.int64) - lo) * 510 + (hi - lo)
    den = 2 * (hi - lo)
    if den < 0:
        num, den = -num, -den
    return np.clip(num // den, 0, 255).astype(np.uint8)


def window_ref(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """LINEAR window of PS3.3 C.11.2.1.2.1 onto 0..255, exact, round half up (asserts no ties)."""
    c, w = Fraction(center), Fraction(width)
    out = np.empty(x.shape, np.uint8)
    for idx, xv in np.ndenumerate(x):
        xv = Fraction(int(xv))
        if xv <= c - Fraction(1, 2) - (w - 1) / 2:
            y = Fraction(0)
        elif xv > c - Fraction(1, 2) + (w - 1) / 2:
            y = Fraction(255)
        else:
            y = ((xv - (c - Fraction(1, 2))) / (w - 1) + Fraction(1, 2)) * 255
        assert (y + Fraction(1, 2)).denominator != 1, "pick values without rounding ties"
        out[idx] = int(y + Fraction(1, 2)) if y < 255 else 255
    return out


def test_monochrome2_12_bit_in_16_bit_storage_uses_the_stored_range_and_masks_high_bits(tmp_path):
    v = stored12()
    junk = v | np.uint16(0xA000)  # bits above Bits Stored are not part of the value
    path = write_dicom(tmp_path / "a.dcm", junk, bits_stored=12)
    expected = linear_ref(v, 0, 4095)
    assert np.array_equal(dicom.read_dicom(path), expected)
    assert np.array_equal(images.decode_file(path, S, 1), expected)  # same size: no resampling
    assert images.decode_file(path, S, 3).shape == (S, S, 3)


def test_monochrome1_is_the_monochrome2_of_the_inverse(tmp_path):
    v = stored12(1)
    m1 = dicom.read_dicom(write_dicom(tmp_path / "m1.dcm", v, photometric="MONOCHROME1", bits_stored=12))
    m2_inverse = dicom.read_dicom(write_dicom(tmp_path / "m2.dcm", (4095 - v).astype(np.uint16), bits_stored=12))
    m2 = dicom.read_dicom(write_dicom(tmp_path / "m2b.dcm", v, bits_stored=12))
    assert np.array_equal(m1, m2_inverse)
    assert np.array_equal(m1, linear_ref(v, 4095, 0))
    assert np.array_equal(m1.astype(int), 255 - m2.astype(int))  # no rounding ties at 12 bits
    assert m1[0, 0] == 255 and m1[0, 1] == 0  # stored 0 is white in MONOCHROME1


def test_signed_pixels_use_the_twos_complement_range(tmp_path):
    v = np.random.default_rng(2).integers(-2048, 2048, (S, S)).astype(np.int16)
    v[0, 0], v[0, 1] = -2048, 2047
    path = write_dicom(tmp_path / "s.dcm", v, bits_stored=12)
    assert pydicom.dcmread(path).PixelRepresentation == 1
    assert np.array_equal(dicom.read_dicom(path), linear_ref(v, -2048, 2047))


def test_rescale_slope_intercept_is_applied_before_the_window(tmp_path):
    v = stored12(3)
    slope, intercept, center, width = 2, -1024, 1000, 2001
    path = write_dicom(tmp_path / "r.dcm", v, bits_stored=12, rescale=(slope, intercept), window=(center, width))
    expected = window_ref(v.astype(np.int64) * slope + intercept, center, width)
    assert np.array_equal(dicom.read_dicom(path), expected)
    assert not np.array_equal(expected, window_ref(v, center, width))  # ignoring the rescale would show
    # MONOCHROME1 with the same window: the inverse image
    path = write_dicom(tmp_path / "r1.dcm", v, photometric="MONOCHROME1", bits_stored=12,
                       rescale=(slope, intercept), window=(center, width))
    assert np.array_equal(dicom.read_dicom(path).astype(int), 255 - expected.astype(int))


def test_the_first_of_several_windows_is_used(tmp_path):
    v = stored12(4)
    path = write_dicom(tmp_path / "w.dcm", v, bits_stored=12, window=([1500, 3000], [1001, 400]))
    assert np.array_equal(dicom.read_dicom(path), window_ref(v, 1500, 1001))


def test_voi_lut_sequence_wins_over_the_window(tmp_path):
    v = stored12(5)
    entries, first = 4000, 100
    lut = np.round(np.sqrt(np.arange(entries) / (entries - 1)) * 4095).astype(np.int64)
    path = write_dicom(tmp_path / "l.dcm", v, bits_stored=12, window=(2000, 500),
                       voi_lut=([entries, first, 12], lut))
    expected = linear_ref(lut[np.clip(v.astype(np.int64) - first, 0, entries - 1)], 0, 4095)
    assert np.array_equal(dicom.read_dicom(path), expected)


def test_an_8_bit_voi_lut_with_4096_entries_does_not_wrap(tmp_path):
    # pydicom 3.0's apply_voi indexes an 8-bit LUT with uint8 indices: stored 300 would read entry 44
    v = stored12(6)
    lut = np.arange(4096) // 16
    path = write_dicom(tmp_path / "l8.dcm", v, bits_stored=12, voi_lut=([4096, 0, 8], lut))
    assert np.array_equal(dicom.read_dicom(path), (v // 16).astype(np.uint8))


def test_a_voi_lut_declaring_16_bits_but_filling_12_uses_12(tmp_path):
    v = stored12(7)
    lut = 4095 - np.arange(4096)  # an Agfa-style LUT: descriptor says 16 bits, entries reach 4095
    path = write_dicom(tmp_path / "l16.dcm", v, bits_stored=12, voi_lut=([4096, 0, 16], lut))
    assert np.array_equal(dicom.read_dicom(path), linear_ref(4095 - v.astype(np.int64), 0, 4095))


def test_a_12_bit_modality_lut_then_the_window(tmp_path):
    v = stored12(14)
    lut = (np.arange(4096) * 3) // 4  # a 12-bit Modality LUT: stored -> 0..3071
    path = write_dicom(tmp_path / "m.dcm", v, bits_stored=12, modality_lut=([4096, 0, 12], lut))
    assert np.array_equal(dicom.read_dicom(path), linear_ref(lut[v], 0, 4095))  # no window: the LUT's bits
    path = write_dicom(tmp_path / "mw.dcm", v, bits_stored=12, modality_lut=([4096, 0, 12], lut),
                       window=(1500, 1001))
    assert np.array_equal(dicom.read_dicom(path), window_ref(lut[v], 1500, 1001))


def test_eight_bit_and_rgb_files(tmp_path):
    v = np.random.default_rng(8).integers(0, 256, (S, S)).astype(np.uint8)
    assert np.array_equal(dicom.read_dicom(write_dicom(tmp_path / "g8.dcm", v, sop_class=CR)), v)
    rgb = np.random.default_rng(9).integers(0, 256, (S, S, 3)).astype(np.uint8)
    path = write_dicom(tmp_path / "rgb.dcm", rgb, photometric="RGB")
    assert np.array_equal(dicom.read_dicom(path), rgb)
    assert np.array_equal(images.decode_file(path, S), rgb)
    assert np.array_equal(images.decode_file(path, S, 1), np.asarray(Image.fromarray(rgb).convert("L")))


def test_resizing_matches_the_other_readers(tmp_path):
    v = stored12(10, (96, 80))
    path = write_dicom(tmp_path / "big.dcm", v, bits_stored=12)
    expected = np.asarray(Image.fromarray(linear_ref(v, 0, 4095)).resize((32, 32), Image.Resampling.BILINEAR))
    assert np.array_equal(images.decode_file(path, 32, 1), expected)


def test_multi_frame_and_palette_colour_are_refused_naming_the_file(tmp_path):
    path = write_dicom(tmp_path / "mf.dcm", np.stack([stored12(0), stored12(1)]), bits_stored=12)
    with pytest.raises(DatasetError, match=r"mf\.dcm: multi-frame DICOM \(2 frames\)"):
        dicom.read_dicom(path)
    assert dicom.read_dicom_header(path).frames == 2
    path = write_dicom(tmp_path / "pal.dcm", np.zeros((S, S), np.uint8), photometric="PALETTE COLOR")
    with pytest.raises(DatasetError, match=r"pal\.dcm: photometric interpretation 'PALETTE COLOR'"):
        images.decode_file(path, 32)


def test_rle_lossless_decodes_to_the_uncompressed_image(tmp_path):
    v = stored12(11)
    path = write_dicom(tmp_path / "rle.dcm", v, photometric="MONOCHROME1", bits_stored=12,
                       transfer_syntax=uid.RLELossless)
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == uid.RLELossless
    assert np.array_equal(dicom.read_dicom(path), linear_ref(v, 4095, 0))


@pytest.mark.parametrize("syntax", [uid.JPEG2000Lossless, uid.JPEGLSLossless], ids=["jpeg2000", "jpeg-ls"])
def test_lossless_jpeg_family_decodes_to_the_uncompressed_image(tmp_path, syntax):
    encoder = get_encoder(syntax)
    if not encoder.is_available:
        pytest.skip(f"no installed encoder writes {syntax.name} ({'; '.join(encoder.missing_dependencies)}); "
                    "decoding it is covered when such files exist")
    v = stored12(12)
    path = write_dicom(tmp_path / "j.dcm", v, bits_stored=12, transfer_syntax=syntax)
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == syntax
    assert np.array_equal(dicom.read_dicom(path), linear_ref(v, 0, 4095))


def test_jpeg_baseline_in_dicom_decodes_close_to_the_original(tmp_path):
    import io

    from pydicom.encaps import encapsulate

    v = np.clip(np.add.outer(np.arange(S) * 3, np.arange(S) * 1), 0, 255).astype(np.uint8)
    path = write_dicom(tmp_path / "jpg.dcm", v)
    ds = pydicom.dcmread(path)
    buf = io.BytesIO()
    Image.fromarray(v).save(buf, format="JPEG", quality=95)
    ds.PixelData = encapsulate([buf.getvalue()])
    ds.file_meta.TransferSyntaxUID = uid.JPEGBaseline8Bit
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    assert np.abs(dicom.read_dicom(path).astype(int) - v).mean() < 1.5


def test_a_missing_decoder_names_the_file_the_syntax_and_what_to_install(tmp_path, monkeypatch):
    path = write_dicom(tmp_path / "rle.dcm", stored12(), bits_stored=12, transfer_syntax=uid.RLELossless)
    monkeypatch.setattr(get_decoder(uid.RLELossless), "_available", {})  # as if no plugin were installed
    with pytest.raises(DatasetError) as err:
        images.decode_file(path, 32)
    msg = str(err.value)
    assert str(path) in msg and "RLE Lossless" in msg and uid.RLELossless in msg
    assert "pip install 'cxrbench[dicom]'" in msg and "python-gdcm" in msg


def test_without_pydicom_the_message_says_what_to_install(tmp_path, monkeypatch):
    path = write_dicom(tmp_path / "a.dcm", stored12(), bits_stored=12)
    monkeypatch.setitem(sys.modules, "pydicom", None)
    with pytest.raises(DatasetError, match=r"a\.dcm: reading DICOM files needs pydicom.*cxrbench\[dicom\]"):
        dicom.read_dicom(path)


def test_corrupt_files_give_a_clear_error_naming_the_file(tmp_path):
    path = write_dicom(tmp_path / "cut.dcm", stored12(), bits_stored=12)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert dicom.read_dicom_header(path).rows == S  # the header is intact; the pixels are not
    with pytest.raises(DatasetError, match=r"cut\.dcm: cannot decode DICOM pixel data \(Explicit VR Little "
                                           r"Endian\): .*less than expected"):
        images.decode_file(path, 32)
    early = tmp_path / "early.dcm"
    early.write_bytes(data[:200])
    with pytest.raises(DatasetError, match=r"early\.dcm: not a DICOM image"):
        dicom.read_dicom(early)
    text = tmp_path / "notes.dcm"
    text.write_text("not a DICOM file at all " * 20)
    with pytest.raises(DatasetError, match=r"notes\.dcm: .*no DICM preamble"):
        images.decode_file(text, 32)


def test_header_only_read(tmp_path):
    path = write_dicom(tmp_path / "h.dcm", stored12(), photometric="MONOCHROME1", bits_stored=12,
                       patient_id="PAT-7", view_position="AP", transfer_syntax=uid.RLELossless)
    head = dicom.read_dicom_header(path)
    assert (head.rows, head.columns, head.bits_allocated, head.bits_stored, head.signed) == (S, S, 16, 12, False)
    assert (head.photometric, head.modality, head.view_position, head.patient_id) == ("MONOCHROME1", "DX", "AP",
                                                                                       "PAT-7")
    assert head.transfer_syntax == "RLE Lossless" and head.frames == 1
    assert images.image_header(path) == (S, S, "MONOCHROME1 12-bit")
    legacy = write_dicom(tmp_path / "legacy.dcm", stored12(), bits_stored=12, preamble=False)  # no preamble/meta
    assert not dicom.has_dicom_preamble(legacy)
    assert dicom.read_dicom_header(legacy).transfer_syntax == "Explicit VR Little Endian"
    assert np.array_equal(dicom.read_dicom(legacy), linear_ref(stored12(), 0, 4095))


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_grayscale_maps_the_full_16_bit_range(tmp_path, fmt):
    v = np.random.default_rng(13).integers(0, 65536, (40, 40)).astype(np.uint16)
    v[0, :6] = [0, 128, 129, 32767, 32768, 65535]
    v[1, :] = np.arange(1000, 1040)  # a narrow range stays narrow: no per-image stretch
    path = tmp_path / f"p16.{fmt.lower()}"
    Image.fromarray(v).save(path, format=fmt)
    with Image.open(path) as img:
        assert img.mode.startswith("I;16")
    out = images.decode_file(path, 40, 1)
    assert np.array_equal(out, linear_ref(v, 0, 65535))
    assert out[0, :6].tolist() == [0, 0, 1, 127, 128, 255] and set(out[1].tolist()) <= {4}


def _dicom_tree(root: Path) -> dict[str, np.ndarray]:
    """root/{normal,pneumonia}/ with every kind of DICOM file name; returns the hand-decoded images."""
    expected = {}
    for k, (rel, kwargs) in enumerate([
            ("normal/pat01_a.dcm", {}),
            ("normal/pat01_b.dcm", {"photometric": "MONOCHROME1", "transfer_syntax": uid.RLELossless}),
            ("pneumonia/pat02_a.DICOM", {}),
            ("pneumonia/IM000004", {"photometric": "MONOCHROME1"})]):
        v = stored12(20 + k)
        write_dicom(root / rel, v, bits_stored=12, patient_id=rel.split("/")[1][:5], **kwargs)
        mono1 = kwargs.get("photometric") == "MONOCHROME1"
        expected[rel] = linear_ref(v, 4095, 0) if mono1 else linear_ref(v, 0, 4095)
    (root / "pneumonia" / "README").write_text("an extension-less file that is not DICOM")
    return expected


def test_image_folder_of_dicoms_loads_decodes_caches_and_describes(tmp_path):
    expected = _dicom_tree(tmp_path / "d")
    assert [p.name for p in list_images(tmp_path / "d")] == ["pat01_a.dcm", "pat01_b.dcm", "IM000004",
                                                             "pat02_a.DICOM"]
    table = load_dataset(folder.SPEC, "binary", ("normal", "pneumonia"), tmp_path / "d")
    assert sorted(table.ids) == sorted(expected) and table.labels.tolist() == [0, 0, 1, 1]
    got = load_images(table, S, 1, dataset="image_folder", cache_dir=tmp_path / "cache")
    assert not got.hit and got.bad == [] and got.keep.tolist() == [0, 1, 2, 3]
    for j, i in enumerate(got.keep):
        assert np.array_equal(got.images[j, 0], expected[table.ids[i]]), table.ids[i]
    again = load_images(table, S, 1, dataset="image_folder", cache_dir=tmp_path / "cache")
    assert again.hit and np.array_equal(again.images, got.images)
    size = describe_table(table, "image_folder", "binary")["image_size"]
    assert size["modes"] == {"MONOCHROME2 12-bit": 2, "MONOCHROME1 12-bit": 2} and size["width"]["max"] == S


def test_csv_of_dicoms_and_a_truncated_row_reported_once(tmp_path):
    expected = _dicom_tree(tmp_path / "d")
    bad = write_dicom(tmp_path / "d" / "pneumonia" / "cut.dcm", stored12(), bits_stored=12)
    bad.write_bytes(bad.read_bytes()[:-500])
    rows = ["path,label"] + [f"{rel},{rel.split('/')[0]}" for rel in expected] + ["pneumonia/cut.dcm,pneumonia"]
    (tmp_path / "d" / "labels.csv").write_text("\n".join(rows) + "\n")
    table = load_dataset(csv_table.SPEC, "binary", ("normal", "pneumonia"), tmp_path / "d" / "labels.csv")
    got = load_images(table, S, 1, dataset="csv", use_cache=False)
    assert got.keep.tolist() == [0, 1, 2, 3]
    for j, rel in enumerate(expected):
        assert np.array_equal(got.images[j, 0], expected[rel])
    (sample, reason), = got.bad
    assert sample == "pneumonia/cut.dcm" and reason.count(str(bad)) == 1 and "less than expected" in reason


def test_decode_table_reports_a_dicom_error_with_the_path_once(tmp_path):
    path = tmp_path / "mf.dcm"
    write_dicom(path, np.stack([stored12(), stored12()]), bits_stored=12)
    table = file_table("t", tmp_path, [path], [0], ["a"])
    failures = images.decode_table(table, np.empty((1, 1, 8, 8), np.uint8), 8, 1, workers=1)
    assert failures == [(0, f"{path}: multi-frame DICOM (2 frames); cxrbench reads single-frame radiographs only: "
                            "split the frames into files first")]
