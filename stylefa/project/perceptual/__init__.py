"""Image distances for projection: LPIPS-VGG16, shift-tolerant LPIPS-VGG16, pixel MSE."""

from stylefa.project.perceptual.loader import PERCEPTUAL_CHOICES, PerceptualSpec, load_perceptual

__all__ = ["PERCEPTUAL_CHOICES", "PerceptualSpec", "load_perceptual"]
