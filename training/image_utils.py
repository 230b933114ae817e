"""Small image helpers: [-1,1] float <-> uint8 conversion and tiling images into a grid."""

import numpy as np
import torch


# Float images in [-1, 1] (any leading dims, channels at dim -3) -> uint8 in [0, 255].
def to_uint8(x: torch.Tensor) -> torch.Tensor:
    return (x.detach().float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)


# uint8 -> float in [-1, 1].
def to_float(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 127.5 - 1


# Tile uint8 images [N, C, H, W] (tensor or array) into one [rows*H, cols*W, C] array, row-major.
def tile(images, cols: int) -> np.ndarray:
    images = images.cpu().numpy() if torch.is_tensor(images) else np.asarray(images)
    n, c, h, w = images.shape
    rows = -(-n // cols)
    if rows * cols > n:
        images = np.concatenate([images, np.zeros((rows * cols - n, c, h, w), images.dtype)])
    grid = images.reshape(rows, cols, c, h, w).transpose(0, 3, 1, 4, 2).reshape(rows * h, cols * w, c)
    return grid
