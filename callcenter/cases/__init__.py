"""First-ask cases (首问负责制): applies the pure case rules (callcenter/domain/cases.py) to
committed calls, records dispositions and reassignments with an audit log, and answers the
owner-routing question the IVR asks."""
