"""Test-only: put on PYTHONPATH of a launched run, kills every training process right after training step
GCRM_TEST_KILL_AT_STEP (as a machine failure would: SIGKILL, no clean-up). Only in the launched workers (LOCAL_RANK)."""

import os

if os.environ.get("GCRM_TEST_KILL_AT_STEP") and os.environ.get("LOCAL_RANK") is not None:
    import signal

    from transformers import TrainerCallback

    import gcrm_kit.prm as _prm
    import gcrm_kit.training as _training

    _step = int(os.environ["GCRM_TEST_KILL_AT_STEP"])

    class _Kill(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == _step:
                os.kill(os.getpid(), signal.SIGKILL)

    def _with_kill(init):
        def _init_with_kill(self, *a, **kw):
            init(self, *a, **kw)
            self.add_callback(_Kill())
        return _init_with_kill

    # the outcome models' trainer and the process reward models'
    _training.RewardTrainer.__init__ = _with_kill(_training.RewardTrainer.__init__)
    _prm.ProcessTrainer.__init__ = _with_kill(_prm.ProcessTrainer.__init__)
