"""One dynamic partition per export batch; the inbox sensor and the periodic schedule add them."""

import dagster as dg

scene_batches = dg.DynamicPartitionsDefinition(name="scene_batches")
