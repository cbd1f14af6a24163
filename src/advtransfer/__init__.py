"""advtransfer: a reproducibility kit for adversarial robustness under transfer learning."""

__version__ = "0.1.0"
