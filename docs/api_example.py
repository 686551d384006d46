"""The Python API on the networks reluverify ships (run from the repository root).

One network is loaded once and several properties are checked on it; every check returns a
result object with the verdict, the counterexample (if any), statistics and the time.
"""

from reluverify import Verifier

verifier = Verifier("networks/digits_mlp.onnx", timeout=60)
point = "networks/digits_point0.json"  # a held-out 8x8 digit; the file carries its domain [0, 1]

# Def. 1, delta-local robustness: the label of the point (computed: 2) cannot change
result = verifier.local_robustness(point, delta=0.02)
print(result.verdict, result.label, f"{result.seconds:.2f} s")  # robust 2 ...

result = verifier.local_robustness(point, delta=0.1, norm="1")  # the L1 ball
print(result.verdict)  # robust

result = verifier.local_robustness(point, delta=0.2)
print(result.verdict, "-", result.counterexample.violated)  # not robust - label ... scores >= label 2
print(f"distance {result.counterexample.distance:.3f}, outputs {result.counterexample.outputs.round(2)}")

# Def. 3, (delta, eps)-local robustness: no score moves by eps or more
result = verifier.eps_robustness(point, delta=0.01, epsilon=0.5)
print(result.verdict)  # robust

# the largest delta for which Def. 1 holds, to 1e-3
search = verifier.max_delta(point, precision=1e-3)
print(f"certified {search.certified:.4f}, counterexample at {search.refuted:.4f}")

# Def. 2, (delta, eps)-global robustness on a box: two copies of the 300-ReLU ACAS-like network
acas = Verifier("networks/acas_like.onnx")
result = acas.global_robustness(([0.09] * 5, [0.11] * 5), delta=0.005, epsilon=0.5)
print(result.verdict, f"{result.seconds:.2f} s")  # robust

# the certified robust accuracy on ten held-out digits with their true labels, per delta (as
# `reluverify verify networks/digits_mlp.onnx --points networks/digits_points10.json --delta 0.01 0.05`)
accuracy = verifier.certified_accuracy("networks/digits_points10.json", deltas=[0.01, 0.05], domain=(0, 1))
print(accuracy.summary())  # delta 0.01 ... 100.0% (10/10) ... / delta 0.05 ... 90.0% (9/10) ...
at = accuracy.at(0.05)
print(at.certified, at.robust, at.not_robust, at.misclassified, at.unknown, at.total, at.accuracy)  # 9 9 1 0 0 10 0.9
