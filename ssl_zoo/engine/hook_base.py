"""``HookBase``: the extension point of the training loop (after detectron2).

The trainer calls, in order::

    hook.before_train()
    for trainer.iter in range(start_iter, max_iter):
        hook.before_step()
        ... forward / backward / optimizer step (ACCUM_STEPS micro-batches) ...
        hook.after_step()        # trainer.last_outputs holds the step's outputs
    hook.after_train()

A hook with state (e.g. a kNN history) implements ``state_dict`` / ``load_state_dict``;
the checkpointer saves it so ``--resume`` continues exactly.
"""
from __future__ import annotations


class HookBase:
    """Base class for training hooks; ``self.trainer`` is set when registered."""

    trainer = None  # set by the trainer

    def before_train(self) -> None:
        pass

    def after_train(self) -> None:
        pass

    def before_step(self) -> None:
        pass

    def after_step(self) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
