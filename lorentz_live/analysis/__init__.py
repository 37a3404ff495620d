"""Headless analysis of reconstructed maps (numpy only, no Qt): the live texture census."""

from lorentz_live.analysis.census import Census, FoundBubble, texture_census

__all__ = ["Census", "FoundBubble", "texture_census"]
