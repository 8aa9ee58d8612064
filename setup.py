"""Package layout: `impasto` from daemon/, `impasto_tray` from tray/, and the shipped data
(ui_static/ and the bundled tiny model) mapped inside the `impasto` package of the wheel."""

from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

PACKAGES = find_packages("daemon") + find_packages("tray")
DATA_PACKAGES = {"impasto.ui_static": "ui_static", "impasto.bundled_models": "models/tiny"}


class BuildPy(build_py):
    """Also ship models/catalog.toml as impasto/model_catalog.toml."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads models/catalog.toml from the checkout
        target = Path(self.build_lib, "impasto", "model_catalog.toml")
        self.mkpath(str(target.parent))
        self.copy_file("models/catalog.toml", str(target))


setup(
    cmdclass={"build_py": BuildPy},
    packages=[*PACKAGES, *DATA_PACKAGES],
    package_dir={
        **{
            name: f"daemon/{name.replace('.', '/')}"
            for name in PACKAGES
            if name.startswith("impasto.")
        },
        "impasto": "daemon/impasto",
        "impasto_tray": "tray/impasto_tray",
        **DATA_PACKAGES,
    },
    package_data={
        "impasto": [
            "py.typed",
            "store/migrations/*.sql",
            "api/docs_assets/*",
        ],
        "impasto.ui_static": ["**/*"],
        "impasto.bundled_models": ["sd-tiny/**/*", "impasto-shapes/**/*"],
    },
    include_package_data=False,
)
