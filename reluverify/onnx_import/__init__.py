"""ONNX import: trace an ONNX graph into a :class:`~reluverify.network.Network`.

Every tensor of the graph is traced either as a constant (a numpy array) or as an affine
function of the outputs of earlier nonlinear IR nodes (the network input, activations,
products), held densely or structured (:mod:`.values` explains the two forms and the
size rule between them). Linear operators (MatMul, Gemm, Add/Sub, Mul/Div by constants,
Flatten, Reshape, Transpose, Conv, ConvTranspose, BatchNormalization, Pad, AveragePool, Slice,
Concat, ReduceSum, ...) transform that function; a nonlinear operator (Relu, Sigmoid, Tanh, the product of
two traced tensors) closes it into an IR affine node followed by the nonlinear node. So
input normalisation (Sub/Div before the first layer) and chains of linear operators fold
into single affine layers by construction. Products, quotients and matrix products of two traced
tensors, powers and mid-graph Softmax are built from product nodes and activations (:mod:`.products`,
:mod:`.softmax`). MaxPool is lowered exactly to ReLUs
(:func:`.pooling.op_maxpool`), as are Clip, LeakyRelu, Max and Min (:mod:`.piecewise`). The part
of the graph that does not depend on the input (shape and index arithmetic) is evaluated before
tracing (:mod:`.folding`).

The modules:

* :mod:`.values` -- the constant, :class:`~.values.Affine` and :class:`~.values.Linear`
  forms of a traced value and the algebra operators build on (add, multiply, move, ...);
* :mod:`.registry` -- each operator registered once with the attributes it accepts;
* :mod:`.folding` -- the nodes that do not depend on the input, evaluated once with onnxruntime;
* :mod:`.tracer` -- :func:`load_onnx` and the graph walk;
* :mod:`.final_softmax` -- the last Softmax or LogSoftmax of a classifier, dropped when the caller allows;
* one module per operator family: :mod:`.arithmetic`, :mod:`.shapes`, :mod:`.convolution`,
  :mod:`.pooling`, :mod:`.activations` (Relu, Sigmoid, Tanh, Sin, Cos, Exp, Log, Sqrt, Reciprocal, Sign,
  Floor), :mod:`.products` (traced Mul, Div, MatMul; Pow), :mod:`.softmax` (Softmax, LogSoftmax),
  :mod:`.piecewise` (Clip, LeakyRelu, Max, Min, Abs as ReLUs),
  :mod:`.reductions` (ReduceSum, ReduceMean), :mod:`.selection` (Expand, Where),
  :mod:`.resizing` (Upsample, Resize).

Adding an operator is one function in its family's module, registered with
``@operator("Name", attributes=(...))``, and one test. Anything else is refused with
:class:`~reluverify.errors.NetworkError`, one line that names the node and the problem.
"""

from reluverify.onnx_import import (  # noqa: F401 - registers
    activations,
    arithmetic,
    convolution,
    piecewise,
    pooling,
    products,
    reductions,
    resizing,
    selection,
    shapes,
    softmax,
)
from reluverify.onnx_import.tracer import load_onnx
from reluverify.onnx_import.values import DENSE_LIMIT

__all__ = ["DENSE_LIMIT", "load_onnx"]
