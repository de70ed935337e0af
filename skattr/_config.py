"""Global settings, as scikit-learn's ``set_config`` / ``config_context``.

``incremental_first_layer`` (default ``True``): perturbation methods update
the pre-activations of a model's first ``nn.Linear`` from one coalition to the
next instead of running every perturbed row through it
(:mod:`skattr.core.incremental`); ``False`` forces the plain path, every
perturbed row through the whole model, e.g. to compare or debug. The result
is the same to rounding either way. Settings are per thread.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

_DEFAULTS = {"incremental_first_layer": True}
_local = threading.local()


def _settings() -> dict:
    if not hasattr(_local, "settings"):
        _local.settings = dict(_DEFAULTS)
    return _local.settings


def get_config() -> dict:
    """The current settings (a copy).

    Examples
    --------
    >>> import skattr
    >>> skattr.get_config()["incremental_first_layer"]
    True
    """
    return dict(_settings())


def set_config(*, incremental_first_layer: bool | None = None) -> None:
    """Change settings for this thread.

    Parameters
    ----------
    incremental_first_layer : bool, default=None
        ``False``: every perturbed row through the whole model (the plain
        path); ``True``: update the first ``nn.Linear``'s pre-activations
        incrementally where the model allows it. ``None`` leaves it.
    """
    if incremental_first_layer is not None:
        if not isinstance(incremental_first_layer, bool):
            raise TypeError(
                "incremental_first_layer must be True or False; got "
                f"{incremental_first_layer!r}."
            )
        _settings()["incremental_first_layer"] = incremental_first_layer


@contextlib.contextmanager
def config_context(*, incremental_first_layer: bool | None = None) -> Iterator[None]:
    """Settings for the ``with`` block only (this thread), restored after it.

    Examples
    --------
    >>> import skattr
    >>> with skattr.config_context(incremental_first_layer=False):
    ...     skattr.get_config()["incremental_first_layer"]
    False
    """
    old = get_config()
    set_config(incremental_first_layer=incremental_first_layer)
    try:
        yield
    finally:
        _settings().update(old)
