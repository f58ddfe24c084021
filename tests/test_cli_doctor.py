"""``cxrbench doctor`` against hand-made conditions: a data folder, a cache of known size, a fake
Chromium on PATH and a plugin whose hook raises."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import types
from types import SimpleNamespace

import pytest

from cxrbench import hookimpl
from cxrbench.cli import main
from cxrbench.cli.doctor import data_status, folder_size
from cxrbench.errors import PluginError
from cxrbench.plugins import Registry, load_plugin_manager


def _boom_plugin() -> types.ModuleType:
    mod = types.ModuleType("boom_plugin")

    @hookimpl
    def register_models():
        raise RuntimeError("boom")

    mod.register_models = register_models
    return mod


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """CXRBENCH_DATA with one dataset folder, a cache holding 1,234 + 100 bytes, a fake chromium, a failing plugin."""
    data = tmp_path / "data"
    (data / "chest_xray" / "train").mkdir(parents=True)
    (data / "notes.txt").write_text("not a folder")
    cache = tmp_path / "cache"
    (cache / "entry").mkdir(parents=True)
    (cache / "entry" / "images.npy").write_bytes(b"\0" * 1234)
    (cache / "index.json").write_bytes(b"x" * 100)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    chromium = bin_dir / "chromium"
    chromium.write_text("#!/bin/sh\n")
    chromium.chmod(0o755)
    monkeypatch.setenv("CXRBENCH_DATA", str(data))
    monkeypatch.setenv("CXRBENCH_CACHE", str(cache))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    registry = Registry(*load_plugin_manager(extra_plugins=(_boom_plugin(),)))
    monkeypatch.setattr("cxrbench.plugins.get_registry", lambda: registry)
    return SimpleNamespace(data=data, cache=cache, chromium=chromium, registry=registry)


def test_doctor_json_reports_the_machine(machine, capsys):
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["python"]["version"] == platform.python_version()
    assert report["packages"]["torch"] == importlib.metadata.version("torch")
    assert report["packages"]["torchvision"] == importlib.metadata.version("torchvision")

    import torch

    cuda = report["accelerators"]["cuda"]
    assert cuda["available"] == torch.cuda.is_available() and len(cuda["devices"]) == torch.cuda.device_count()
    assert report["chromium"] == str(machine.chromium)

    assert report["cache"] == {"env": "CXRBENCH_CACHE", "env_value": str(machine.cache), "path": str(machine.cache),
                               "exists": True, "files": 2, "bytes": 1334}
    data = report["data"]
    assert (data["path"], data["exists"], data["folders"]) == (str(machine.data), True, ["chest_xray"])
    defaults = {d["dataset"]: (d["folder"], d["exists"]) for d in data["datasets"]}
    assert defaults["kermany"] == ("chest_xray", True)
    assert defaults["lung_xray"] == ("lung_xray", False) and defaults["chestxray14"] == ("chestxray14", False)
    assert "synthetic_cxr" not in defaults  # reads no folder

    plugins = {p["name"]: p for p in report["plugins"]["plugins"]}
    assert plugins["boom_plugin"]["error"] == "register_models raised RuntimeError: boom"
    assert plugins["boom_plugin"]["hooks"] == ["register_models"]
    assert all(p["error"] is None for p in plugins.values() if p["builtin"])
    assert report["plugins"]["counts"]["models"] == len(machine.registry.models)


def test_doctor_reports_pydicom_and_its_decoders(machine, capsys):
    pydicom = pytest.importorskip("pydicom")
    assert main(["doctor", "--json"]) == 0
    dicom = json.loads(capsys.readouterr().out)["dicom"]
    assert dicom["version"] == pydicom.__version__
    assert "pydicom" in dicom["pixel_handlers"]["RLELossless"]  # pydicom's own RLE decoder is always there


def test_doctor_tables(machine, capsys):
    assert main(["doctor"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"$CXRBENCH_DATA = {machine.data}: folders chest_xray" in out
    assert f"{machine.cache}: 2 files, 1.3 KiB" in out
    assert "boom_plugin" in out and "register_models raised RuntimeError: boom" in out


def test_doctor_without_data_or_cache_and_with_a_broken_registry(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CXRBENCH_DATA", raising=False)
    monkeypatch.setenv("CXRBENCH_CACHE", str(tmp_path / "never-made"))

    def broken():
        raise PluginError("model 'x' is registered twice: by plugin 'a' and by plugin 'b'")

    monkeypatch.setattr("cxrbench.plugins.get_registry", broken)
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["plugins"] == {"plugins": [], "error": "model 'x' is registered twice: by plugin 'a' and by "
                                                         "plugin 'b'", "counts": {}}
    assert report["cache"]["exists"] is False and report["cache"]["files"] == report["cache"]["bytes"] == 0
    assert report["data"] == {"env": "CXRBENCH_DATA", "path": None, "exists": False, "folders": [], "datasets": []}


def test_data_status_names_which_default_folders_exist(tmp_path):
    (tmp_path / "chest_xray").mkdir()
    (tmp_path / "medmnist").mkdir()
    specs = {"kermany": SimpleNamespace(default_folder="chest_xray"),
             "lung_xray": SimpleNamespace(default_folder="lung_xray"),
             "synthetic_cxr": SimpleNamespace(default_folder=None)}
    status = data_status(specs, {"CXRBENCH_DATA": str(tmp_path)})
    assert status["folders"] == ["chest_xray", "medmnist"]
    assert status["datasets"] == [{"dataset": "kermany", "folder": "chest_xray", "exists": True},
                                  {"dataset": "lung_xray", "folder": "lung_xray", "exists": False}]
    assert data_status(specs, {"CXRBENCH_DATA": str(tmp_path / "gone")})["exists"] is False


def test_folder_size_counts_files_not_link_targets(tmp_path):
    (tmp_path / "a").write_bytes(b"1" * 10)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"2" * 5)
    big = tmp_path.parent / f"{tmp_path.name}-big"
    big.write_bytes(b"3" * 10_000)
    (tmp_path / "link").symlink_to(big)
    files, size = folder_size(tmp_path)
    assert files == 3 and size == 15 + os.lstat(tmp_path / "link").st_size
