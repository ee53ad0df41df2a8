"""Loss library: reconstruction, KL / ELBO and the kernel-weighted contrastive family."""
