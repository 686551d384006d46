"""``reluverify info NETWORK.onnx``: layers, shapes, ReLU count, input/output names.

A network with several input (output) tensors has one flat input (output) vector, the tensors' values
in graph order: ``info`` lists each tensor with the ``X_i`` (``Y_j``) it is in VNN-LIB's numbering
(``"inputs"`` / ``"outputs"`` in ``--json``, one entry per tensor for every network; ``"input"`` /
``"output"`` keep the joined names and the flat shape).

A network that ends in a Softmax or LogSoftmax over its classes is described without it (its
output is then the logits, and a ``softmax`` line says that only delta-local robustness, Def. 1,
is checked on it); the onnxruntime check compares the logits.
"""

from __future__ import annotations

import json


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "info",
        help="describe a network: layers, shapes, ReLU count, input and output names",
        description="Load an ONNX network, check it against onnxruntime on random inputs, and describe it.",
    )
    parser.add_argument("network", help="ONNX file")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument("--no-check", action="store_true", help="skip the comparison against onnxruntime")
    parser.set_defaults(handler=run)


def _tensors(names, shapes, offsets) -> list[dict]:
    """Each input (or output) tensor: its name, shape, size and first index in the flat vector."""
    return [{"name": name, "shape": list(shape), "size": end - start, "first": start}
            for name, shape, start, end in zip(names, shapes, offsets, offsets[1:])]


def run(args) -> int:
    import numpy as np

    from reluverify.onnx_import import load_onnx
    from reluverify.onnx_runtime import reference_for
    from reluverify.properties.common import network_info

    network = load_onnx(args.network, drop_final_softmax=True)
    report = {
        "file": args.network,
        "sha256": network.source_sha256,
        "input": {"name": network.input_name, "shape": list(network.input_shape), "size": network.input_size},
        "output": {"name": network.output_name, "shape": list(network.output_shape), "size": network.output_size},
        "inputs": _tensors(network.input_names, network.input_shapes, network.input_offsets),
        "outputs": _tensors(network.output_names, network.output_shapes, network.output_offsets),
        "activations": network.activation_counts,
        "relus": network.num_relus,
        "layers": network.describe_layers(),
    }
    if network.final_softmax:
        report["final_softmax"] = {"operator": network.final_softmax, "note": network_info(network)["note"]}
    try:
        chain = network.relu_chain()
        report["relu_chain"] = list(chain.layer_sizes)
        report["relu_chain_operators"] = chain.describe_layers()
    except Exception as exc:  # noqa: BLE001 - reported, not fatal: info describes any network
        report["relu_chain"] = None
        report["relu_chain_reason"] = str(exc)
    if not args.no_check:
        rng = np.random.default_rng(0)
        x = rng.uniform(-1.0, 1.0, size=(16, network.input_size))
        ours = network.evaluate(x)
        ref = reference_for(network)(x)
        scale = max(1.0, float(np.max(np.abs(ref))))
        report["max_relative_difference_vs_onnxruntime"] = float(np.max(np.abs(ours - ref)) / scale)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"network   {args.network}")
    print(f"sha256    {network.source_sha256}")
    for side, letter in (("input", "X"), ("output", "Y")):
        tensors = report[f"{side}s"]
        if len(tensors) == 1:
            name, shape = getattr(network, f"{side}_name"), tuple(getattr(network, f"{side}_shape"))
            print(f"{side:<9} {name!r} shape {shape} ({getattr(network, f'{side}_size')} values)")
            continue
        print(f"{side + 's':<9} {len(tensors)} tensors, {getattr(network, f'{side}_size')} values in all, in this order")
        for tensor in tensors:
            first, last = tensor["first"], tensor["first"] + tensor["size"] - 1
            print(f"  {tensor['name']!r} shape {tuple(tensor['shape'])} ({tensor['size']} values: "
                  f"{letter}_{first}..{letter}_{last})")
    if network.final_softmax:
        print(f"softmax   {report['final_softmax']['note']}; Def. 2, Def. 3 and VNN-LIB are refused")
    acts = ", ".join(f"{k} {v}" for k, v in network.activation_counts.items()) or "none"
    print(f"nonlinear {acts}")
    print(f"ReLUs     {network.num_relus}")
    if report["relu_chain"] is not None:
        sizes = report["relu_chain"] + [network.output_size]
        steps = [f"{size} ({op})" if op else str(size) for size, op in zip(sizes, report["relu_chain_operators"])]
        print(f"chain     {network.input_size} -> " + " -> ".join(steps))
    else:
        print(f"chain     not a ReLU chain ({report['relu_chain_reason']})")
    if "max_relative_difference_vs_onnxruntime" in report:
        difference = report["max_relative_difference_vs_onnxruntime"]
        if np.isfinite(difference):
            print(f"check     max |ours - onnxruntime| / scale = {difference:.2e} on 16 random inputs")
        else:
            print("check     onnxruntime's outputs are not finite on 16 random inputs (float32 overflow?)")
    print("layers")
    for row in report["layers"]:
        reads = ",".join(str(r) for r in row["reads"]) or "-"
        extra = f"  params {row['params']}" if "params" in row else ""
        extra += f"  ({row['operator']})" if "operator" in row else ""
        print(f"  {row['node']:>3}  {row['kind']:<8} size {row['size']:<6} reads {reads}{extra}")
    return 0
