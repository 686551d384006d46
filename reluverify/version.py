"""The version of reluverify, in a module of its own so that any module may read it without
importing the package's lazy attributes (:mod:`reluverify.api`)."""

__version__ = "0.1.0"
