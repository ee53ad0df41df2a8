"""Encoders, decoders, AE / VAE modules and the projection head (2D images and 3D volumes)."""

from stratify.models.autoencoder import Autoencoder, ProjectionHead, build_model, infer_feature_dim
from stratify.models.conv import ConvDecoder, ConvEncoder, choose_depth

__all__ = [
    "Autoencoder",
    "ConvDecoder",
    "ConvEncoder",
    "ProjectionHead",
    "build_model",
    "choose_depth",
    "infer_feature_dim",
]
