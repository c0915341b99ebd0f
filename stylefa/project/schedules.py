"""Step schedules of the StyleGAN2(-ADA) projector (Karras et al. 2020, "Analyzing and
improving the image quality of StyleGAN", appendix D).

With t = step / num_steps:
- learning rate: lr0 * cosine ramp-down over the last ``rampdown`` fraction
  (0.5 - 0.5 cos(pi * min(1, (1 - t) / rampdown))) times a linear ramp-up over the
  first ``rampup`` fraction (min(1, t / rampup)); so step 0 has lr 0, as in the reference.
- w perturbation: w_std * factor * max(0, 1 - t / ramp_length)^2, a quadratic decay to
  zero at ``ramp_length`` (0.75) of the run, which helps escape poor starting basins.
"""

from __future__ import annotations

import math


def learning_rate(step: int, num_steps: int, initial_lr: float, rampdown: float, rampup: float) -> float:
    t = step / num_steps
    down = min(1.0, (1.0 - t) / rampdown) if rampdown > 0 else 1.0
    down = 0.5 - 0.5 * math.cos(down * math.pi)
    up = min(1.0, t / rampup) if rampup > 0 else 1.0
    return initial_lr * down * up


def w_noise_scale(step: int, num_steps: int, w_std: float, factor: float, ramp_length: float) -> float:
    t = step / num_steps
    if ramp_length <= 0:
        return 0.0
    return w_std * factor * max(0.0, 1.0 - t / ramp_length) ** 2
