"""The examples in examples/ run end to end (each returns its reports)."""

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("[!_]*.py"))
PENGUIN_COLUMNS = {
    "island",
    "bill_length_mm",
    "bill_depth_mm",
    "flipper_length_mm",
    "body_mass_g",
    "sex",
    "year",
}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(path, capsys):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    reports = module.main()
    assert reports and capsys.readouterr().out
    if path.stem == "penguins_audit":
        ablation = reports["ablation"]
        assert set(ablation.index) == PENGUIN_COLUMNS
        assert ablation.loc["year", "importance"] == 0  # dropped by the preprocessing
        assert set(reports["ranking"].index) == PENGUIN_COLUMNS


def test_the_demo_runs_every_explainer(capsys, tmp_path):
    """``make demo``'s job, on fewer rows: one ranked table of all columns,
    and the HTML audit."""
    import matplotlib

    matplotlib.use("Agg")
    from skattr._demo import run_demo

    table = run_demo(n_rows=20, report=tmp_path / "report")
    assert (tmp_path / "report" / "index.html").exists()
    assert len(table) == 30 and table["mean rank"].is_monotonic_increasing
    out = capsys.readouterr().out
    assert "Seconds per explainer" in out and "ShapleyValues" in out
