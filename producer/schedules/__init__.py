"""Schedules and inbox folders, one job per module:

- ``timing``: when a schedule is due (duration text, cron and interval maths, catch-up plans); pure.
- ``locks``: the Redis keys of schedules (due-time locks, run heartbeats, recovery marks).
- ``inbox``: which settled files a run may take, and claiming them.
- ``runner``: a run's life cycle (fire, submit through ``producer.submission``, record).
- ``recovery``: runs whose process died, found and resumed from what they stored.
- ``outbox``: a finished batch's files to the outbox and the done/failed folders.
- ``beat``: the Celery beat scheduler on the ``schedule`` table.
"""
