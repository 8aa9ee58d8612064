"""A plugin that cannot be imported: the daemon must list the error and start anyway."""

raise ImportError("this plugin needs the frobnicate package; pip install frobnicate")
