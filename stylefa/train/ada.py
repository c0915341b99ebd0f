"""The ADA strength controller and the ``--aug/--augpipe/--target/--p`` options.

Overfitting heuristic r_t = E[sign(D(real))] (Karras et al. 2020, Sec. 3): when D grows
confident on the reals, r_t rises towards 1. Every ``interval`` minibatches p moves by
``sign(r_t - target) * batch * interval / (kimg * 1000)``, i.e. fast enough to go from 0 to 1
in ``kimg`` thousand images, and is clamped at 0 from below (the reference does not clamp
it from above either).
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

from stylefa.errors import InputError

AUG_MODES = ("ada", "fixed", "noaug")


@dataclass
class AdaConfig:
    mode: str = "ada"  # ada: p adapts; fixed: p stays at ``p``; noaug: D sees raw images
    pipe: str = "bg"  # named pipe, see stylefa.train.augment.AUGMENT_PIPES
    target: float = 0.6  # target of E[sign(D(real))]
    p: float = 0.0  # initial p (ada) or the constant p (fixed)
    interval: int = 4  # minibatches between p updates
    kimg: float = 500.0  # thousands of images for p to go from 0 to 1

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "AdaConfig":
        return cls(**d)

    def validate(self) -> "AdaConfig":
        from stylefa.train.augment import AUGMENT_PIPES

        if self.mode not in AUG_MODES:
            raise InputError(f"--aug must be one of {', '.join(AUG_MODES)}, got {self.mode!r}")
        if self.pipe not in AUGMENT_PIPES:
            raise InputError(f"--augpipe must be one of {', '.join(AUGMENT_PIPES)}, got {self.pipe!r}")
        if not 0.0 <= self.target <= 1.0:
            raise InputError(f"--target must be in [0, 1], got {self.target}")
        if self.p < 0.0:
            raise InputError(f"--p must be >= 0, got {self.p}")
        if self.interval < 1 or self.kimg <= 0:
            raise InputError("ADA interval must be >= 1 and kimg > 0")
        return self


class AdaController:
    """Accumulates the signs of D's real logits and steers ``pipe.p``.

    Call ``report(real_logits)`` whenever D scores reals (the reference reports them in both
    the main and the R1 phase), and ``step(batch_size)`` once after every minibatch with
    the global batch size. Under DDP the sign sums are all-reduced at each update, so every
    rank computes the same p.
    """

    def __init__(self, pipe, config: AdaConfig):
        import torch

        self.pipe = pipe
        self.config = config
        self.minibatches = 0
        # [number of logits, sum of their signs], float64 so counts stay exact.
        self._signs = torch.zeros([2], dtype=torch.float64, device=pipe.p.device)

    @property
    def p(self) -> float:
        return float(self.pipe.p)

    def report(self, real_logits) -> None:
        import torch

        with torch.no_grad():
            signs = real_logits.detach().to(device=self._signs.device, dtype=torch.float64).sign()
            self._signs[0] += signs.numel()
            self._signs[1] += signs.sum()

    def step(self, batch_size: int) -> float | None:
        """Count one minibatch; every ``interval`` minibatches update p. Returns the
        observed r_t when p was updated, else None."""
        import torch

        self.minibatches += 1
        if self.config.mode != "ada" or self.minibatches % self.config.interval != 0:
            return None
        signs = self._signs.clone()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(signs)
        self._signs.zero_()
        count, total = (float(v) for v in signs.tolist())
        if count == 0:
            return None
        rt = total / count
        adjust = _sign(rt - self.config.target) * (batch_size * self.config.interval) / (self.config.kimg * 1000)
        with torch.no_grad():
            self.pipe.p.copy_((self.pipe.p + adjust).clamp(min=0))
        return rt

    def state_dict(self) -> dict:
        """JSON-serialisable state for exact resume (p is stored as its float32 value)."""
        count, total = (float(v) for v in self._signs.tolist())
        return {"p": float(self.pipe.p), "minibatches": self.minibatches, "sign_count": count, "sign_sum": total}

    def load_state_dict(self, state: dict) -> None:
        import torch

        with torch.no_grad():
            self.pipe.p.fill_(float(state["p"]))
        self.minibatches = int(state["minibatches"])
        self._signs = torch.tensor(
            [float(state["sign_count"]), float(state["sign_sum"])], dtype=torch.float64, device=self.pipe.p.device
        )


def _sign(x: float) -> float:
    return float((x > 0) - (x < 0))


def build_augmentation(config: AdaConfig, device="cpu"):
    """(AugmentPipe | None, AdaController | None) for a validated config."""
    import torch

    from stylefa.train.augment import AugmentConfig, AugmentPipe

    config.validate()
    if config.mode == "noaug":
        return None, None
    pipe = AugmentPipe(AugmentConfig.named(config.pipe)).train().requires_grad_(False).to(device)
    with torch.no_grad():
        pipe.p.fill_(config.p)
    controller = AdaController(pipe, config) if config.mode == "ada" else None
    return pipe, controller


def add_augment_arguments(parser: argparse.ArgumentParser) -> None:
    """The reference's augmentation options, for ``stylefa train``."""
    group = parser.add_argument_group("augmentation (ADA)")
    group.add_argument("--aug", choices=AUG_MODES, default="ada", help="augmentation mode (default: ada)")
    group.add_argument(
        "--augpipe",
        default="bg",
        help="named pipe: blit, geom, color, filter, noise, cutout, bg, bgc, bgcf, bgcfn, bgcfnc "
        "(default: bg = blit + geometric; colour is off because FA values are quantitative)",
    )
    group.add_argument("--target", type=float, default=None, help="ADA target for E[sign(D(real))] (default: 0.6)")
    group.add_argument("--p", type=float, default=None, help="augmentation probability for --aug fixed")


def ada_config_from_args(args: argparse.Namespace) -> AdaConfig:
    if args.target is not None and args.aug != "ada":
        raise InputError("--target can only be given with --aug ada")
    if args.p is not None and args.aug != "fixed":
        raise InputError("--p can only be given with --aug fixed")
    if args.aug == "fixed" and args.p is None:
        raise InputError("--aug fixed needs --p")
    config = AdaConfig(
        mode=args.aug,
        pipe=args.augpipe,
        target=0.6 if args.target is None else args.target,
        p=0.0 if args.p is None else args.p,
    )
    return config.validate()
