"""The README stays true to the code: every setting documented, both commands shown."""

from pathlib import Path

from shared.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_configuration_table():
    missing = [f"PLOTFARM_{name.upper()}" for name in Settings.model_fields if f"PLOTFARM_{name.upper()}" not in README]
    assert not missing, f"document these in README.md's configuration table: {missing}"


def test_readme_shows_the_two_commands():
    assert "make run" in README and "make test" in README


def test_ci_runs_exactly_make_test():
    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    assert ci.strip().splitlines()[-1] == "make test"
