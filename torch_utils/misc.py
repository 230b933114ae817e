"""Small tensor helpers shared by the networks and ops: shape assertions."""

from collections.abc import Sequence

import torch


# Check that `tensor` has len(shape) dims and that each dim matches; None in `shape` matches any size.
def assert_shape(tensor: torch.Tensor, shape: Sequence[int | torch.Tensor | None], name: str = "tensor") -> None:
    actual = list(tensor.shape)
    wanted = ["*" if s is None else int(s) for s in shape]
    if len(actual) != len(wanted):
        raise AssertionError(
            f"{name}: expected {len(wanted)} dimensions with shape {wanted}, got {len(actual)} with shape {actual}"
        )
    for dim, (size, ref) in enumerate(zip(actual, wanted, strict=True)):
        if ref != "*" and size != ref:
            raise AssertionError(f"{name}: wrong size for dimension {dim}: got {size}, expected {ref} "
                                 f"(shape {actual}, expected {wanted}, '*' = any)")
