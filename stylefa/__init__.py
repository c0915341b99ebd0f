"""stylefa: StyleGAN2-ADA on diffusion-MRI fractional-anisotropy maps.

Pipeline stages, one package each:

- ``stylefa.nets``    generator, discriminator, checkpoints (safetensors + JSON), reference-pickle import
- ``stylefa.data``    DWI -> FA, registration to an MNI FA template, slicing, datasets, simulated cohort
- ``stylefa.train``   StyleGAN2-ADA training (losses, adaptive augmentation, resume, DDP), FID/KID
- ``stylefa.project`` projection of real slices into the latent space (perceptual losses live here)
- ``stylefa.study``   corruptions, lesions, metrics, figures and the HTML report
"""

from stylefa._version import __version__

__all__ = ["load_generator", "load_networks", "__version__"]


def __getattr__(name: str):
    # Lazy so that ``import stylefa`` (and the CLI's --help) does not import torch.
    if name in ("load_generator", "load_networks"):
        from stylefa.nets import checkpoint

        return getattr(checkpoint, name)
    raise AttributeError(f"module 'stylefa' has no attribute {name!r}")
