"""The demo world: a seeded art-supply shop (B2C) and software vendor (B2B) with personas."""

from leadscore.demo.world import AS_OF, World, generate_world
from leadscore.demo.write import write_world

__all__ = ["AS_OF", "World", "generate_world", "write_world"]
