"""The Python SDK an app imports: send events, receive lists, read a list or a variant over HTTP (`RecstreamReader`).

May import streams.kafka, streams.settings and schemas; never the worker, Faust, torch or sentence-transformers.
"""

from streams.client.reader import ReadFailed, RecstreamReader
from streams.client.sdk import Delivery, DeliveryFailed, InvalidEvent, RecommendationSubscriber, RecstreamClient

__all__ = ["Delivery", "DeliveryFailed", "InvalidEvent", "ReadFailed", "RecommendationSubscriber", "RecstreamClient",
           "RecstreamReader"]
