"""supcon: Supervised Contrastive Learning (Khosla et al., NeurIPS 2020, arXiv 2004.11362)."""

from supcon.losses import SupConLoss, supcon_loss

__all__ = ["SupConLoss", "supcon_loss"]
__version__ = "0.1.0"
