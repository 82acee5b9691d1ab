"""WganPretrainer: stage 1, WGAN-GP pre-training of the self-attention critic."""
