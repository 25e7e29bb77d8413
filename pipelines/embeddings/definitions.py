import dagster as dg

from pipelines.embeddings.assets import (
    image_text_alignment,
    product_image_features,
    product_image_vectors,
    product_text_vectors,
)


def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[product_image_features, product_text_vectors, image_text_alignment, product_image_vectors]
    )
