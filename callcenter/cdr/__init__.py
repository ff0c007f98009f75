"""Asterisk's CDR file (cdr_csv's Master.csv) as a second source: calls that never reached a queue
(hung up in the IVR, after hours) while the service was not listening. Rules in domain/cdr.py."""
