"""Output checking, end to end: a checked table, a checked plot, a release folder.

Run: ``.venv/bin/python examples/output_checking.py [OUT_DIR]`` (default ``sdc-example/``).
It writes the protected table, a bar chart of its published counts, ACRO's
``results.json`` (open the folder with SACRO-Viewer), Markdown/HTML summaries
and checksums, and prints the verdicts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sde import sdc


def synthetic_patients(n: int = 5000, seed: int = 42) -> pd.DataFrame:
    """A small synthetic cohort: deprivation decile, ward, systolic blood pressure."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "person_id": np.arange(n),
            "imd_decile": rng.integers(1, 11, n),
            "ward": rng.choice(["Lancaster", "Morecambe", "Kendal", "Barrow"], n),
            "sbp": np.round(rng.normal(135, 18, n)),
        }
    )
    # A rare group that must not be published on its own.
    rare = pd.DataFrame(
        {"person_id": n + np.arange(3), "imd_decile": 1, "ward": "Grange", "sbp": 190.0}
    )
    return pd.concat([df, rare], ignore_index=True)


def main(out: Path) -> None:
    df = synthetic_patients()

    counts = sdc.crosstab(df.ward, df.imd_decile, margins=True, persons=df.person_id)
    print("counts:", counts.status, "-", counts.report["summary"])

    means = sdc.pivot_table(
        df, values="sbp", index="ward", columns="imd_decile", aggfunc="mean", persons="person_id"
    )
    print("mean SBP:", means.status, "-", means.report["summary"])

    rounded = sdc.crosstab(df.ward, df.imd_decile, protection="midpoint-6")
    print("rounded:", rounded.report["protection"]["method"])

    # A plot of published counts (the totals per decile), checked from the figure itself.
    fig, ax = plt.subplots(figsize=(7, 4))
    per_decile = counts.safe.loc["All"].drop("All")
    ax.bar(per_decile.index.astype(str), per_decile.to_numpy())
    ax.set_xlabel("IMD decile (1 = most deprived)")
    ax.set_ylabel("persons")
    ax.set_title("Persons per deprivation decile")
    out.mkdir(parents=True, exist_ok=True)
    png = out / "persons_per_decile.png"
    fig.savefig(png, dpi=100)
    plot = sdc.check_figure(fig)
    plt.close(fig)
    print("plot:", plot.status, "-", plot.report["summary"])

    results = sdc.write_outputs(
        out,
        {"ward_by_imd": counts, "sbp_means": means, "plot": plot},
        attachments={"plot": [png]},
    )
    print("written:", results)
    print(counts.to_markdown())


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("sdc-example"))
