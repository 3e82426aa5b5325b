"""Training: the `Trainer`, checkpoints, losses, batching, and runs from YAML configs."""
from geoop.training.checkpoint import load_checkpoint, save_checkpoint
from geoop.training.run import build_operator, load_config, load_model, train
from geoop.training.trainer import TrainConfig, Trainer

__all__ = ["TrainConfig", "Trainer", "build_operator", "load_checkpoint", "load_config", "load_model",
           "save_checkpoint", "train"]
