"""What the product talks about: payloads that cross workflow boundaries and the two stores' tables."""
