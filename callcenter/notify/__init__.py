"""Notifications: deadline warnings and escalations, and the channels that deliver them.

Owns the `Channel` interface and its implementations (the agent panel's in-memory broadcaster,
Twilio SMS through the real ``twilio`` client, e-mail through SMTP), the `Notifier` that sends
each notification at most once across restarts and service instances (it claims the unique key
in the ``notifications`` table before sending), and the deadline watch with its APScheduler jobs
(warn the assignee before a task's deadline, escalate overdue tasks to the department head,
optionally acknowledge the missed call to the caller by SMS).
"""
