from __future__ import annotations

from pathlib import Path

import pytest

from llmproxy.config import ConfigError, Secret, load_settings


def test_defaults_without_file_or_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings(None, {})
    assert (s.host, s.port, s.data_dir) == ("127.0.0.1", 8080, Path("data"))
    assert s.master_key is None
    openai = s.provider("openai")
    assert openai.base_url == "https://api.openai.com/v1" and openai.api_key is None
    assert s.provider("anthropic").base_url == "https://api.anthropic.com"
    assert s.provider("gemini").base_url == "https://generativelanguage.googleapis.com"


def test_env_wins_over_file(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[server]\nport = 9000\nhost = "127.0.0.2"\n[providers.openai]\nbase_url = "http://file/v1"\n')
    s = load_settings(
        f,
        {
            "LLMPROXY_PORT": "9100",
            "LLMPROXY_OPENAI_BASE_URL": "http://env/v1/",
            "OPENAI_API_KEY": "sk-env",
            "GOOGLE_API_KEY": "g-key",
        },
    )
    assert s.port == 9100 and s.host == "127.0.0.2"
    assert s.provider("openai").base_url == "http://env/v1"
    assert s.provider("openai").api_key == Secret("sk-env")
    assert s.provider("gemini").api_key == Secret("g-key")


def test_gemini_key_prefers_gemini_api_key() -> None:
    s = load_settings(None, {"GEMINI_API_KEY": "a", "GOOGLE_API_KEY": "b", "LLMPROXY_CONFIG": ""})
    assert s.provider("gemini").api_key.value == "a"


def test_openai_compatible_providers_from_file(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text(
        '[providers.ollama]\nbase_url = "http://localhost:11434/v1"\nmodels = ["llama3.3"]\n'
        '[providers.groq]\nkind = "openai-compatible"\nbase_url = "https://api.groq.com/openai/v1"\n'
        'api_key_env = "GROQ_API_KEY"\nheaders = { "x-team" = "a" }\n'
    )
    s = load_settings(f, {"GROQ_API_KEY": "gsk"})
    ollama, groq = s.provider("ollama"), s.provider("groq")
    assert ollama.kind == "openai-compatible" and ollama.models == ("llama3.3",) and ollama.api_key is None
    assert groq.api_key.value == "gsk" and groq.headers == {"x-team": "a"}


@pytest.mark.parametrize(
    "text, needle",
    [
        ("[server]\nprot = 1\n", "server.prot"),
        ("[serve]\n", "[serve]"),
        ('[server]\nport = "80"\n', "server.port"),
        ('[providers.x]\nkind = "magic"\nbase_url = "http://a"\n', "providers.x.kind"),
        ('[providers.x]\nmodels = ["a"]\n', "providers.x needs a base_url"),
        ("[server\n", "not valid TOML"),
    ],
)
def test_bad_config_names_the_problem(tmp_path: Path, text: str, needle: str) -> None:
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=pytest.importorskip("re").escape(needle)):
        load_settings(f, {})


def test_secret_repr_hides_value() -> None:
    s = Secret("sk-very-secret-value")
    assert "very-secret" not in repr(s) and "very-secret" not in str(s)


def test_redis_from_file_or_env_and_no_redis_by_default(tmp_path: Path) -> None:
    assert load_settings(None, {}).redis.url is None
    path = tmp_path / "llmproxy.toml"
    path.write_text('[redis]\nurl = "redis://:pw@cache:6379/2"\nfallback_processes = 3\ntimeout_s = 0.2\n')
    from_file = load_settings(path, {}).redis
    assert from_file.url is not None and from_file.url.value == "redis://:pw@cache:6379/2"
    assert (from_file.fallback_processes, from_file.timeout_s) == (3, 0.2)
    assert "pw" not in repr(from_file)  # the url may hold a password: shown as a Secret
    env = load_settings(path, {"LLMPROXY_REDIS_URL": "redis://other:6379/0"}).redis
    assert env.url is not None and env.url.value == "redis://other:6379/0"
    for text, needle in (
        ('[redis]\nurl = "http://x"\n', "redis://"),
        ("[redis]\nheartbeat_s = 0\n", "redis.heartbeat_s"),
        ("[redis]\nurll = 1\n", "redis.urll"),
    ):
        path.write_text(text)
        with pytest.raises(ConfigError, match=needle):
            load_settings(path, {})
