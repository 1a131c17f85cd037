"""`asr serve`'s limits (kept apart from asr.serve so that the command line can list them without torch)."""

from __future__ import annotations

from dataclasses import dataclass, fields

LIMIT_HELP = {
    "max_upload_mb": (25.0, "largest file upload in MB (413 above it)"),
    "max_audio_s": (1800.0, "longest uploaded audio in seconds (413 above it)"),
    "max_streams": (64, "WebSocket streams at once (503 with Retry-After above it)"),
    "stream_idle_s": (30.0, "close a stream that sends nothing for this many seconds"),
    "stream_max_s": (3600.0, "close a stream after this many seconds"),
    "max_batch": (64, "largest batch of file pieces or stream chunks in one forward pass"),
    "max_wait_ms": (5.0, "how long a forward pass waits for more work to batch with"),
    "endpoint_s": (0.6, "a pause this long ends a streamed segment (a {text, result} reply)"),
    "drain_s": (60.0, "on SIGTERM, how long in-flight requests and streams may take before exiting anyway"),
}


@dataclass
class Limits:
    max_upload_mb: float = LIMIT_HELP["max_upload_mb"][0]
    max_audio_s: float = LIMIT_HELP["max_audio_s"][0]
    max_streams: int = LIMIT_HELP["max_streams"][0]
    stream_idle_s: float = LIMIT_HELP["stream_idle_s"][0]
    stream_max_s: float = LIMIT_HELP["stream_max_s"][0]
    max_batch: int = LIMIT_HELP["max_batch"][0]
    max_wait_ms: float = LIMIT_HELP["max_wait_ms"][0]
    endpoint_s: float = LIMIT_HELP["endpoint_s"][0]
    drain_s: float = LIMIT_HELP["drain_s"][0]

    def check(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, int | float) and value > 0 and value != float("inf")):
                raise ValueError(f"--{f.name.replace('_', '-')} must be a positive number, not {value}")
