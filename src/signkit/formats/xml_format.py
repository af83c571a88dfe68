"""Where the CLI finds the XML plug-in (``formats/xml/plugin.py``) and its
option builder (``formats/xml/presets.py``)."""

from signkit.formats.xml.plugin import XmlFormat
from signkit.formats.xml.presets import build_options, preset_settings

__all__ = ["XmlFormat", "build_options", "preset_settings"]
