"""ND-Adam vs Adam vs SGD on the digits MLP: held-out accuracy over several seeds.

Usage::

    python benchmarks/optimizers.py [--seeds 0 1 2] [--epochs 60] [--hidden 32,32] [--task mlp]
                                    [--device auto] [--csv results/optimizers.csv]

Each optimizer runs with its default learning rate (``reluverify.train.optimizers.DEFAULT_LR``,
``--lr-sphere`` 0.05 for ND-Adam), the same architecture, epochs, batch size, softmax
regularisation (logit L2, lambda 1e-3), cosine schedule and seeds. It prints a table
(mean, min and max test accuracy, train accuracy, final training loss, seconds per run)
and writes one CSV row per run. This is a benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys

from reluverify.train.optimizers import OPTIMIZERS, OptimizerOptions
from reluverify.train.tasks import TASKS
from reluverify.train.trainer import TrainOptions, train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("mlp", "sru"), default="mlp")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="default: the task's")
    parser.add_argument("--hidden", default=None, help="comma-separated hidden sizes; default: the task's")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--csv", default="results/optimizers.csv", help="where to write one row per run (results/ is git-ignored)")
    args = parser.parse_args(argv)

    task = TASKS[args.task]
    hidden = tuple(int(h) for h in args.hidden.split(",")) if args.hidden else task.default_hidden
    epochs = args.epochs or task.default_epochs
    rows = []
    for name in OPTIMIZERS:
        for seed in args.seeds:
            options = TrainOptions(
                task=task.name, hidden=hidden, epochs=epochs, batch_size=task.default_batch_size,
                optimizer=OptimizerOptions(name=name), seed=seed, device=args.device,
            )
            result = train(options)
            rows.append({
                "task": task.name, "hidden": ",".join(map(str, hidden)), "optimizer": name,
                "lr": options.optimizer.learning_rate,
                "lr_sphere": options.optimizer.lr_sphere if name == "nd-adam" else "",
                "epochs": epochs, "seed": seed, "device": result.device,
                "test_accuracy": result.metrics["test_accuracy"], "train_accuracy": result.metrics["train_accuracy"],
                "final_train_loss": result.metrics["final_train_loss"], "seconds": round(result.seconds, 2),
            })
            print(f"  {name:<8} seed {seed}: test {result.metrics['test_accuracy']:.2%} ({result.seconds:.1f} s)",
                  file=sys.stderr)

    os.makedirs(os.path.dirname(os.path.abspath(args.csv)), exist_ok=True)
    with open(args.csv, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    print(f"{task.summary}: {' -> '.join(map(str, hidden))} hidden, {epochs} epochs, seeds {args.seeds}, "
          f"device {rows[0]['device']}")
    print("| optimizer | lr | test acc. mean | min | max | train acc. | final loss | s / run |")
    print("|---|---|---|---|---|---|---|---|")
    for name in OPTIMIZERS:
        runs = [r for r in rows if r["optimizer"] == name]
        test = [r["test_accuracy"] for r in runs]
        lr = f"{runs[0]['lr']:g}" + (f" (sphere {runs[0]['lr_sphere']:g})" if name == "nd-adam" else "")
        print(f"| {name} | {lr} | {statistics.mean(test):.2%} | {min(test):.2%} | {max(test):.2%} | "
              f"{statistics.mean(r['train_accuracy'] for r in runs):.2%} | "
              f"{statistics.mean(r['final_train_loss'] for r in runs):.4f} | "
              f"{statistics.mean(r['seconds'] for r in runs):.1f} |")
    print(f"rows: {args.csv}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
