"""Blobs every node can reach: uploaded files and prediction output files, in JetStream object stores.

Two buckets:

- ``cogwheel-files``: files uploaded through ``POST /v1/files``; key = file id.
- ``cogwheel-outputs``: files a model returned (``cog.Path`` outputs); key = ``<prediction id>/<name>``.

A prediction's output never holds a host name: the runner writes ``output_ref(key)`` (a
``cogwheel-output:`` reference) and whoever renders the prediction turns it into an absolute URL on its own
origin with ``absolutize_outputs`` (``{origin}/v1/outputs/<key>``), so every gateway replica and the
webhook dispatcher serve working links.
"""

from libs.blobs.spill import (
    SAFE_PAYLOAD_BYTES,
    SPILL_BUCKET,
    SPILLED_FIELD,
    delete_spilled,
    encoded_size,
    has_spilled,
    restore_spilled_fields,
    spill_large_fields,
    spilled_keys,
)
from libs.blobs.store import (
    Blob,
    BlobNotFound,
    delete_blob,
    get_blob,
    put_blob,
)
from libs.blobs.urls import OUTPUT_REF_PREFIX, absolutize_outputs, output_ref, output_url
from libs.bus.subjects import FILES_BUCKET, OUTPUTS_BUCKET

__all__ = [
    "FILES_BUCKET",
    "SAFE_PAYLOAD_BYTES",
    "SPILLED_FIELD",
    "SPILL_BUCKET",
    "OUTPUTS_BUCKET",
    "OUTPUT_REF_PREFIX",
    "Blob",
    "BlobNotFound",
    "absolutize_outputs",
    "delete_blob",
    "delete_spilled",
    "encoded_size",
    "has_spilled",
    "restore_spilled_fields",
    "spill_large_fields",
    "spilled_keys",
    "get_blob",
    "output_ref",
    "output_url",
    "put_blob",
]
