"""Pure-torch reference primitives. Accelerated versions register through ``register_kernels``
under the same names and honour the same contracts."""

from vidrl.ops.advantages import group_advantages, group_index, group_stats

__all__ = ["group_advantages", "group_index", "group_stats"]
