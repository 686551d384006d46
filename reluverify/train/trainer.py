"""Train one network of a task, reproducibly, on CUDA when present and CPU otherwise.

Reproducibility: the model is initialised on the CPU from ``torch.manual_seed(seed)``
and then moved to the device; mini-batches are drawn from a CPU generator seeded
with ``seed``; deterministic algorithms are switched on for the run (and restored
after; on CUDA with ``CUBLAS_WORKSPACE_CONFIG=:4096:8``). So the same options on the
same device give the same weights, and CPU and CUDA runs start from the same network
and see the same batches (their float rounding differs, so their weights differ
slightly). The model card's command therefore names the device the run used, never
``auto``.

The loss is cross-entropy on the model's logits with the chosen softmax
regularisation; every parameter group's learning rate follows a cosine schedule,
``lr_e = lr * (1 + cos(pi e / epochs)) / 2`` at epoch ``e``.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from reluverify.train.optimizers import OptimizerOptions, build_optimizer
from reluverify.train.regularised_softmax import SoftmaxRegularisation, regularised_cross_entropy
from reluverify.train.tasks import DEFAULT_ACAS_SAMPLES, TASKS, Task


@dataclass(frozen=True)
class TrainOptions:
    """Everything a training run depends on; the model card records all of it."""

    task: str
    hidden: tuple[int, ...]
    epochs: int
    batch_size: int
    optimizer: OptimizerOptions = field(default_factory=OptimizerOptions)
    softmax: SoftmaxRegularisation = field(default_factory=SoftmaxRegularisation)
    seed: int = 0
    device: str = "auto"
    samples: int = DEFAULT_ACAS_SAMPLES  # training-set size of acas-like (the digits have a fixed size)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; known: {', '.join(TASKS)}")
        if self.epochs < 1 or self.batch_size < 1 or self.samples < 1:
            raise ValueError("epochs, batch size and samples must be positive")
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError("hidden sizes must be positive")
        TASKS[self.task].check_hidden(self.hidden)
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")


@dataclass
class TrainResult:
    """The trained model (on the CPU, in eval mode) and what was measured."""

    model: torch.nn.Module
    task: Task
    data: dict  # the data set's description (LabelledSplit.description)
    metrics: dict
    device: str
    """The device type the training ran on: ``cpu`` or ``cuda`` (``auto`` resolved)."""
    seconds: float
    """Wall time of the training loop (model built, moved to the device, trained, moved back)."""
    epoch_losses: list[float]
    device_name: str = ""


def cuda_unavailable_reason() -> str | None:
    """Why ``--device cuda`` cannot run here, with the fix, in one line; None when it can."""
    if torch.cuda.is_available():
        return None
    if torch.version.cuda is None:
        return (f"torch {torch.__version__} is a CPU-only build, so it sees no CUDA device: install a CUDA build "
                "of torch on a machine with an NVIDIA GPU, or use --device cpu (or auto)")
    return (f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device: check the GPU and its "
            "driver (nvidia-smi) and CUDA_VISIBLE_DEVICES, or use --device cpu (or auto)")


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when available, else CPU; ``cuda`` without a usable GPU is an error saying why."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda":
        reason = cuda_unavailable_reason()
        if reason is not None:
            raise RuntimeError(reason)
    return torch.device(name)


def device_name(device: torch.device) -> str:
    """The GPU's name (``NVIDIA H100 80GB HBM3``) or the CPU's, for the model card."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            name = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), name)
    except OSError:
        pass
    return name


@contextlib.contextmanager
def one_thread():
    """Run torch's CPU operations on one intra-op thread, then restore the previous count.

    These networks are far too small to gain from more threads; on a shared machine
    two threads made a training step 10-50x slower. A fixed count also fixes the
    order of float reductions.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def deterministic(seed: int):
    """Seed torch, switch on deterministic algorithms and use one CPU thread for a run (all restored after)."""
    previous = torch.are_deterministic_algorithms_enabled()
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it for determinism
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    try:
        with one_thread():
            yield
    finally:
        torch.use_deterministic_algorithms(previous)


def train(options: TrainOptions, progress: bool = False) -> TrainResult:
    """Train the task's model with ``options``; ``progress`` shows a bar on stderr."""
    from tqdm import tqdm

    task = TASKS[options.task]
    split = task.load(options.samples)
    classes = int(max(split.train_labels.max(), split.test_labels.max())) + 1
    device = resolve_device(options.device)
    started = time.perf_counter()
    with deterministic(options.seed):
        model = task.build(split.features, classes, options.hidden, options.softmax.logit_bn_scale)
        model.to(device)
        optimizer = build_optimizer(model, options.optimizer)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda epoch: 0.5 * (1.0 + math.cos(math.pi * epoch / options.epochs))
        )
        inputs = torch.from_numpy(split.train_inputs).to(device)
        labels = torch.from_numpy(split.train_labels).to(device)
        order = torch.Generator(device="cpu").manual_seed(options.seed)
        n = inputs.shape[0]
        epoch_losses: list[float] = []
        bar = tqdm(range(options.epochs), desc=f"train {task.name}", unit="epoch", disable=not progress, file=sys.stderr)
        for _ in bar:
            model.train()
            permutation = torch.randperm(n, generator=order).to(device)
            total = torch.zeros((), device=device)
            for start in range(0, n, options.batch_size):
                batch = permutation[start : start + options.batch_size]
                optimizer.zero_grad(set_to_none=True)
                loss = regularised_cross_entropy(model.logits(inputs[batch]), labels[batch], options.softmax)
                loss.backward()
                optimizer.step()
                total += loss.detach() * batch.numel()
            schedule.step()
            epoch_losses.append(float(total) / n)
            bar.set_postfix(loss=f"{epoch_losses[-1]:.4f}", refresh=False)
        model.to("cpu").eval()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    metrics = evaluate(model, task, split)
    metrics["final_train_loss"] = epoch_losses[-1]
    return TrainResult(model, task, split.description, metrics, device.type, seconds, epoch_losses, device_name(device))


def scores(model: torch.nn.Module, inputs: np.ndarray) -> np.ndarray:
    """The model's output (what the ONNX export computes) for flat float inputs, in eval mode."""
    with torch.no_grad():
        return model(torch.as_tensor(np.asarray(inputs, dtype=np.float32))).double().numpy()


def evaluate(model: torch.nn.Module, task: Task, split) -> dict:
    """Held-out (and training) agreement of the model's decisions with the labels."""
    out = {}
    for part, x, y in (("train", split.train_inputs, split.train_labels), ("test", split.test_inputs, split.test_labels)):
        predicted = task.predictions(scores(model, x))
        out[f"{part}_accuracy"] = float(np.mean(predicted == y))
        if part == "test":
            out["test_correct"] = int(np.sum(predicted == y))
            out["test_size"] = int(len(y))
            out["test_accuracy_by_class"] = [
                float(np.mean(predicted[y == c] == c)) if np.any(y == c) else None for c in range(int(y.max()) + 1)
            ]
    return out
