"""FID and FVD metrics with the StyleGAN-V protocol."""
