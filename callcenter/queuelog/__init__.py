"""Asterisk's queue_log as a second source of truth (issue 9).

`tail.py` reads the file from a durable position (inode + offset, rotation and truncation
handled); `reconciler.py` folds its lines (rules in callcenter/domain/queue_log.py) and makes
sure every call queue_log shows finished is stored exactly once: partly-seen calls take their
missing facts from it, calls the AMI view never saw are created from it; `backfill.py` imports a
whole file (`callcenter import-queue-log`).
"""
