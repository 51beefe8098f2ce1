"""Tasks: each knows its data, its model, its loss and metrics, and its action verb."""

from . import base, caption, classify, detect, forecast, lm, music, tag, transcribe, translate  # noqa: F401  (importing a task module registers it)
from .base import TASKS, get_task, train

__all__ = ["TASKS", "get_task", "train"]
