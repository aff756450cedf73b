"""corrmon as a Dagster Component (``dg``): see ``docs/component.md``."""

from dagster_corrmon.components.component import CorrmonComponent

__all__ = ["CorrmonComponent"]
