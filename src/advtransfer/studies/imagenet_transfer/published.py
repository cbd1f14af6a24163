"""Numbers published by study 1's write-up (SPEC section 2), keyed by the kit's model keys.

Keras MobileNetV2 on ImageNet-R, one run: (natural accuracy, FGSM transfer accuracy at eps 0.01 in [-1, 1] input
space = 0.005 pixel units). None where the write-up gives no number.
"""

from __future__ import annotations

EXP1_PUBLISHED: dict[str, tuple[float, float | None]] = {
    "base_a": (0.2070, None),  # 1000-way ImageNet model scored through the 200-class mask, untrained on ImageNet-R
    "bnb": (0.5907, None),
    "a4b_plus": (0.5965, 0.2592),
    "a4b": (0.5890, 0.2267),
    "a8b_plus": (0.5963, 0.2583),
    "a8b": (0.5727, 0.1932),
    "a12b_plus": (0.5963, 0.2595),
    "a12b": (0.5287, 0.1442),
    "a16b_plus": (0.5965, 0.2613),
    "a16b": (0.4262, 0.0558),
}
EXP1_PUBLISHED_EPS = 0.005  # pixel units
PUBLISHED_N = 6000  # test images: 20% of ImageNet-R's 30,000
