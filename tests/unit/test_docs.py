"""The docs stay true to the code: every setting documented, both commands shown."""

from pathlib import Path

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text()


def test_every_setting_is_in_the_configuration_page():
    missing = [
        name for name in (f"PLOTFARM_{field.upper()}" for field in Settings.model_fields) if name not in CONFIGURATION
    ]
    assert not missing, f"document these in docs/configuration.md (python -m scripts.docs_tables): {missing}"


def test_readme_shows_the_two_commands():
    assert "make run" in README and "make test" in README


def test_ci_runs_exactly_make_test():
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.strip().splitlines()[-1] == "make test"
