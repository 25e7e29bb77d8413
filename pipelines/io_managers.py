"""Parquet IO manager for polars DataFrame assets.

dagster-polars 0.27 calls `scan_parquet(rechunk=…)`, which polars 2 removed, so the project keeps
this small one. Paths are `<base_dir>/<asset key path>[/<partition key>].parquet`: partition-aware,
and written to a temporary file then renamed, so a killed run never leaves a half-written table.
"""

from pathlib import Path

import dagster as dg
import polars as pl
from pydantic import Field

from scene_assets.indexes.store import write_atomic_parquet


class PolarsParquetIOManager(dg.ConfigurableIOManager):
    base_dir: str = Field(description="Folder holding one Parquet file per asset (and partition).")

    def _path(self, context: dg.OutputContext | dg.InputContext) -> Path:
        path = Path(self.base_dir).joinpath(*context.asset_key.path)
        if context.has_asset_partitions:
            keys = context.asset_partition_keys
            if len(keys) != 1:
                raise dg.Failure(f"{context.asset_key.to_user_string()}: one partition per output, got {len(keys)}")
            return path / f"{keys[0]}.parquet"
        return path.with_suffix(".parquet")

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame) -> None:
        if not isinstance(obj, pl.DataFrame):
            raise dg.Failure(f"{context.asset_key.to_user_string()}: expected a polars DataFrame, got {type(obj).__name__}")
        path = self._path(context)
        write_atomic_parquet(obj, path)
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> pl.DataFrame:
        if context.has_asset_partitions and len(context.asset_partition_keys) != 1:
            # a downstream asset reading every partition (AllPartitionMapping): their frames, in key order
            base = Path(self.base_dir).joinpath(*context.asset_key.path)
            paths = [base / f"{key}.parquet" for key in sorted(context.asset_partition_keys)]
            missing = [p.stem for p in paths if not p.is_file()]
            if missing:
                raise dg.Failure(f"{context.asset_key.to_user_string()}: partitions {missing[:5]} not materialized "
                                 f"({len(missing)} of {len(paths)}); materialize them first")
            return pl.concat([pl.read_parquet(p) for p in paths], how="vertical_relaxed") if paths else pl.DataFrame()
        path = self._path(context)
        if not path.is_file():
            raise dg.Failure(f"{path} not found: materialize {context.asset_key.to_user_string()} first")
        return pl.read_parquet(path)
