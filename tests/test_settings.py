"""One settings object: typed, documented, a default secret refused outside the demo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sde.cli.settings import SECTIONS, markdown
from sde.errors import ConfigurationError
from sde.settings import DEMO_SECRET, env_name, get_settings

DOCS = Path(__file__).resolve().parents[1] / "docs" / "settings.md"


def test_every_setting_is_documented_and_the_page_is_current() -> None:
    page = DOCS.read_text()
    for _, model in SECTIONS:
        for name, info in model.model_fields.items():
            assert info.description, f"setting {name} has no help text"
            variable = env_name(name, model)
            assert f"`{variable}`" in page, f"{variable} is missing from docs/settings.md"
    assert page == markdown(), "docs/settings.md is stale: sde settings --markdown > it"


def test_environment_is_read_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDE_ROW_CAP", "5000")
    monkeypatch.setenv("SDE_TIMEOUT_S", "2.5")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "tok-123")
    s = get_settings()
    assert (s.row_cap, s.timeout_s) == (5000, 2.5)
    assert s.hub_api_token is not None
    assert s.hub_api_token.get_secret_value() == "tok-123"
    assert "tok-123" not in repr(s)


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("SDE_ROW_CAP", "lots", "SDE_ROW_CAP"),
        ("SDE_ROW_CAP", "0", "SDE_ROW_CAP"),
        ("SDE_TIMEOUT_S", "-1", "SDE_TIMEOUT_S"),
        ("SDE_DEMO", "perhaps", "SDE_DEMO"),
    ],
)
def test_a_bad_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as info:
        get_settings()
    assert info.value.rule == "settings.invalid"
    assert info.value.message.startswith(f"{named}: ")


def test_the_default_secret_is_refused_outside_the_demo() -> None:
    with pytest.raises(ConfigurationError) as info:
        get_settings(demo=False).secret()
    assert info.value.rule == "settings.default-secret"
    assert "SDE_SECRET_KEY" in info.value.message
    with pytest.raises(ConfigurationError):
        get_settings(demo=False, secret_key="short").secret()  # noqa: S106
    assert get_settings(demo=True).secret() == DEMO_SECRET
    strong = "x" * 40
    assert get_settings(demo=False, secret_key=strong).secret() == strong


def test_sde_settings_masks_secrets() -> None:
    env = {"SDE_SECRET_KEY": "s" * 40, "JUPYTERHUB_API_TOKEN": "tok-xyz", "PATH": "/usr/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "sde.cli", "settings"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    assert "SDE_SECRET_KEY=(set)" in out.stdout
    assert "s" * 40 not in out.stdout
    assert "tok-xyz" not in out.stdout
    assert "JUPYTERHUB_API_TOKEN=(set)" in out.stdout
