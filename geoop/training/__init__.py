"""Training: typed run configs, the `Trainer`, checkpoints, losses, batching, and runs from YAML configs."""
from geoop.training.checkpoint import load_checkpoint, save_checkpoint
from geoop.training.config import DataConfig, ModelConfig, RunConfig, TrainConfig, load_config
from geoop.training.run import build_operator, load_model, train
from geoop.training.trainer import Trainer

__all__ = ["DataConfig", "ModelConfig", "RunConfig", "TrainConfig", "Trainer", "build_operator", "load_checkpoint",
           "load_config", "load_model", "save_checkpoint", "train"]
