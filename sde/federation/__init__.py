"""Federation: one question across nodes that keep their own data (docs/federation.md).

Node agents (:mod:`sde.federation.agent`) answer signed requests from their coordinator
with checked partial results; the coordinator splits a query, fans it out and merges.
"""
