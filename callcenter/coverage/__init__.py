"""A/B post coverage, live: watches presence, keeps every post staffed through AMI actions
(QueueAdd, unpause, penalties), guards pause and logout requests, records gap incidents and
notifies B agents and heads. The rules are pure (callcenter/domain/coverage.py)."""
