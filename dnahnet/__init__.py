"""dnahnet: tokenizer-free DNA and byte language models with H-Net dynamic chunking."""

from dnahnet.errors import DnahnetInputError

__version__ = "0.1.0"


def load(checkpoint_dir, device=None, dtype=None, compile=False):
    """Load a checkpoint as a scoring/generation/embedding model (see dnahnet.infer).

    `checkpoint_dir`: a checkpoint folder, a fine-tuned run folder (then `.predict(seqs)`
    works), or a Hugging Face Hub id `org/name[@revision]` resolved through the HF cache
    (`HF_HUB_OFFLINE=1`: cache only). `compile`: True compiles the whole backbone with
    torch.compile on first use, "blocks" each Mamba-2/attention block (`dnahnet.nn.compile`).
    """
    from dnahnet.infer.model import load as _load

    return _load(checkpoint_dir, device=device, dtype=dtype, compile=compile)


__all__ = ["DnahnetInputError", "load", "__version__"]
