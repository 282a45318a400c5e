"""The dock widget: the plugin's five Processing algorithms, run from one panel tied to the map."""
