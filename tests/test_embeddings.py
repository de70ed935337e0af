"""Nets with embedded categorical columns (model_inputs), on the Palmer penguins."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import skattr

NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORICAL = ["island", "sex"]
INPUTS = {"x_num": NUMERIC, "x_cat": CATEGORICAL}


class PenguinNet(nn.Module):
    """Numeric columns plus one embedding per categorical column."""

    def __init__(self, cards=(3, 2), dim=3, n_out=3):
        super().__init__()
        torch.manual_seed(0)
        self.embeddings = nn.ModuleList(nn.Embedding(c, dim) for c in cards)
        self.mlp = nn.Sequential(
            nn.Linear(len(NUMERIC) + dim * len(cards), 16),
            nn.Tanh(),
            nn.Linear(16, n_out),
        )

    def forward(self, x_num, x_cat):
        parts = [x_num] + [e(x_cat[:, i]) for i, e in enumerate(self.embeddings)]
        return self.mlp(torch.cat(parts, 1))


@pytest.fixture(scope="module")
def penguins():
    from palmerpenguins import load_penguins

    df = load_penguins().dropna().reset_index(drop=True)
    X = df[NUMERIC].astype(np.float32)
    X = (X - X.mean()) / X.std()
    for c in CATEGORICAL:
        X[c] = df[c].astype("category")
    X["year"] = df["year"]  # in no model input: attributed exactly 0
    y = df["species"].astype("category").cat.codes.to_numpy()
    return X, y


def _tensors(X):
    return {
        "x_num": torch.tensor(X[NUMERIC].to_numpy(np.float32)),
        "x_cat": torch.tensor(
            np.stack([X[c].cat.codes.to_numpy() for c in CATEGORICAL], 1),
            dtype=torch.long,
        ),
    }


@pytest.fixture(scope="module")
def trained(penguins):
    X, y = penguins
    net = PenguinNet()
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    inputs, target = _tensors(X), torch.tensor(y, dtype=torch.long)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(net(**inputs), target).backward()
        opt.step()
    return net.eval()


PERTURBATION = [
    skattr.FeatureAblation,
    skattr.ShapleyValueSampling,
    skattr.ShapleyValues,
    skattr.KernelShap,
    skattr.Lime,
    skattr.FeaturePermutation,
]


def test_exact_shapley_values_are_efficient_in_the_user_columns(penguins, trained):
    X, _ = penguins
    rows = X.iloc[:12]
    ex = skattr.ShapleyValues(target="all", model_inputs=INPUTS).fit(trained, X)
    attr = ex.explain(rows)
    assert list(attr[0].columns) == list(X.columns)  # the user's columns
    assert (attr.xs("year", axis=1, level=1) == 0).all().all()
    with torch.no_grad():
        fx = trained(**_tensors(rows)).double().numpy()
    for c in range(3):
        np.testing.assert_allclose(
            attr[c].sum(1), fx[:, c] - attr.attrs["base_values"][c], atol=1e-5
        )


def test_kernel_shap_with_every_coalition_is_exact(penguins, trained):
    X, _ = penguins
    rows = X.iloc[:6]
    exact = skattr.ShapleyValues(target=1, model_inputs=INPUTS).fit(trained, X)
    kernel = skattr.KernelShap(n_samples=100, target=1, model_inputs=INPUTS)
    a = kernel.fit(trained, X).explain(rows)
    assert a.attrs["exact"]  # 2^6 - 2 = 62 coalitions of the six fed columns
    pd.testing.assert_frame_equal(a, exact.explain(rows), atol=1e-5)


@pytest.mark.parametrize("cls", PERTURBATION)
def test_every_perturbation_method_explains_the_embedding_net(cls, penguins, trained):
    X, _ = penguins
    params = {"model_inputs": INPUTS, "target": "all"}
    if "random_state" in cls._get_param_names():
        params["random_state"] = 0
    if cls is skattr.ShapleyValueSampling:
        params["n_samples"] = 6
    attr = cls(**params).fit(trained, X).explain(X.iloc[::33])  # every island
    assert attr.shape == (11, 3 * X.shape[1])
    assert np.isfinite(attr.to_numpy()).all()
    assert (attr.xs("year", axis=1, level=1) == 0).all().all()
    assert attr.xs("island", axis=1, level=1).abs().to_numpy().sum() > 0


def test_interactions_of_the_embedding_net_in_the_user_columns(penguins, trained):
    X, _ = penguins
    rows = X.iloc[:6]
    ex = skattr.ShapleyInteractions(target=1, model_inputs=INPUTS).fit(trained, X)
    attr = ex.explain(rows)
    assert list(attr.columns) == list(X.columns) and len(attr) == 6 * X.shape[1]
    assert (attr["year"] == 0).all() and (attr.xs("year", level=1) == 0).all().all()
    phi = skattr.ShapleyValues(target=1, model_inputs=INPUTS).fit(trained, X)
    sums = attr.sum(axis=1).unstack(level=-1)[list(X.columns)]
    np.testing.assert_allclose(sums.to_numpy(), phi.explain(rows).to_numpy(), atol=1e-6)


def test_baselines_respect_the_column_types(penguins, trained):
    X, _ = penguins
    auto = skattr.FeatureAblation(model_inputs=INPUTS).fit(trained, X)
    # the order of model inputs: x_num's columns, then x_cat's
    island = X["island"].cat.codes.mode()[0]
    sex = X["sex"].cat.codes.mode()[0]
    assert auto.baseline_[0, 4:].tolist() == [island, sex]  # most frequent
    np.testing.assert_allclose(auto.baseline_[0, :4], X[NUMERIC].mean(), atol=1e-5)
    zeros = skattr.FeatureAblation(baseline="zeros", model_inputs=INPUTS).fit(
        trained, X
    )
    assert zeros.baseline_[0, :4].abs().sum() == 0
    assert zeros.baseline_[0, 4:].tolist() == [island, sex]
    named = dict.fromkeys(NUMERIC, 0.0) | {"island": "Dream", "year": 0}
    given = skattr.FeatureAblation(baseline=named, model_inputs=INPUTS).fit(trained, X)
    dream = list(X["island"].cat.categories).index("Dream")
    assert given.baseline_[0, 4:].tolist() == [dream, sex]
    with pytest.raises(ValueError, match=r"baseline='mean'.*\['island', 'sex'\]"):
        skattr.FeatureAblation(baseline="mean", model_inputs=INPUTS).fit(trained, X)


def test_a_skorch_net_trained_on_a_dict(penguins, trained):
    from skorch import NeuralNetClassifier

    X, y = penguins
    net = NeuralNetClassifier(
        PenguinNet, max_epochs=2, lr=0.01, batch_size=64, train_split=None, verbose=0
    )
    net.fit(_tensors(X), torch.tensor(y, dtype=torch.long))
    rows = X.iloc[:8]
    attr = skattr.ShapleyValues(target="all", model_inputs=INPUTS).fit(net, X)
    attr = attr.explain(rows)
    direct = skattr.ShapleyValues(target="all", model_inputs=INPUTS)
    expected = direct.fit(net.module_, X).explain(rows)
    pd.testing.assert_frame_equal(attr, expected, check_names=False)


def test_errors_name_the_column_and_the_fix(penguins, trained):
    X, _ = penguins
    ex = skattr.ShapleyValues(model_inputs=INPUTS).fit(trained, X)
    unknown = X.iloc[:3].copy()
    unknown["island"] = unknown["island"].cat.add_categories("Atlantis")
    unknown.loc[unknown.index[0], "island"] = "Atlantis"
    with pytest.raises(ValueError, match=r"column 'island' holds \['Atlantis'\]"):
        ex.explain(unknown)
    missing = X.iloc[:3].copy()
    missing.loc[missing.index[0], "island"] = np.nan
    with pytest.raises(ValueError, match=r"'island' has missing values \(NaN\)"):
        ex.explain(missing)
    strings = X.iloc[:3].astype({"sex": object})
    with pytest.raises(TypeError, match=r"column 'sex' holds .* 'male'.*category"):
        ex.explain(strings)
    with pytest.raises(TypeError, match=r"Column 'species' holds .* 'Adelie'"):
        skattr.FeatureAblation(
            model_inputs={"x_num": NUMERIC, "x_cat": ["species"]}
        ).fit(trained, X.assign(species="Adelie"))
    objects = X.iloc[:3].astype({"bill_length_mm": object})
    objects.loc[objects.index[0], "bill_length_mm"] = "long"
    with pytest.raises(TypeError, match="'bill_length_mm' \\(values such as 'long'\\)"):
        ex.explain(objects)
    with pytest.raises(TypeError, match=r"\['island', 'sex'\] enter it as integer"):
        skattr.GradientShap(model_inputs=INPUTS).fit(trained, X)
    with pytest.raises(ValueError, match="codes are fixed at fit"):
        skattr.FeatureAblation(model_inputs=INPUTS).fit(trained).explain(X.iloc[:3])
    with pytest.raises(ValueError, match="model_inputs.*names column"):
        skattr.FeatureAblation(model_inputs={"x_num": ["nope"]}).fit(trained, X)


def test_a_code_the_embedding_has_no_row_for(penguins, trained):
    X, _ = penguins
    codes = X.assign(island=X["island"].cat.codes.astype("int64"))
    ex = skattr.FeatureAblation(model_inputs=INPUTS).fit(trained, codes)
    bad = codes.iloc[:2].copy()
    bad.loc[bad.index[0], "island"] = 7
    with pytest.raises(ValueError, match=r"'island' holds the code 7"):
        ex.explain(bad)


def test_model_inputs_on_a_pipeline_is_refused():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from skorch import NeuralNetRegressor

    net = NeuralNetRegressor(nn.Linear, module__in_features=2, module__out_features=1)
    pipe = make_pipeline(StandardScaler(), net)
    X = np.random.default_rng(0).normal(size=(8, 2)).astype(np.float32)
    pipe.fit(X, X[:, :1])
    with pytest.raises(ValueError, match="does not apply to a Pipeline"):
        skattr.FeatureAblation(model_inputs={"x": [0, 1]}).fit(pipe, X)


def test_lime_measures_similarity_between_coalitions_for_coded_inputs(
    penguins, trained
):
    X, _ = penguins
    seen = {}

    from skattr.core import surrogate

    original = surrogate.exp_kernel_similarity

    def spy(distance="cosine", kernel_width=1.0):
        kernel = original(distance, kernel_width)

        def similarity(x, z, inputs):
            seen["widths"] = (x.shape[1], inputs.shape[1])
            return kernel(x, z, inputs)

        return similarity

    import skattr.explainers._surrogate as face

    face.exp_kernel_similarity, saved = spy, face.exp_kernel_similarity
    try:
        size = {"bill": ["bill_length_mm", "bill_depth_mm"]}
        skattr.Lime(
            n_samples=10, model_inputs=INPUTS, feature_groups=size, random_state=0
        ).fit(trained, X).explain(X.iloc[:3])
    finally:
        face.exp_kernel_similarity = saved
    assert seen["widths"] == (5, 5)  # five coalition groups, not six model columns


class _TwoArguments(nn.Module):
    def forward(self, a, b):
        return 10 * a + b


def test_positional_rows_and_baselines_follow_the_columns_not_the_arguments():
    # model_inputs listing the columns in another order than X: an array X
    # (or tensor) and a per-feature list baseline were read in the
    # arguments' order, each value given to another column's argument
    X = pd.DataFrame({"u": [1.0, 2.0, 3.0], "v": [0.5, 0.0, -1.0]})
    spec = {"a": ["v"], "b": ["u"]}  # f = 10 v + u
    ex = skattr.ShapleyValues(baseline=0.0, model_inputs=spec).fit(_TwoArguments(), X)
    want = X.to_numpy() * np.array([1.0, 10.0])
    for given in (X, X.to_numpy(), torch.tensor(X.to_numpy())):
        np.testing.assert_allclose(ex.explain(given).to_numpy(), want, atol=1e-12)
    by_name = skattr.ShapleyValues(baseline={"u": 1.0, "v": 5.0}, model_inputs=spec)
    by_place = skattr.ShapleyValues(baseline=[1.0, 5.0], model_inputs=spec)
    pd.testing.assert_frame_equal(
        by_place.fit(_TwoArguments(), X).explain(X),
        by_name.fit(_TwoArguments(), X).explain(X),
    )
