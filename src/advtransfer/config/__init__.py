"""Configs: one generic reader from TOML into frozen dataclasses (:mod:`.reader`), the experiment file's shape
(:mod:`.experiment`), and the pieces every study's schema shares (:mod:`.common`). Each study's own schema lives
in its package."""
