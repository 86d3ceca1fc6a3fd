"""Networks by name: a new one is one decorated class, `@register("name")`, whose constructor
takes (cfg: ModelConfig, channels: int, image_size: int)."""
from __future__ import annotations

NETWORKS: dict[str, type] = {}


def register(name: str):
    def wrap(cls):
        NETWORKS[name] = cls
        return cls
    return wrap
