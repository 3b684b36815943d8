"""dnahnet: tokenizer-free DNA and byte language models with H-Net dynamic chunking."""

from dnahnet.errors import DnahnetInputError

__version__ = "0.1.0"


def load(checkpoint_dir, device=None, dtype=None):
    """Load a trained checkpoint folder as a scoring/generation model (see dnahnet.infer)."""
    from dnahnet.infer.model import load as _load

    return _load(checkpoint_dir, device=device, dtype=dtype)


__all__ = ["DnahnetInputError", "load", "__version__"]
