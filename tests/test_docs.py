"""The documentation stays true: generated tables equal what the results JSON says, the CLI reference equals the
parser, every relative link resolves, the README stays a front page, and the site builds strictly."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_generated_tables_and_cli_reference_are_up_to_date():
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "generate.py"), "--check"], capture_output=True,
                          text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_generated_headline_has_a_row_per_benchmarked_family():
    sys.path.insert(0, str(ROOT / "docs"))
    import generate

    rows = [line for line in generate.headline().splitlines()[2:] if line.startswith("|")]
    assert {r.split("|")[1].strip() for r in rows} >= {"poisson2d", "elasticity2d", "potential3d"}
    for row in rows:  # the best geoop model's error and its gain over the better outside baseline are numbers
        assert re.search(r"\| \w+ \d\.\d{4} \|", row) and re.search(r"[+-]\d+%", row), row


def test_every_relative_link_resolves():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#]+)\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} links to missing {target}"


def test_readme_is_a_front_page():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    assert text.splitlines()[3:5] == ["make demo   # main job: creates .venv, installs geoop, makes data, trains, "
                                      "predicts -> out/demo/", "make test   # creates .venv if needed, installs "
                                      "geoop[dev], runs the test suite"]


def test_the_site_builds_in_strict_mode(tmp_path):
    """mkdocs with the API reference from the docstrings and the notebooks: a broken link, a page missing from
    the navigation or a reference that does not resolve is a warning, and strict mode makes it an error."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          capture_output=True, text=True, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "training" / "index.html").read_text()
    assert "RunConfig" in api and "load_config" in api  # the docstrings made it into the reference
    assert (tmp_path / "site" / "notebooks" / "01_quickstart_2d" / "index.html").is_file()
    assert (tmp_path / "site" / "results" / "accuracy.png").is_file()
