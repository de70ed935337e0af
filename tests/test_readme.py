"""The README's quickstart and the Pipeline guide's example really run."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _first_python_block(path: Path) -> str:
    blocks = re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)
    assert blocks, f"{path.name} has no python block"
    return blocks[0]


def test_quickstart_runs(capsys):
    namespace: dict = {}
    exec(
        compile(_first_python_block(ROOT / "README.md"), "README.md", "exec"), namespace
    )
    X = namespace["X"]
    assert namespace["attributions"].shape == (5, 10)
    assert list(namespace["attributions"].columns) == list(X.columns)
    top = list(namespace["explainer"].importance(X).index[:3])
    assert {"bmi", "s5"} <= set(top)  # the trained model found the known drivers
    out = capsys.readouterr().out
    assert "importance" in out


def test_pipeline_guide_runs():
    namespace: dict = {}
    code = _first_python_block(ROOT / "docs" / "pipelines.md")
    exec(compile(code, "docs/pipelines.md", "exec"), namespace)
    attr, X = namespace["attr"], namespace["X"]
    assert list(attr.columns) == list(X.columns)
    assert (attr["year"] == 0).all()
    assert attr.abs().sum().drop("year").gt(0).all()
