"""Sphinx configuration: ``make docs`` builds ``docs/_build/html``, offline,
with warnings as errors."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MPLBACKEND", "Agg")

import skattr  # noqa: E402

project = "skattr"
author = "the skattr developers"
release = version = skattr.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py", "**.zip"]

html_theme = "pydata_sphinx_theme"
html_theme_options = {"navigation_with_keys": False, "header_links_before_dropdown": 4}
html_title = "skattr"

# the API reference: numpydoc reads the docstrings; no class member tables
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
autodoc_default_options = {"members": False}

# Markdown pages link to files outside docs/ (benchmarks/, examples/): kept
# as links to the repository, not as cross-references
myst_heading_anchors = 3

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/penguins_",
    "download_all_examples": False,
    "show_signature": False,
}
