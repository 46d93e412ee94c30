"""Generative radiance fields trained as GANs: GRAF and GIRAFFE."""
