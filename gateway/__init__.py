"""Lifeline: a survivability gateway that keeps a branch office calling when the cloud PBX is gone."""

__version__ = "0.1.0"
