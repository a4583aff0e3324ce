"""The lab: reading and reporting the experiment files under ``docs/experiments``."""
