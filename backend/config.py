"""Merit's configuration: one typed settings object.

Values come, highest priority first, from keyword arguments, ``MERIT_*`` environment variables,
then ``$MERIT_HOME/config.toml``. Nothing else in Merit reads ``os.environ`` for configuration.
"""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from backend.errors import ConfigError
from backend.limits import UPDATE_MAX_BYTES


def default_home() -> Path:
    return Path(os.environ.get("MERIT_HOME", Path.home() / ".merit")).expanduser()


class Settings(BaseSettings):
    # no float setting means anything at NaN or infinity (an infinite RPC timeout overflowed time_t)
    model_config = SettingsConfigDict(env_prefix="MERIT_", extra="ignore", allow_inf_nan=False)

    home: Path = Field(default_factory=default_home, description="state directory: embedded store, deployments, keys")
    chain: str = Field(
        "embedded", description="'embedded' (in-process EVM) or a JSON-RPC URL such as http://127.0.0.1:8545"
    )
    ipfs: str = Field(
        "embedded",
        description="'embedded' (blockstore under $MERIT_HOME/ipfs) or a Kubo RPC URL such as http://127.0.0.1:5001",
    )
    market: str | None = Field(None, description="Marketplace address; default: deployments/<chain_id>.json")
    private_key: SecretStr | None = Field(None, description="hex private key that signs transactions and API requests")
    api_url: str | None = Field(
        None, description="REST API base URL for the trainer client, e.g. http://127.0.0.1:8000"
    )
    rpc_timeout: float = Field(30.0, gt=0, description="seconds per JSON-RPC request")
    rpc_retries: int = Field(5, ge=0, description="retries of transient RPC errors, with exponential backoff")
    ipfs_timeout: float = Field(60.0, gt=0, description="seconds per Kubo RPC request")
    ipfs_retries: int = Field(3, ge=0)
    max_update_bytes: int = Field(UPDATE_MAX_BYTES, gt=0, description="size cap of one trainer update")
    torch_threads: int | None = Field(
        None,
        ge=1,
        description="intra-op threads for training; unset: the cores not "
        "busy when the process starts (backend/threads.py), or OMP_NUM_THREADS if set",
    )
    # The REST API server (`merit api serve`); README, "Using the REST API", says what each does.
    api_origin: str | None = Field(
        None,
        description="origin(s) trainers use to reach the API, comma-separated, e.g. "
        "https://merit.example.org; signed requests must name one",
    )
    api_writes_per_minute: float = Field(60.0, gt=0, description="signed writes per address per minute")
    api_write_burst: int = Field(10, ge=1)
    api_ip_writes_per_minute: float = Field(120.0, gt=0, description="write attempts per client IP per minute")
    api_ip_write_burst: int = Field(30, ge=1)
    api_reads_per_minute: float = Field(300.0, gt=0, description="read requests per client IP per minute")
    api_read_burst: int = Field(60, ge=1)
    api_max_inflight_upload_bytes: int = Field(
        256 * 1024 * 1024, gt=0, description="upload bytes held at once, all clients"
    )
    api_body_timeout_s: float = Field(300.0, gt=0, description="seconds an upload body may take to arrive")
    api_header_timeout_s: float = Field(10.0, gt=0, description="seconds a client may take to send a request's headers")
    api_keep_alive_s: int = Field(5, ge=1, description="seconds an idle keep-alive connection stays open")
    api_max_connections: int = Field(256, ge=1, description="open connections (and requests) before new ones get 503")
    api_chain_cache_s: float = Field(
        1.0,
        ge=0,
        description="seconds a clock-dependent chain read (a round's phase) is reused within one block; "
        "stored state is reused until the next block (0: no cache at all)",
    )
    api_forwarded_allow_ips: str | None = Field(
        None,
        description="proxies whose X-Forwarded-For is trusted for the "
        "client IP (uvicorn's forwarded_allow_ips); none by default",
    )

    @field_validator("chain", "ipfs")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return check_endpoint(value)

    @property
    def ipfs_dir(self) -> Path:
        return self.home / "ipfs"

    @property
    def deployments_dir(self) -> Path:
        return self.home / "deployments"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=default_home() / "config.toml")
        return (init_settings, env_settings, toml)


def check_endpoint(value: str) -> str:
    """A chain or storage endpoint: 'embedded' or a URL (the settings and the CLI's --chain/--ipfs)."""
    value = value.strip()
    if value != "embedded" and not value.startswith(("http://", "https://", "ws://", "wss://")):
        raise ValueError(f"expected 'embedded' or an http(s):// URL, got {value!r}")
    return value


CONFIG_FILE_MAX_BYTES = 1 << 20


def check_config_file(path: Path) -> None:
    """Refuse, by name, a config.toml that pydantic-settings would trip on with a bare TOMLDecodeError,
    OSError or RecursionError: unreadable, too large (a device that never ends), nested too deeply or
    not TOML. (tomllib is pure Python, so deep nesting costs frames, not the C stack.)"""
    if not path.exists():
        return
    hint = "fix or remove it; see README, 'Configuration'"
    try:
        with open(path, "rb") as handle:
            data = handle.read(CONFIG_FILE_MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}", hint) from None
    if len(data) > CONFIG_FILE_MAX_BYTES:
        raise ConfigError(f"config file {path} is larger than {CONFIG_FILE_MAX_BYTES} bytes", hint)
    try:
        tomllib.loads(data.decode())
    except RecursionError:
        raise ConfigError(f"config file {path} nests too deeply", hint) from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}", hint) from None


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment and config file, plus ``overrides``; a bad value is a
    ConfigError naming the variable, never a traceback."""
    check_config_file(default_home() / "config.toml")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"MERIT_{'_'.join(map(str, e['loc'])).upper()}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ConfigError(
            f"invalid configuration: {problems}", "fix the environment variable, flag or $MERIT_HOME/config.toml entry"
        ) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
