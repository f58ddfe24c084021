"""The fast data path end to end: determinism across workers and eval batch sizes, no per-step sync,
precision / compile, and one job per GPU (scheduling checked with a fake GPU count)."""

from __future__ import annotations

import threading
import time
import warnings

from types import SimpleNamespace

import pytest
import torch

from cxrbench.engine.executors.local import LocalExecutor, gpu_slots
from cxrbench.engine.jobs.kernel import Job
from cxrbench.engine.progress import RichProgress
from cxrbench.engine.runner import run_suite
from cxrbench.suite.schema import ModelEntry

AUGMENT = [{"name": "random_resized_crop", "scale": [0.5, 1.0]}, {"name": "hflip"}, {"name": "rotation", "degrees": 5}]
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _run(suite, tmp_path, device="cpu"):
    out = run_suite(suite, results_root=tmp_path / "results", device=device)
    assert [r.status for r in out.records] == ["ok"], [r.error for r in out.records]
    return out.records[0]


def test_same_seed_same_metrics_for_0_and_2_workers_and_two_eval_batch_sizes(suite_file, tmp_path):
    ref = _run(suite_file(augment=AUGMENT, input={"workers": 0}, train={"epochs": 2, "eval_batch_size": 7}),
               tmp_path)
    assert ref.runtime["resampler"] == "torchvision" and ref.runtime["precision"] == "fp32"
    for workers, eval_bs in ((2, 7), (0, 32), (2, 32)):
        rec = _run(suite_file(augment=AUGMENT, input={"workers": workers},
                              train={"epochs": 2, "eval_batch_size": eval_bs}), tmp_path)
        assert rec.curves["train_loss"] == ref.curves["train_loss"], (workers, eval_bs)
        for name, value in ref.metrics.items():
            assert rec.metrics[name] == pytest.approx(value, abs=1e-6), (workers, eval_bs, name)


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_progress_reads_the_loss_at_most_four_times_a_second():
    clock = _Clock()
    progress = RichProgress(clock=clock)
    reads = []

    class Loss:
        def __float__(self):
            reads.append(clock.t)
            return 0.5

    with progress:
        progress.start_jobs(1)
        progress.start_job("j", 1)
        progress.start_epoch(1, 100)
        for _ in range(100):  # 100 batches in one simulated second
            progress.advance_batch(Loss())
            clock.t += 0.01
    assert len(reads) == 4 and all(b - a >= 0.25 - 1e-9 for a, b in zip(reads, reads[1:]))


def test_bf16_on_cpu_trains_close_to_fp32_and_is_recorded(suite_file, tmp_path):
    fp32 = _run(suite_file(train={"epochs": 1}), tmp_path)
    bf16 = _run(suite_file(train={"epochs": 1, "precision": "bf16"}), tmp_path)
    assert bf16.runtime["precision"] == "bf16" and not bf16.runtime["grad_scaler"]
    assert bf16.curves["train_loss"][0] == pytest.approx(fp32.curves["train_loss"][0], rel=0.05)
    assert bf16.curves["train_loss"] != fp32.curves["train_loss"]


def test_compile_failure_falls_back_to_eager_with_the_same_results(suite_file, tmp_path, monkeypatch):
    eager = _run(suite_file(train={"epochs": 1}), tmp_path)

    def broken(model, *a, **k):
        def call(x):
            raise RuntimeError("inductor exploded")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    rec = _run(suite_file(train={"epochs": 1, "compile": True}), tmp_path)
    assert rec.runtime["compile"] == "failed: RuntimeError"
    assert rec.curves["train_loss"] == eager.curves["train_loss"] and rec.metrics == eager.metrics


@pytest.mark.slow
def test_compile_gives_the_same_metrics_within_tolerance(suite_file, tmp_path):
    eager = _run(suite_file(train={"epochs": 1}), tmp_path)
    rec = _run(suite_file(train={"epochs": 1, "compile": True}), tmp_path)
    assert rec.runtime["compile"] == "on"
    assert rec.curves["train_loss"][0] == pytest.approx(eager.curves["train_loss"][0], rel=1e-3)
    for name, value in eager.metrics.items():
        assert rec.metrics[name] == pytest.approx(value, abs=0.02), name


def test_gpu_slots():
    assert gpu_slots(torch.device("cuda"), 3) == [torch.device("cuda", i) for i in range(3)]
    assert gpu_slots(torch.device("cuda", 1), 3) == [torch.device("cuda", 1)]
    assert gpu_slots(torch.device("cpu"), 4) == [torch.device("cpu")]


def test_local_executor_runs_one_job_per_gpu_at_once(monkeypatch):
    """Scheduling with 2 fake GPUs: both busy at once, never two jobs on one, every job once, epochs
    delivered on the driver thread."""
    running: dict[str, int] = {}
    log: list[tuple[str, str]] = []
    peak = [0]
    lock = threading.Lock()

    def fake_attempt(self, ctx, job, device, on_epoch):
        with lock:
            running[str(device)] = running.get(str(device), 0) + 1
            assert running[str(device)] == 1, f"two jobs on {device}"
            peak[0] = max(peak[0], sum(running.values()))
            log.append((job.id, str(device)))
        on_epoch(job.id, 1, {"epoch": 1})
        time.sleep(0.2)
        with lock:
            running[str(device)] -= 1
        return SimpleNamespace(job_id=job.id)

    monkeypatch.setattr(LocalExecutor, "_attempt", fake_attempt)
    progress, epochs = Recorder(), []
    ctx = SimpleNamespace(device=torch.device("cuda"), progress=progress,
                          suite=SimpleNamespace(model_train=lambda entry: SimpleNamespace(epochs=3)),
                          on_epoch_end=lambda job, epoch, logs: epochs.append((job, threading.current_thread())))
    jobs = [Job(ModelEntry(name="lenet", label=f"m{i}"), 0, 0) for i in range(5)]
    executor = LocalExecutor(device_count=lambda: 2)
    done = [(job.id, record.job_id) for job, record in executor.run(jobs, ctx)]
    assert sorted(done) == sorted((j.id, j.id) for j in jobs) and len(log) == 5
    assert peak[0] == 2 and {d for _, d in log} == {"cuda:0", "cuda:1"}
    assert executor.stats["devices"] == ["cuda:0", "cuda:1"]
    assert len(epochs) == 5 and {t for _, t in epochs} == {threading.main_thread()}
    assert progress.calls[0] == ("queue_jobs", 5, "2 GPUs") and sum(c[0] == "job_started" for c in progress.calls) == 5
    assert ("job_epoch", jobs[0].id, 1, 3) in progress.calls


class Recorder:
    def __init__(self):
        self.calls: list[tuple] = []

    def queue_jobs(self, jobs, where=""):
        self.calls.append(("queue_jobs", len(jobs), where))

    def job_started(self, job, node, attempt=1):
        self.calls.append(("job_started", job, node))

    def job_epoch(self, job, epoch, epochs=None):
        self.calls.append(("job_epoch", job, epoch, epochs))


@CUDA
def test_cuda_training_epoch_syncs_with_the_host_once(suite_file, tmp_path, monkeypatch):
    """torch's sync debug mode warns on every synchronising call: one per epoch (the loss read)."""
    from cxrbench.engine.trainer import Trainer

    original, counts = Trainer._train_epoch, []

    def watched(self, *a, **k):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                return original(self, *a, **k)
            finally:
                torch.cuda.set_sync_debug_mode("default")
                counts.append(sum("synchroniz" in str(w.message) for w in caught))

    monkeypatch.setattr(Trainer, "_train_epoch", watched)
    rec = _run(suite_file(augment=AUGMENT, input={"workers": 2}, train={"epochs": 2}), tmp_path, device="cuda")
    assert rec.runtime["device"].startswith("cuda")
    assert counts and max(counts) <= 1, counts


@CUDA
def test_cuda_run_uses_kornia_bf16_and_channels_last(suite_file, tmp_path):
    pytest.importorskip("kornia")
    rec = _run(suite_file(augment=AUGMENT, train={"epochs": 2}), tmp_path, device="cuda")
    assert rec.runtime["resampler"] == "kornia" and rec.runtime["channels_last"]
    assert rec.runtime["precision"] == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
