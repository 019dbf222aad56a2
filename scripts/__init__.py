"""The project's own tools: make dev's processes, make docs' hooks (imported by the tests)."""
