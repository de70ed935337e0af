"""Exceptions raised by skattr."""

from sklearn.exceptions import NotFittedError as _SklearnNotFittedError

__all__ = ["NotFittedError"]


class NotFittedError(_SklearnNotFittedError):
    """Raised when ``explain`` or ``importance`` is called before ``fit``.

    A subclass of scikit-learn's ``NotFittedError`` (and so of
    ``ValueError`` and ``AttributeError``), so that scikit-learn tooling that
    catches it keeps working.
    """
