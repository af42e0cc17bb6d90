"""gRPC message size limits, the same on every server and client.

gRPC's default (4 MiB received) is below what a prediction may legitimately carry back (an output of any
size, read by `GetPrediction`), and a limit that differs between the two ends turns into a 502 at the
gateway. Every channel and server is built with these options; extra options given by a caller come after
them and win.
"""

MAX_MESSAGE_BYTES = 64 * 1024 * 1024

MESSAGE_SIZE_OPTIONS: tuple[tuple[str, object], ...] = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
)
