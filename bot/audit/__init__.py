"""The audit trail read back: sources, chain verification, filters and the access report.

jit writes the trail (``bot.adapters.redis_store``: one hash-chained event per state change, in the
same MULTI/EXEC as the change) and copies it to sinks (``workers.audit_sinks``). This package is
what an auditor's tools (``jit audit verify|query|report|export``, in ``bot.audit_tools``) run on:

- :mod:`bot.audit.records`    one event as a JSON line, timestamps, the ``Entry`` a source yields;
- :mod:`bot.audit.chain`      the hash chain recomputed: the first event changed, removed, inserted
  or reordered, named by seq;
- :mod:`bot.audit.archive`    the S3 archive's layout and its signed digests (Ed25519);
- :mod:`bot.audit.sources`    the Redis stream and a JSONL file, each read as entries;
- :mod:`bot.audit.s3_source`  the S3 archive read as entries, its batches checked against their digests;
- :mod:`bot.audit.filters`    ``--user/--resource/--role/--event/--since/--until/--request``;
- :mod:`bot.audit.report`     who had access to a resource in a period, approved by whom;
- :mod:`bot.audit.formats`    a table for people, JSON lines and CSV for machines.

Everything but the sources is pure; ``sources`` and ``s3_source`` are handed their Redis and S3
clients (they import neither library), so tests and tools decide where the bytes come from.
"""
