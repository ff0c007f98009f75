"""The pure domain core: normalised PBX events, call tracking, presence, metric formulas.

Nothing here performs I/O, reads the wall clock or imports a framework; every rule about time
takes the moment as a parameter. A test (tests/test_architecture.py) keeps it so.
"""
