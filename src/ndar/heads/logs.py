"""The heads' training logs: the shared run logger (`ndar.utils.runlog`), so TIM, ActionFormer and the
fine-tuning write one TensorBoard vocabulary."""

from ndar.utils.runlog import TrainLog, tag

__all__ = ["TrainLog", "tag"]
