"""Journey tests: a user's path through the real components, reading back what they wrote."""
