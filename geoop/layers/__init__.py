"""Layers: the building blocks models compose. Layers know nothing of files or datasets."""
from geoop.layers.attention import AttentionBlock, GatedExperts, MultiHeadAttention
from geoop.layers.embeddings import SinusoidalEmbedding
from geoop.layers.fno import FNO, FNOBlock
from geoop.layers.kernel_integral import KernelIntegral
from geoop.layers.message_passing import EdgeUpdate
from geoop.layers.mlp import MLP
from geoop.layers.spectral import SpectralConv

__all__ = ["FNO", "AttentionBlock", "EdgeUpdate", "FNOBlock", "GatedExperts", "KernelIntegral", "MLP",
           "MultiHeadAttention", "SinusoidalEmbedding", "SpectralConv"]
