"""What the product talks about: workflow payloads and the two stores' tables."""
