"""The demo: a simulated PBX that speaks AMI over TCP to the real service, with live zh-CN output.

This package owns ``callcenter demo``: the PBX simulator (``simulator``: hotline calls and agent
presence for the configured departments, as the AMI events a real Asterisk emits) and the runner
(``run``: wiring the simulator to the very same ``Service`` that ``serve`` runs, one live line per
completed call, and the closing summary). Nothing downstream of the AMI socket knows it is a
simulation.
"""
