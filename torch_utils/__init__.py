"""PyTorch utilities shared by the networks, the training loop and the metrics."""
