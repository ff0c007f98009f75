"""The Asterisk Manager Interface adapter.

``framing`` cuts the byte stream into messages, ``translate`` turns AMI events into the domain's
normalised events, ``client`` keeps one PBX connection alive (login, actions with timeouts,
reconnect, ping watchdog, resync) and ``server`` is a small AMI server used by replay, the demo
and the tests to play a recorded or simulated PBX over real TCP.
"""
