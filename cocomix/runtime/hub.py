"""Where a Hugging Face asset comes from: a local folder, or a hub name read from the local
Hugging Face cache or fetched where the hub is reachable.

``teacher.path``, ``tokenizer.path`` (``tokenizer=hf``) and SAELens's registry name assets the same
way ``transformers`` does: an existing folder is read as it is; anything else that is spelt like a
hub repository (``gpt2``, ``EleutherAI/pythia-160m``) is a hub name. Before a hub name is used, we
check that it can be had (in the cache, or the hub resolves), so an offline machine gets one clear
line instead of a minute of retries inside ``huggingface_hub``.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

from cocomix.registry import CocomixError

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


def local_folder(spec: str) -> Path | None:
    """``spec`` as a local folder when it is one (``~`` expanded), else None."""
    path = Path(spec).expanduser()
    return path if path.is_dir() else None


def is_hub_name(spec: str) -> bool:
    """Spelt like a hub repository (``name`` or ``org/name``) and not like a file path."""
    return bool(_REPO_ID.match(spec)) and not spec.startswith((".", "~")) and ".." not in spec


def hub_unreachable() -> str | None:
    """Why the hub cannot be reached now (None: it can). Cheap: reads the offline switch and
    resolves the endpoint's host name, nothing is downloaded."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return f"{host} cannot be resolved (no network)"
    return None


def cached_config(name: str) -> bool:
    """Whether the hub repository ``name``'s ``config.json`` is in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(name, "config.json")
    return isinstance(found, str) and os.path.isfile(found)


def require_source(spec: str, key: str, what: str) -> Path | str:
    """The folder ``spec`` names, or the hub name when it is one that can be had now.

    :param key: the recipe key that set it (named in the errors), e.g. ``teacher.path``.
    :param what: what the folder must hold, e.g. "a Hugging Face causal LM"; a folder must have a
        ``config.json`` (callers with other folders check them before asking).
    """
    if not spec:
        raise CocomixError(f"{key} is empty; set {key}=DIR, a local folder with {what}, or a hub name")
    folder = local_folder(spec)
    if folder is not None:
        if not (folder / "config.json").is_file():
            raise CocomixError(f"{key}={spec} is a folder without config.json, so not {what}; point {key} "
                               f"at the folder that holds config.json")
        return folder
    if not is_hub_name(spec):
        raise CocomixError(f"{key}={spec} does not exist; point {key} at a local folder with {what} "
                           f"or a hub name (e.g. gpt2, EleutherAI/pythia-160m)")
    if cached_config(spec):
        return spec
    reason = hub_unreachable()
    if reason is not None:
        raise CocomixError(
            f"{key}={spec} is not a local folder, so it is a Hugging Face hub name, and the hub cannot be "
            f"reached ({reason}); download it where the hub is reachable (`huggingface-cli download "
            f"{spec} --local-dir DIR`) and set {key}=DIR"
        )
    return spec


def offline_kwargs(source: Path | str) -> dict[str, bool]:
    """``from_pretrained`` options: a local folder or a cached name is read without the network."""
    return {"local_files_only": isinstance(source, Path) or cached_config(str(source))}


__all__ = ["cached_config", "hub_unreachable", "is_hub_name", "local_folder", "offline_kwargs", "require_source"]
