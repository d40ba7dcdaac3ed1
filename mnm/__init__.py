"""mnm: MixNMatch as a deployment toolkit.

Importing ``mnm`` is cheap and never imports torch: the networks live in ``mnm.nn``,
training in ``mnm.training``, export in ``mnm.export`` and the torch-free runtime in
``mnm.runtime``.
"""

from mnm.config import PRESETS, ModelConfig
from mnm.errors import MnmError

__version__ = "0.1.0"
__all__ = ["PRESETS", "MnmError", "ModelConfig", "__version__"]
