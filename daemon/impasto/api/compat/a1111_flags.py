"""The daemon's settings under AUTOMATIC1111's command line flag names (GET /cmd-flags)."""

from __future__ import annotations

from typing import Any

from impasto.services.container import Services

LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def command_line_flags(services: Services) -> dict[str, Any]:
    """A1111's flags (its FlagsModel's names) with the values Impasto runs with.

    Flags with no Impasto counterpart carry A1111's defaults; the token is never shown.
    Folders are given relative to the models folder (``.``): no local path leaves the daemon.
    """
    settings = services.settings
    cpu_only = settings.provider == "cpu"
    return {
        "api": True,
        "nowebui": False,
        "listen": settings.host not in LOOPBACK,
        "server_name": None if settings.host in LOOPBACK else settings.host,
        "port": settings.port,
        "api_auth": None,
        "api_log": False,
        "api_server_stop": settings.api_server_stop,
        "cors_allow_origins": ",".join(settings.allowed_origins) or None,
        "cors_allow_origins_regex": None,
        "timeout_keep_alive": 30,
        "data_dir": ".",
        "models_dir": ".",
        "ckpt_dir": ".",
        "ckpt": None,
        "vae_dir": "vae",
        "vae_path": None,
        "lora_dir": "loras",
        "lyco_dir_backcompat": "loras",
        "embeddings_dir": "embeddings",
        "hypernetwork_dir": "hypernetworks",
        "styles_file": [],
        "skip_torch_cuda_test": cpu_only,
        "use_cpu": ["all"] if cpu_only else [],
        "device_id": None,
        "lowvram": False,
        "medvram": False,
        "medvram_sdxl": False,
        "lowram": False,
        "precision": "autocast",
        "no_half": False,
        "no_half_vae": False,
        "upcast_sampling": False,
        "xformers": False,
        "opt_sdp_attention": False,
        "disable_safe_unpickle": False,
        "enable_insecure_extension_access": False,
        "disable_extra_extensions": False,
        "disable_all_extensions": False,
        "hide_ui_dir_config": True,
        "freeze_settings": False,
        "share": False,
        "ngrok": None,
        "gradio_auth": None,
        "tls_keyfile": None,
        "tls_certfile": None,
        "subpath": None,
        "skip_version_check": True,
        "skip_install": True,
        "no_download_sd_model": True,
        "do_not_download_clip": True,
        "log_startup": False,
        "loglevel": settings.log_level.upper(),
    }
