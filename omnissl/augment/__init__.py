"""Augmentation policies: registered batch-level ops composed into global and local views."""

from omnissl.augment.policy import ViewPolicy, build_policy

__all__ = ["ViewPolicy", "build_policy"]
