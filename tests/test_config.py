"""Settings: GUARD_* variables (nested and the first release's names), validation, immutability."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from guard.config import (PROCESS_ROLES, LiveSettings, MatchSettings, Settings, WebhookSettings, env_names,
                          parse_roles)
from guard.errors import ConfigError


@pytest.fixture
def env(monkeypatch):
    """Set GUARD_* variables for one test, starting from none at all."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("GUARD_"):
            monkeypatch.delenv(name)

    def set_vars(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return set_vars


def test_defaults_are_those_of_the_first_release(env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env()
    assert settings == Settings()
    assert settings.home == tmp_path / "fingerprints" and settings.uploads == tmp_path / "fingerprints" / "uploads"
    assert (settings.sample_fps, settings.job_workers, settings.upload_max_bytes) == (4.0, 2, 2 * 1024**3)
    assert settings.match.seed_radius == 32 and settings.match.rates == (1.0, 0.95, 1.05, 0.9, 1.1)
    assert settings.live.start_timeout == 60.0 and settings.webhook.url is None


def test_top_level_and_nested_variables(env, tmp_path):
    env(GUARD_HOME=str(tmp_path / "store"), GUARD_SAMPLE_FPS="5", GUARD_JOB_WORKERS="3",
        GUARD_ALLOW_PRIVATE_ADDRESSES="yes", GUARD_UPLOAD_DIR=str(tmp_path / "up"),
        GUARD_MATCH__SEED_RADIUS="28", GUARD_MATCH__RATES="[1.0, 0.9]", GUARD_MATCH__MIRROR="false",
        GUARD_LIVE__WINDOW_SECONDS="12.5", GUARD_WEBHOOK__URL="https://hooks.example/x",
        GUARD_WEBHOOK__SECRET="s3cret", GUARD_WEBHOOK__CONNECT_TIMEOUT="2")
    settings = Settings.from_env()
    assert settings.home == tmp_path / "store" and settings.uploads == tmp_path / "up"
    assert (settings.sample_fps, settings.job_workers, settings.allow_private_addresses) == (5.0, 3, True)
    assert settings.match == MatchSettings(seed_radius=28, rates=(1.0, 0.9), mirror=False)
    assert settings.live == LiveSettings(window_seconds=12.5)
    assert settings.webhook == WebhookSettings(url="https://hooks.example/x", secret="s3cret", connect_timeout=2)


def test_a_whole_section_as_json_and_empty_variables_ignored(env):
    env(GUARD_LIVE='{"stall_timeout": 3, "give_up_after": 9}', GUARD_SAMPLE_FPS="", GUARD_MATCH__SEED_RADIUS="")
    settings = Settings.from_env()
    assert (settings.live.stall_timeout, settings.live.give_up_after) == (3.0, 9.0)
    assert settings.sample_fps == 4.0 and settings.match.seed_radius == 32


def test_the_first_release_names_still_work_and_the_nested_names_win(env):
    env(GUARD_LIVE_START_TIMEOUT="7", GUARD_WEBHOOK_URL="http://old.example/hook", GUARD_WEBHOOK_SECRET="old")
    settings = Settings.from_env()
    assert settings.live.start_timeout == 7.0 and settings.live.window_seconds == 24.0
    assert (settings.webhook.url, settings.webhook.secret) == ("http://old.example/hook", "old")
    env(GUARD_LIVE__START_TIMEOUT="9", GUARD_WEBHOOK__URL="http://new.example/hook")
    settings = Settings.from_env()
    assert settings.live.start_timeout == 9.0
    assert (settings.webhook.url, settings.webhook.secret) == ("http://new.example/hook", "old")


def test_overrides_win_over_the_environment_and_none_is_no_override(env, tmp_path):
    env(GUARD_HOME=str(tmp_path / "env"), GUARD_SAMPLE_FPS="5")
    settings = Settings.from_env(home=tmp_path / "given", sample_fps=None)
    assert settings.home == tmp_path / "given" and settings.sample_fps == 5.0


def test_plain_construction_never_reads_the_environment(env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env(GUARD_HOME=str(tmp_path / "elsewhere"), GUARD_SAMPLE_FPS="not a number", GUARD_MATCH__SEED_RADIUS="1",
        GUARD_WEBHOOK_URL="http://127.0.0.1:9/hook", GUARD_WEBHOOK_SECRET="x")
    settings = Settings(home=tmp_path / "mine", job_workers=1)
    assert settings.home == tmp_path / "mine" and settings.sample_fps == 4.0
    assert settings.match.seed_radius == 32 and settings.webhook.url is None
    assert Settings().home == tmp_path / "fingerprints"
    assert settings.replace(job_workers=2).sample_fps == 4.0  # copies do not read it either
    assert settings.with_home(tmp_path / "other").match.seed_radius == 32


@pytest.mark.parametrize("name, value, message", [
    ("GUARD_SAMPLE_FPS", "fast", "GUARD_SAMPLE_FPS='fast': Input should be a valid number"),
    ("GUARD_SAMPLE_FPS", "0", "GUARD_SAMPLE_FPS='0': Input should be greater than 0"),
    ("GUARD_JOB_WORKERS", "0", "GUARD_JOB_WORKERS='0': Input should be greater than or equal to 1"),
    ("GUARD_UPLOAD_MAX_BYTES", "2GB", "GUARD_UPLOAD_MAX_BYTES='2GB': Input should be a valid integer"),
    ("GUARD_ALLOW_PRIVATE_ADDRESSES", "maybe", "GUARD_ALLOW_PRIVATE_ADDRESSES='maybe': Input should be a valid boolean"),
    ("GUARD_MATCH__SEED_RADIUS", "-1", "GUARD_MATCH__SEED_RADIUS='-1': Input should be greater than or equal to 0"),
    ("GUARD_MATCH__MIN_UNIQUENESS", "2", "GUARD_MATCH__MIN_UNIQUENESS='2': Input should be less than or equal to 1"),
    ("GUARD_MATCH__RATES", "1.0,0.9", "GUARD_MATCH__RATES='1.0,0.9': not valid JSON"),
    ("GUARD_MATCH__RATES", "[1.0, -1]", "GUARD_MATCH__RATES: Value error, every rate must be greater than 0"),
    ("GUARD_MATCH__SEED_RADIUS_BITS", "3", "GUARD_MATCH__SEED_RADIUS_BITS='3': Extra inputs are not permitted"),
    ("GUARD_LIVE", "{window: 3}", "GUARD_LIVE='{window: 3}': not valid JSON"),
    ("GUARD_LIVE_START_TIMEOUT", "soon", "GUARD_LIVE_START_TIMEOUT='soon': Input should be a valid number"),
    ("GUARD_WEBHOOK__URL", "ftp://x/y", "GUARD_WEBHOOK__URL: Value error, must be an http:// or https:// URL"),
])
def test_a_bad_value_names_the_variable_and_the_problem(env, name, value, message):
    env(**{name: value})
    with pytest.raises(ConfigError) as raised:
        Settings.from_env()
    text = str(raised.value)
    assert text.startswith("invalid settings: ") and message in text and "\n" not in text


def test_secrets_and_urls_are_not_echoed_in_errors(env):
    env(GUARD_WEBHOOK_URL="ftp://user:hunter2@x/y")
    with pytest.raises(ConfigError) as raised:
        Settings.from_env()
    assert "hunter2" not in str(raised.value) and "GUARD_WEBHOOK_URL" in str(raised.value)


def test_several_problems_are_reported_together(env):
    env(GUARD_SAMPLE_FPS="x", GUARD_LIVE__STALL_TIMEOUT="-3")
    with pytest.raises(ConfigError, match=r"GUARD_LIVE__STALL_TIMEOUT='-3'.*; GUARD_SAMPLE_FPS='x'|"
                                          r"GUARD_SAMPLE_FPS='x'.*; GUARD_LIVE__STALL_TIMEOUT='-3'"):
        Settings.from_env()


def test_an_override_with_a_bad_value_is_named_as_a_setting(env):
    with pytest.raises(ConfigError, match="setting job_workers=0: Input should be greater than or equal to 1"):
        Settings.from_env(job_workers=0)


def test_the_names_a_field_can_be_set_by():
    assert env_names(("sample_fps",)) == ["GUARD_SAMPLE_FPS"]
    assert env_names(("match", "seed_radius")) == ["GUARD_MATCH__SEED_RADIUS", "GUARD_MATCH"]
    assert env_names(("live", "start_timeout")) == ["GUARD_LIVE__START_TIMEOUT", "GUARD_LIVE",
                                                     "GUARD_LIVE_START_TIMEOUT"]


def test_settings_are_frozen_hashable_and_replaced_with_validation(tmp_path):
    settings = Settings(home=tmp_path)
    with pytest.raises(ValidationError, match="frozen"):
        settings.sample_fps = 2.0
    with pytest.raises(ValidationError, match="frozen"):
        settings.match.seed_radius = 1
    assert hash(settings) == hash(Settings(home=tmp_path))
    changed = settings.replace(allow_private_addresses=True, live=settings.live.replace(window_seconds=5))
    assert changed.allow_private_addresses and changed.live.window_seconds == 5.0
    assert not settings.allow_private_addresses and settings.live.window_seconds == 24.0
    with pytest.raises(ValidationError, match="greater than 0"):
        settings.replace(sample_fps=-1)
    with pytest.raises(ValidationError, match="Extra inputs"):
        settings.replace(no_such_field=1)
    with pytest.raises(ValidationError):
        Settings(home=tmp_path, match={"seed_radius": "wide"})
    assert Settings(home=str(tmp_path)).home == tmp_path  # types are coerced
    assert Settings(home=tmp_path, match={"rates": [1.0]}).match.rates == (1.0,)


def test_roles_parse_in_a_fixed_order_and_refuse_unknown_names():
    assert parse_roles("dispatch, JOBS") == ("jobs", "dispatch")
    assert parse_roles(PROCESS_ROLES) == PROCESS_ROLES
    with pytest.raises(ConfigError, match="unknown role.*webhooks"):
        parse_roles("api,webhooks")
    with pytest.raises(ConfigError, match="no role"):
        parse_roles(" , ")


def test_the_cli_turns_a_bad_variable_into_exit_2_with_one_line(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("GUARD_")}
    env.update(GUARD_HOME=str(tmp_path / "store"), GUARD_MATCH__SEED_RADIUS="wide")
    done = subprocess.run([sys.executable, "-m", "guard", "refs", "list"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: invalid settings: GUARD_MATCH__SEED_RADIUS='wide': Input should be a valid integer, "
        "unable to parse string as an integer"]
    assert not Path(tmp_path / "store").exists(), "nothing is created with bad settings"
    roles = subprocess.run([sys.executable, "-m", "guard", "serve", "--roles", "api,cooking"],
                           capture_output=True, text=True, env={**env, "GUARD_MATCH__SEED_RADIUS": "30"}, timeout=60)
    assert roles.returncode == 2 and roles.stderr.strip().splitlines() == [
        "error: unknown role(s) cooking: choose from api, jobs, monitor, dispatch"]
