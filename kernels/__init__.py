"""Triton implementations of ``vidrl.ops`` primitives, registered through ``register_kernels``.

The kernels themselves are the subject of issue 5; the package exists so the layout, the
packaging test and the import rules (only this package may import triton) are in place.
"""
