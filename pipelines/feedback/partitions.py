"""One dynamic partition per range of new feedback event ids; the feedback sensor adds them."""

import dagster as dg

feedback_event_ranges = dg.DynamicPartitionsDefinition(name="feedback_event_ranges")


def range_key(first: int, last: int) -> str:
    """``first``..``last`` event ids (inclusive) as a partition key that sorts in id order."""
    return f"{int(first):012d}-{int(last):012d}"


def parse_range(key: str) -> tuple[int, int]:
    first, _, last = key.partition("-")
    try:
        return int(first), int(last)
    except ValueError:
        raise dg.Failure(f"feedback partition {key!r}: not a range of event ids (000000000001-000000000500)") from None
