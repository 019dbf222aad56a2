"""The wheel's build: everything is in pyproject.toml but the pages' compiled catalogues.

The `.mo` files are build output (the Makefile compiles the checkout's); the wheel gets
its own, compiled here from the `.po` files, so an installed package never needs to write
into its own directory, and the web app's check for a missing catalogue still holds.
"""

from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithCatalogues(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        for source in Path("locales").glob("*/LC_MESSAGES/*.po"):
            target = Path(self.build_lib) / source.with_suffix(".mo")
            target.parent.mkdir(parents=True, exist_ok=True)
            with source.open("rb") as po, target.open("wb") as mo:
                write_mo(mo, read_po(po, locale=source.parts[1]))


setup(cmdclass={"build_py": BuildWithCatalogues})
