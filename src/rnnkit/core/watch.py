"""Is the run learning? One line, once, when it is stuck at the unigram plateau.

A character model that ignores all context can still score the unigram entropy of the text (the
entropy of its character frequencies): that is where a run sits when the recurrent stack has not
picked up the input (see models.scale_init) or the learning rate does not suit the model. The
watch compares the training loss after AFTER steps, and the validation loss once it stops moving,
with that entropy; when neither has gone clearly below it (by MARGIN), the run says so in one line
beginning `not learning:` with the likely fixes, records it in metrics.jsonl, and trains on.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

AFTER = 300      # steps before the training loss is judged ("a few hundred")
MARGIN = 0.05    # clearly below: at least 5% under the unigram entropy
STILL = 0.01     # nats: two evaluations this close have stopped moving


def unigram_entropy(ids: np.ndarray) -> float:
    """Nats per character of the best model that ignores context: -sum p log p over the symbols."""
    counts = np.bincount(np.asarray(ids).ravel().astype(np.int64))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


class LearningWatch:
    """Feed it the logged training losses and the evaluations; it returns the warning once."""

    def __init__(self, ids: np.ndarray, lr: float):
        self.entropy, self.lr = unigram_entropy(ids), lr
        self.recent: list[float] = []
        self.last_val: Optional[float] = None
        self.said = False

    def stuck(self, loss: float) -> bool:
        return not math.isfinite(loss) or loss > self.entropy * (1 - MARGIN)

    def message(self, what: str, step: int, loss: float) -> str:
        self.said = True
        return (f"not learning: after {step} steps the {what} is {loss:.3f} nats, no better than the "
                f"{self.entropy:.3f} of a model that ignores all context (the unigram entropy of the "
                f"training text); lower --lr (now {self.lr:g}), weaken the regularisers (--weight-drop 0 "
                "--locked-dropout 0 --weight-decay 0), or try --init scaled")

    def train(self, step: int, loss: Optional[float]) -> Optional[str]:
        if loss is None or self.said:
            return None
        self.recent = (self.recent + [loss])[-5:]
        mean = sum(self.recent) / len(self.recent)
        if step >= AFTER and self.stuck(mean):
            return self.message("training loss", step, mean)
        return None

    def val(self, step: int, loss: float) -> Optional[str]:
        before, self.last_val = self.last_val, loss
        if self.said or before is None or step < AFTER:
            return None
        if self.stuck(loss) and abs(loss - before) < STILL:
            return self.message("validation loss", step, loss)
        return None
