"""Networks, losses, data and the training loop of StyleInV."""
