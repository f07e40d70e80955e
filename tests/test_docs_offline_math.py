"""The documentation typesets math with no network: MathJax comes from the `docs` extra, not a CDN."""
import configparser
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXTENSION = "sphinx-mathjax-offline"


def test_the_docs_extra_installs_the_offline_mathjax_and_conf_uses_it():
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert EXTENSION in setup["options.extras_require"]["docs"]
    spec = importlib.util.spec_from_file_location("docs_conf", ROOT / "docs" / "conf.py")
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    assert EXTENSION in conf.extensions
    assert "cdn" not in str(getattr(conf, "mathjax_path", "")).lower()


def test_the_offline_package_ships_mathjax_3_and_its_fonts():
    spec = importlib.util.find_spec(EXTENSION)
    if spec is None:
        pytest.skip("the docs extra is not installed")
    static = Path(spec.origin).parent / "static" / "mathjax"
    assert (static / "tex-chtml.js").stat().st_size > 500_000
    assert list((static / "output" / "chtml" / "fonts" / "woff-v2").glob("MathJax_Main-Regular.woff"))


def test_the_screenshot_taken_offline_is_in_the_docs():
    assert "_static/offline_math.png" in (ROOT / "docs" / "teaching.md").read_text()
    assert 10_000 < (ROOT / "docs" / "_static" / "offline_math.png").stat().st_size < 200_000
