"""Product indexes: two kinds behind one search interface, and the one store for durable files.

Import the module you need (this package imports nothing itself, so ``store`` stays light for the
catalog and the vector sets):

* ``store``: atomic writes, fsync, sha256, manifests, folder publish (used beyond the indexes too).
* ``searcher``: ``VectorSearcher`` (what the recommender searches), ``open_index(path)`` (either kind
  from its manifest).
* the flat/IVF kind: ``flat_spec`` (which index), ``flat`` (build, update, search, GPU),
  ``flat_files`` (save, load, check), ``flat_build`` (incremental rebuild of a folder).
* the sharded IVF-PQ kind, past memory: ``sharded_params`` (parameters, nprobe tuning),
  ``vector_sources`` (shard vectors read in chunks), ``sharded_files`` (folder layout),
  ``sharded_build`` (train, add shards, merge), ``sharded_serving`` (memory-mapped serving).
* shared by both: ``ids`` (product ids as int ids), ``vectors`` (checks, normalisation), ``errors``.
"""
