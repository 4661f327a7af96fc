from pathlib import Path

import pytest

from journey_engine.errors import SettingsError
from journey_engine.settings import Settings


def test_defaults_serve_on_localhost_8080_with_embedded_database() -> None:
    settings = Settings.from_env({})
    assert settings.database_url is None
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.data_dir.name == "journey-engine"


def test_environment_variables_override_defaults() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://u@db:5432/j",
            "JOURNEY_PORT": "9000",
            "JOURNEY_DATA_DIR": "/srv/je",
            "JOURNEY_LOG_LEVEL": "debug",
            "JOURNEY_PHONE_REGION": "gb",
        }
    )
    assert settings.database_url == "postgresql://u@db:5432/j"
    assert settings.port == 9000
    assert settings.data_dir == Path("/srv/je")
    assert settings.log_level == "DEBUG"
    assert settings.phone_region == "GB"


def test_empty_variable_means_default() -> None:
    assert Settings.from_env({"DATABASE_URL": "", "JOURNEY_PORT": ""}).port == 8080


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"JOURNEY_PORT": "eighty"}, "JOURNEY_PORT"),
        ({"JOURNEY_PORT": "70000"}, "JOURNEY_PORT"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"JOURNEY_LOG_LEVEL": "chatty"}, "JOURNEY_LOG_LEVEL"),
        ({"JOURNEY_PHONE_REGION": "XX"}, "JOURNEY_PHONE_REGION"),
        ({"JOURNEY_MAX_BODY_BYTES": "10"}, "JOURNEY_MAX_BODY_BYTES"),
        ({"JOURNEY_POOL_MIN_SIZE": "20", "JOURNEY_POOL_MAX_SIZE": "5"}, "JOURNEY_POOL_MIN_SIZE"),
        ({"JOURNEY_INGEST_WRITERS": "0"}, "JOURNEY_INGEST_WRITERS"),
        ({"JOURNEY_INGEST_WRITERS": "4", "JOURNEY_POOL_MAX_SIZE": "4"}, "JOURNEY_INGEST_WRITERS"),
    ],
)
def test_bad_setting_is_refused_naming_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert named in caught.value.message


def test_the_default_ingest_writers_fit_a_small_pool() -> None:
    assert Settings.from_env({"JOURNEY_POOL_MAX_SIZE": "3"}).ingest_writers == 2
    assert Settings.from_env({"JOURNEY_POOL_MAX_SIZE": "1", "JOURNEY_POOL_MIN_SIZE": "1"}).ingest_writers == 1
    assert Settings.from_env({}).ingest_writers == 3


def test_unknown_journey_variables_are_ignored() -> None:
    assert Settings.from_env({"JOURNEY_SOMETHING_ELSE": "1"}).port == 8080
