"""The package version, below every stage so that any module can record it without importing the
package face (``stylefa/__init__.py`` re-exports it; pyproject.toml reads it from here)."""

__version__ = "0.1.0"
