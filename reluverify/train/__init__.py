"""Training the networks reluverify ships: optimizers, layers, models, data, ONNX export.

Everything here needs the ``train`` extra (torch, scikit-learn); the rest of
reluverify never imports this package, so the verifier runs without torch.

One job per module, one direction of flow::

    digits / acas_like (data) --> models (sru) --> trainer (optimizers: nd_adam,
    regularised_softmax) --> export (ONNX, checked against torch) --> model_card

``tasks`` ties a task name of ``reluverify train`` to its data, model and metric.
"""
