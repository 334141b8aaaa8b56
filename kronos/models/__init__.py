"""Pure nn.Modules of Kronos in the published checkpoint format."""

from kronos.models.hub import CheckpointError
from kronos.models import registry  # noqa: F401  (registers the ``published`` config resolver)
from kronos.models.kronos_model import Kronos
from kronos.models.tokenizer import KronosTokenizer

__all__ = ["CheckpointError", "Kronos", "KronosTokenizer"]
