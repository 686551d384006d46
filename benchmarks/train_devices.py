"""GPU against CPU training: each shipped network's model-card command, run on every device, timed and scored.

Usage::

    python benchmarks/train_devices.py [--networks digits_mlp acas_like digits_sru] [--devices cpu cuda]
                                       [--csv results/train_devices.csv] [--record]

For each network (default: the three training tasks' shipped networks) the card's ``command``
runs again with ``--device`` set to each device (``cuda`` only where torch sees one; a device
asked for but missing is reported, not run), writing into a temporary folder, never over the
shipped files. It prints one row per run -- device and its name, training seconds, held-out
score, and whether the ONNX file is byte-identical to the shipped one (expected on the device
and software the card names; CPU and CUDA round differently) -- and writes them as CSV.
``--record`` also stores the rows in each shipped card under ``"device_runs"`` (the ONNX files
are left alone). This is a benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shlex
import sys
import tempfile
from contextlib import redirect_stdout
from datetime import date
from pathlib import Path

NETWORKS = Path(__file__).resolve().parents[1] / "networks"


def run_card_command(card: dict, device: str, folder: str) -> dict:
    """Train with the card's command on ``device`` into ``folder``; the new card."""
    from reluverify.cli import main

    words = shlex.split(card["command"])[1:]
    words[words.index("--device") + 1] = device
    out = os.path.join(folder, f"{card['name']}-{device}.onnx")
    words[words.index("--out") + 1] = out
    with redirect_stdout(io.StringIO()):
        status = main([*words, "--no-progress"])
    if status != 0:
        raise RuntimeError(f"{card['name']} on {device}: exit status {status}")
    with open(os.path.splitext(out)[0] + ".json") as handle:
        return json.load(handle)


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+", default=["digits_mlp", "acas_like", "digits_sru"])
    parser.add_argument("--devices", nargs="+", choices=("cpu", "cuda"), default=["cpu", "cuda"])
    parser.add_argument("--csv", default="results/train_devices.csv", help="one row per run (results/ is git-ignored)")
    parser.add_argument("--record", action="store_true", help="store the rows in the shipped cards ('device_runs')")
    args = parser.parse_args(argv)

    devices = [d for d in args.devices if d == "cpu" or torch.cuda.is_available()]
    for missing in sorted(set(args.devices) - set(devices)):
        print(f"{missing}: not run (torch {torch.__version__} sees no CUDA device)", file=sys.stderr)
    rows = []
    with tempfile.TemporaryDirectory(prefix="train-devices-") as folder:
        for name in args.networks:
            card_file = NETWORKS / f"{name}.json"
            card = json.loads(card_file.read_text())
            runs = []
            for device in devices:
                print(f"  {name} on {device} ...", file=sys.stderr, flush=True)
                new = run_card_command(card, device, folder)
                runs.append({
                    "device": device,
                    "device_name": new["training"]["device_name"],
                    "seconds": new["training"]["seconds"],
                    "metric": new["metric"],
                    "test_accuracy": new["metrics"]["test_accuracy"],
                    "onnx_sha256": new["onnx_sha256"],
                    "same_as_shipped": new["onnx_sha256"] == card["onnx_sha256"],
                    "torch": new["software"]["torch"],
                    "cuda": new["software"].get("cuda"),
                })
            rows += [{"network": name, **run} for run in runs]
            if args.record and runs:
                card["device_runs"] = {"date": date.today().isoformat(), "command": card["command"], "runs": runs}
                card_file.write_text(json.dumps(card, indent=2) + "\n")

    if rows:
        os.makedirs(os.path.dirname(os.path.abspath(args.csv)), exist_ok=True)
        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    print("| network | device | device name | training s | held-out score | same bytes as shipped |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['network']} | {row['device']} | {row['device_name']} | {row['seconds']:.1f} | "
              f"{row['test_accuracy']:.2%} ({row['metric']}) | {'yes' if row['same_as_shipped'] else 'no'} |")
    if rows:
        print(f"rows: {args.csv}" + ("; recorded in the cards (device_runs)" if args.record else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
