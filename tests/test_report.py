"""skattr.report.audit: the tables, the files and the HTML a person reads."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from html.parser import HTMLParser  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from skattr.report import audit  # noqa: E402
from tests.conftest import MLP  # noqa: E402


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables, self.images, self.text = 0, [], []

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables += 1
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_data(self, data):
        self.text.append(data.strip())


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(40, 5)).astype(np.float32), columns=list("abcde"))
    path = tmp_path_factory.mktemp("audit") / "report"
    return audit(MLP(), X, path=path, show_progress=False), X


def test_the_tables(report):
    rep, X = report
    assert set(rep.attributions) == {
        "ShapleyValueSampling", "KernelShap", "FeatureAblation",
        "FeaturePermutation", "GradientShap",
    }  # fmt: skip
    assert sorted(rep.importance.index) == list("abcde")
    np.testing.assert_allclose(rep.importance.drop(columns="mean rank").sum(), 1.0)
    assert rep.importance["mean rank"].is_monotonic_increasing
    assert (np.diag(rep.agreement) == 1).all() and (np.diag(rep.overlap) == 1).all()
    # the Shapley methods are efficient
    assert set(rep.efficiency.index) == {"ShapleyValueSampling", "KernelShap"}
    assert (rep.efficiency.iloc[:, 0] < 1e-4).all()
    assert (rep.methods["model rows"] > 0).all() and (rep.methods["seconds"] > 0).all()
    assert list(rep.per_output["KernelShap"].columns) == ["importance", "std", 0, 1, 2]


def test_the_files(report):
    rep, X = report
    assert rep.index.exists()
    written = pd.read_csv(rep.path / "attributions_KernelShap.csv", index_col=0)
    np.testing.assert_allclose(written["1|c"], rep.attributions["KernelShap"][1]["c"])
    imp = pd.read_csv(rep.path / "importance.csv", index_col=0)
    np.testing.assert_allclose(
        imp.loc[rep.importance.index], rep.importance, rtol=1e-12
    )


def test_the_html_is_self_contained_and_shows_the_numbers(report):
    rep, _ = report
    text = rep.index.read_text()
    page = _Page()
    page.feed(text)
    assert page.tables >= 6
    assert page.images and all(
        s.startswith("data:image/png;base64,") for s in page.images
    )
    assert "http://" not in text and "https://" not in text  # nothing fetched
    shown = " ".join(page.text)
    for value in rep.importance["ShapleyValueSampling"]:
        assert f"{value:.4f}" in shown
    assert "Agreement between methods" in shown and "Efficiency" in shown


def test_the_model_rows_reported_are_those_evaluated(tmp_path):
    import skattr
    from tests.conftest import Counting

    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(12, 5)).astype(np.float32), columns=list("abcde"))
    model = Counting(MLP())
    rep = audit(
        model,
        X,
        explainers={"FeatureAblation": skattr.FeatureAblation()},
        path=tmp_path / "r",
        show_progress=False,
    )
    # fit probes the model once, on its one baseline row (the mean of X) twice
    assert model.rows == 2 + rep.methods.loc["FeatureAblation", "model rows"]


def test_the_default_kernel_shap_has_a_pair_per_column_of_a_wide_table(tmp_path):
    # 256 coalitions are 128 pairs: fewer than 150 columns would leave its
    # regression underdetermined (refused); the default set takes 4 per column
    import torch

    rng = np.random.default_rng(2)
    X = pd.DataFrame(rng.normal(size=(6, 150)).astype(np.float32)).add_prefix("f")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(150, 4), torch.nn.Tanh()).eval()
    rep = audit(net, X, path=tmp_path / "r", show_progress=False)
    assert "KernelShap" not in rep.skipped
    assert (np.asarray(rep.attributions["KernelShap"].attrs["n_samples"]) == 600).all()
