"""The parameters of the output-checking rules, declared once.

Defaults follow UK TRE practice (ACRO/SACRO's ``default.yaml``). A project's
scope file may override them (``sdc: {threshold: 10}``); :meth:`SDCConfig.from_mapping`
validates such a mapping and names the offending key when it is wrong.

>>> SDCConfig().threshold, SDCConfig().nk_n, SDCConfig().nk_k, SDCConfig().p_ratio
(10, 2, 0.9, 0.1)
>>> SDCConfig.from_mapping({"threshold": 20}).threshold
20
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from sde.errors import ConfigurationError

#: Ratios are compared with this tolerance so that cells exactly on a boundary
#: (dominance exactly 0.90, p-ratio exactly 0.10) are decided as the rule states
#: despite floating-point noise in sums.
RATIO_TOLERANCE = 1e-9


@dataclass(frozen=True)
class SDCConfig:
    """Rule parameters. Every field can be overridden per project."""

    #: A cell describing fewer units than this fails (``threshold``).
    threshold: int = 10
    #: ``nk-dominance``: the ``nk_n`` largest contributions are at least ``nk_k`` of the total.
    nk_n: int = 2
    nk_k: float = 0.9
    #: ``p-ratio``: (total - top1 - top2) / top1 below this fails.
    p_ratio: float = 0.1
    #: ``dof``: residual degrees of freedom below this fail.
    dof_threshold: int = 10
    #: ``zeros``: empty cells are reported as potentially disclosive.
    zeros_are_disclosive: bool = True
    #: ``missing``: missing values inside a cell are reported for review.
    check_missing_values: bool = True
    #: Survival tables: steps where fewer than this many units leave the risk set.
    survival_threshold: int = 10
    #: Suppression: the narrowest interval (in units) an attacker may narrow a hidden
    #: count to by linear programming; ``None`` means ``threshold``.
    protection_width: float | None = None
    #: Airlock risk tier: a request whose automatic checks all pass needs one output
    #: checker's review instead of two (the committee allows it per project).
    single_review: bool = False

    @property
    def width(self) -> float:
        """The protection width in force (``protection_width``, else ``threshold``)."""
        return float(self.threshold if self.protection_width is None else self.protection_width)

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ConfigurationError("sdc.threshold", "sdc threshold must be at least 1")
        if self.nk_n < 1:
            raise ConfigurationError("sdc.nk_n", "sdc nk_n must be at least 1")
        if not 0 < self.nk_k <= 1:
            raise ConfigurationError("sdc.nk_k", "sdc nk_k must lie in (0, 1]")
        if not 0 <= self.p_ratio <= 1:
            raise ConfigurationError("sdc.p_ratio", "sdc p_ratio must lie in [0, 1]")
        if self.dof_threshold < 0:
            raise ConfigurationError("sdc.dof_threshold", "sdc dof_threshold must be >= 0")
        if self.survival_threshold < 1:
            raise ConfigurationError(
                "sdc.survival_threshold", "sdc survival_threshold must be at least 1"
            )
        if self.protection_width is not None and not self.protection_width > 0:
            raise ConfigurationError(
                "sdc.protection_width", "sdc protection_width must be greater than 0"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> SDCConfig:
        """A config from a scope file's ``sdc:`` mapping (unknown keys are refused)."""
        if not values:
            return cls()
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigurationError(
                "sdc.unknown-setting",
                f"unknown sdc setting {unknown[0]!r}; known: {', '.join(sorted(known))}",
                setting=unknown[0],
            )
        clean: dict[str, Any] = {}
        for key, value in values.items():
            default = getattr(cls, key)
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ConfigurationError(
                        f"sdc.{key}", f"sdc {key} must be true or false", setting=key
                    )
            elif isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigurationError(f"sdc.{key}", f"sdc {key} must be a number", setting=key)
            elif isinstance(default, int) and float(value) != int(value):
                raise ConfigurationError(
                    f"sdc.{key}", f"sdc {key} must be a whole number", setting=key
                )
            clean[key] = float(value) if default is None else type(default)(value)
        return replace(cls(), **clean)


def as_config(rules: SDCConfig | Mapping[str, Any] | None) -> SDCConfig:
    """Accept what a caller passes as ``rules=``: a config, a mapping of overrides, or None."""
    if rules is None:
        return SDCConfig()
    if isinstance(rules, SDCConfig):
        return rules
    if isinstance(rules, Mapping):
        return SDCConfig.from_mapping(rules)
    raise ConfigurationError("sdc.rules", "rules= must be an SDCConfig or a mapping of overrides")
