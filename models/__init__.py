"""What the product talks about: the lifecycle, the payloads that cross workflow
boundaries, and the two stores' tables."""
