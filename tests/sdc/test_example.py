"""The runnable example produces a checked table, a plot and a release folder."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_example_runs(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "output_checking", ROOT / "examples" / "output_checking.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(tmp_path)
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["results"]) == {"ward_by_imd", "sbp_means", "plot"}
    assert results["results"]["ward_by_imd"]["status"] == "fail"
    assert results["results"]["plot"]["status"] == "pass"
    assert (tmp_path / "persons_per_decile.png").exists()
    assert (tmp_path / "checksums" / "persons_per_decile.png.txt").exists()
