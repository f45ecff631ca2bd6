"""Scaling out: the watcher enqueues, workers on many machines ingest and render.

Imported only with a ``[cluster] database_url`` (`daemon.commands` decides): the single
machine never loads procrastinate or psycopg. The task engine is procrastinate on the
library's own PostgreSQL, so jobs, claims and stems share one transactional store and there
is no broker to run (`app`). The watcher's lanes hand their items to the queue
(`dispatch`); `traum worker` runs them (`worker`, `tasks`); a claim per item in the library
database makes every effect happen once (`daemon.store.cluster`).
"""
