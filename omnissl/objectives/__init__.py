"""SSL objectives, one per file, each registered in ``omnissl.core.registry.OBJECTIVES``."""

from omnissl.objectives.base import Objective, PairedObjective, require_output

__all__ = ["Objective", "PairedObjective", "require_output"]
