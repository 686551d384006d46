"""``reluverify train {mlp,sru,acas-like} --out networks/NAME.onnx``: train, export, check, write a model card.

Needs the ``train`` extra (torch, scikit-learn); torch is imported inside the
handler so ``reluverify --help`` stays fast. The model card (``NAME.json``) records
:func:`canonical_command`, the full command line with every option spelled out,
so a network can be rebuilt from its card even if a default changes later.
"""

from __future__ import annotations

import argparse
import os
import shlex

TASK_NAMES = ("mlp", "sru", "acas-like")  # reluverify.train.tasks.TASKS, without importing torch


def _hidden(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer sizes such as 32,32, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"layer sizes must be positive, got {text!r}")
    return sizes


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a small network (digits MLP, digits SRU, ACAS-like) and export it to ONNX with a model card",
        description=(
            "Train a network reluverify can verify, export it to ONNX (checked against torch with onnxruntime "
            "and reluverify's importer) and write a model card NAME.json beside NAME.onnx. Needs the 'train' "
            "extra (torch, scikit-learn). Uses CUDA when available with --device auto."
        ),
        epilog=(
            "tasks: mlp = ReLU MLP on scikit-learn's 8x8 digits (default --hidden 32,32, 60 epochs, nd-adam); "
            "sru = SRU reading the digits row by row (default --hidden 16, 100 epochs, adam); "
            "acas-like = 5 -> 6x50 ReLU -> 5 on a synthetic ACAS Xu-like advisory function with ACAS Xu's input "
            "normalisation (default 30 epochs, batch 256, 200000 samples, nd-adam). "
            "Default learning rates: nd-adam 0.01 (Adam part) and --lr-sphere 0.05, adam 0.003, sgd 0.1."
        ),
    )
    parser.add_argument("task", choices=TASK_NAMES, help="what to train")
    parser.add_argument("--out", required=True, help="ONNX file to write; the model card goes beside it as NAME.json")
    parser.add_argument("--optimizer", choices=("nd-adam", "adam", "sgd"), help="default: the task's")
    parser.add_argument("--epochs", type=_positive_int, help="default: the task's")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: CUDA when available (default); the model card's command names the device used")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation and batch order (default 0)")
    parser.add_argument("--hidden", type=_hidden, help="hidden layer sizes, comma-separated (SRU: one hidden size)")
    parser.add_argument("--batch-size", type=_positive_int, help="default: the task's")
    parser.add_argument("--lr", type=float, help="learning rate (nd-adam: of the parameters not on the sphere)")
    parser.add_argument("--lr-sphere", type=float, help="nd-adam: learning rate of the unit-norm weight vectors (default 0.05)")
    parser.add_argument("--momentum", type=float, default=0.9, help="sgd: Nesterov momentum (default 0.9)")
    parser.add_argument("--weight-decay", type=float, default=0.0, help="L2 weight decay, never on unit-norm vectors (default 0)")
    parser.add_argument("--softmax", choices=("none", "logit-l2", "bn"), default="logit-l2",
                        help="softmax regularisation of the ND-Adam paper (default logit-l2)")
    parser.add_argument("--logit-l2", type=float, default=1e-3, help="logit-l2: lambda of lambda/2 ||logits||^2 (default 0.001)")
    parser.add_argument("--bn-scale", type=float, default=2.5, help="bn: fixed scale gamma of the batch-normalised logits (default 2.5)")
    parser.add_argument("--samples", type=_positive_int, help="acas-like: training inputs (default 200000)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def options_from_args(args):
    """The TrainOptions that ``args`` ask for, task defaults filled in."""
    from reluverify.train.optimizers import DEFAULT_LR, DEFAULT_LR_SPHERE, OptimizerOptions
    from reluverify.train.regularised_softmax import SoftmaxRegularisation
    from reluverify.train.tasks import DEFAULT_ACAS_SAMPLES, TASKS
    from reluverify.train.trainer import TrainOptions

    task = TASKS[args.task]
    name = args.optimizer or task.default_optimizer
    optimizer = OptimizerOptions(
        name=name,
        lr=DEFAULT_LR[name] if args.lr is None else args.lr,
        lr_sphere=DEFAULT_LR_SPHERE if args.lr_sphere is None else args.lr_sphere,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
    )
    return TrainOptions(
        task=task.name,
        hidden=args.hidden or task.default_hidden,
        epochs=args.epochs or task.default_epochs,
        batch_size=args.batch_size or task.default_batch_size,
        optimizer=optimizer,
        softmax=SoftmaxRegularisation(kind=args.softmax, logit_l2=args.logit_l2, bn_scale=args.bn_scale),
        seed=args.seed,
        device=args.device,
        samples=args.samples or DEFAULT_ACAS_SAMPLES,
    )


def canonical_command(options, out: str, device: str | None = None) -> str:
    """``reluverify train ...`` with every option that affects the result spelled out.

    ``device`` is the device the run used (``cpu`` or ``cuda``): the command names it instead of
    ``auto``, so that it rebuilds the same weights wherever it is run, or fails saying why.
    """
    opt = options.optimizer
    words = ["reluverify", "train", options.task, "--hidden", ",".join(map(str, options.hidden)),
             "--optimizer", opt.name, "--lr", repr(opt.learning_rate)]
    if opt.name == "nd-adam":
        words += ["--lr-sphere", repr(opt.lr_sphere)]
    if opt.name == "sgd":
        words += ["--momentum", repr(opt.momentum)]
    words += ["--weight-decay", repr(opt.weight_decay), "--epochs", str(options.epochs),
              "--batch-size", str(options.batch_size), "--softmax", options.softmax.kind]
    if options.softmax.kind == "logit-l2":
        words += ["--logit-l2", repr(options.softmax.logit_l2)]
    if options.softmax.kind == "bn":
        words += ["--bn-scale", repr(options.softmax.bn_scale)]
    if options.task == "acas-like":
        words += ["--samples", str(options.samples)]
    words += ["--seed", str(options.seed), "--device", device or options.device, "--out", out]
    return shlex.join(words)


def run(args) -> int:
    from reluverify.errors import ReluverifyError

    try:
        import torch  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError as exc:
        raise ReluverifyError(f"training needs the 'train' extra ({exc.name} is missing): pip install 'reluverify[train]'") from None
    from reluverify.train.export import check_export, export_onnx
    from reluverify.train.model_card import build_card, card_path, write_card
    from reluverify.train.trainer import train

    if not args.out.endswith(".onnx"):
        raise ReluverifyError(f"--out must name an .onnx file, got {args.out!r}")
    if os.path.isdir(args.out):
        raise ReluverifyError(f"--out {args.out!r} is a directory")
    try:  # before training, not after it
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    except OSError as exc:
        raise ReluverifyError(f"cannot create the folder of {args.out}: {exc.strerror}") from None
    if args.device == "cuda":
        from reluverify.train.trainer import cuda_unavailable_reason

        reason = cuda_unavailable_reason()
        if reason is not None:
            raise ReluverifyError(f"--device cuda: {reason}")
    try:
        options = options_from_args(args)
    except ValueError as exc:
        raise ReluverifyError(str(exc)) from None
    result = train(options, progress=not args.no_progress)
    task = result.task
    # no file name or path in the file: the same weights give the same bytes wherever they are written
    doc = f"{task.summary}, trained by 'reluverify train {task.name}'; its model card (.json) lies beside it"
    try:
        export_onnx(result.model, args.out, doc=doc)
    except OSError as exc:
        raise ReluverifyError(f"cannot write {args.out}: {exc.strerror}") from None
    check = check_export(result.model, args.out, task.domain())
    card = build_card(options, result, args.out, check, canonical_command(options, args.out, result.device))
    write_card(card, card_path(args.out))

    m = result.metrics
    print(f"trained   {task.name}: {card['architecture']['shape']} with {options.optimizer.name}, {options.epochs} epochs, "
          f"seed {options.seed}, on {result.device} ({result.device_name}) in {result.seconds:.1f} s")
    print(f"{task.metric}  {m['test_accuracy']:.2%} ({m['test_correct']}/{m['test_size']} held-out); "
          f"train {m['train_accuracy']:.2%}")
    print(f"onnx      {args.out} ({os.path.getsize(args.out) / 1024:.1f} KiB); on {check.samples} random inputs "
          f"max relative difference from torch: onnxruntime {check.onnxruntime:.1e}, reluverify {check.reluverify:.1e}")
    print(f"card      {card_path(args.out)}")
    return 0
