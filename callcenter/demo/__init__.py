"""The demo: a simulated PBX that speaks AMI over TCP to the real service, with live zh-CN output.

This package owns ``callcenter demo``: the PBX simulator (``simulator``: hotline calls and agent
presence for the configured departments, as the AMI events a real Asterisk emits; ``dialplan``:
the generated hotline dialplan around the service's FastAGI IVR and the simulated callers'
keys; ``agi_client``: Asterisk's side of a FastAGI conversation over TCP) and the runner (``run``:
wiring the simulator to the very same ``Service`` and IVR that ``serve`` runs, one live line per
completed call (``lines``), and the closing summary with the IVR figures of ``ivr_summary``). Nothing
downstream of the AMI and FastAGI sockets knows it is a simulation.
"""
