"""The Python SDK an app imports: send events (`RecstreamClient`), receive lists (`RecommendationSubscriber`).

May import streams.kafka, streams.settings and schemas; never the worker, Faust, torch or sentence-transformers.
"""

from streams.client.sdk import Delivery, DeliveryFailed, InvalidEvent, RecommendationSubscriber, RecstreamClient

__all__ = ["Delivery", "DeliveryFailed", "InvalidEvent", "RecommendationSubscriber", "RecstreamClient"]
