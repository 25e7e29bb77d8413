"""Catalog shards: products split by a stable hash of product_id, one partition per shard.

The shard count is fixed per deployment (SCENE_MATCHER_SHARDS, default 4): changing it re-shards
every vector file, so pick it once for the catalog size you expect (about 50k products a shard).
"""

import os

import dagster as dg

from scene_assets.embeddings import shard_keys

N_SHARDS = int(os.environ.get("SCENE_MATCHER_SHARDS", "4"))
catalog_shards = dg.StaticPartitionsDefinition(shard_keys(N_SHARDS))
