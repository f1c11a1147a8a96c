"""Microsoft Teams: approval cards posted to a channel's Workflows (or incoming) webhook.

``card`` builds the Adaptive Cards (pure); ``webhook`` posts them. A webhook cannot tell jit who clicked,
so a card's buttons open jit's decision page, which asks the reader for their work email and sends a
personal link there (``bot.links``).
"""
