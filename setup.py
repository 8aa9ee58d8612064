"""Package layout: `impasto` from daemon/, `impasto_tray` from tray/, and the shipped data
(ui_static/ and the bundled tiny model) mapped inside the `impasto` package of the wheel."""

from setuptools import find_packages, setup

PACKAGES = find_packages("daemon") + find_packages("tray")
DATA_PACKAGES = {"impasto.ui_static": "ui_static", "impasto.bundled_models": "models/tiny"}

setup(
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
            "model_catalog.toml",
            "store/migrations/*.sql",
            "api/docs_assets/*",
        ],
        "impasto.ui_static": ["**/*"],
        "impasto.bundled_models": ["sd-tiny/**/*"],
    },
    include_package_data=False,
)
