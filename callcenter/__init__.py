"""Contact-center service for government consultation hotlines.

Packages: ``domain`` (pure rules, no I/O), ``ami`` (Asterisk Manager Interface adapter and a
local AMI server for replay and demo), ``storage`` (SQLAlchemy persistence and migrations),
``settings`` (configuration), ``service`` (the composition root) and ``cli``.
"""
__version__ = "0.1.0"
